//! [`Headers`]: an ordered, case-insensitive, repeatable header list.

use std::fmt;

/// HTTP header fields: names compare case-insensitively, a name may repeat, and order is
/// kept as received (or as added).
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::http::Headers;
///
/// let mut h = Headers::new();
/// h.append("Set-Cookie", "a=1");
/// h.append("set-cookie", "b=2");
/// h.insert("Content-Type", "text/plain");
/// assert_eq!(h.get("content-type"), Some("text/plain"));
/// assert_eq!(h.get_all("SET-COOKIE").collect::<Vec<_>>(), ["a=1", "b=2"]);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(String, String)>,
}

impl Headers {
    /// No headers.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ropewalk_protocols::http::Headers::new().is_empty());
    /// ```
    pub fn new() -> Headers {
        Headers { fields: Vec::new() }
    }

    /// The first value of `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut h = ropewalk_protocols::http::Headers::new();
    /// h.append("Host", "example.test");
    /// assert_eq!(h.get("HOST"), Some("example.test"));
    /// assert_eq!(h.get("Accept"), None);
    /// ```
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut h = ropewalk_protocols::http::Headers::new();
    /// h.append("Via", "a");
    /// h.append("Via", "b");
    /// assert_eq!(h.get_all("via").count(), 2);
    /// ```
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` is present.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut h = ropewalk_protocols::http::Headers::new();
    /// h.append("X-A", "1");
    /// assert!(h.contains("x-a"));
    /// ```
    pub fn contains(&self, name: &str) -> bool {
        self.fields
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Adds a field, keeping any others of the same name.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut h = ropewalk_protocols::http::Headers::new();
    /// h.append("Vary", "Accept");
    /// assert_eq!(h.len(), 1);
    /// ```
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.fields.push((name.into(), value.into()));
    }

    /// Sets `name` to `value`, removing other fields of that name.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut h = ropewalk_protocols::http::Headers::new();
    /// h.append("A", "1");
    /// h.append("a", "2");
    /// h.insert("A", "3");
    /// assert_eq!(h.get_all("a").collect::<Vec<_>>(), ["3"]);
    /// ```
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        self.remove(&name);
        self.fields.push((name, value.into()));
    }

    /// Removes every field named `name`; returns how many there were.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut h = ropewalk_protocols::http::Headers::new();
    /// h.append("A", "1");
    /// assert_eq!(h.remove("a"), 1);
    /// ```
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        self.fields.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        before - self.fields.len()
    }

    /// Every field, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut h = ropewalk_protocols::http::Headers::new();
    /// h.append("A", "1");
    /// assert_eq!(h.iter().next(), Some(("A", "1")));
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// How many fields.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ropewalk_protocols::http::Headers::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are none.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ropewalk_protocols::http::Headers::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Whether the comma-separated list in the `name` fields holds `token`
    /// (case-insensitive), as for `Connection: keep-alive, close`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut h = ropewalk_protocols::http::Headers::new();
    /// h.append("Connection", "Upgrade,close");
    /// assert!(h.has_token("connection", "close"));
    /// assert!(!h.has_token("connection", "keep-alive"));
    /// ```
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.fields.iter().map(|(n, v)| (n, v)))
            .finish()
    }
}
