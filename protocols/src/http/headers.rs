//! [`Headers`]: an ordered, case-insensitive, repeatable header list.
//!
//! # Implementation
//!
//! Every name and value is kept back to back in one `String`, and the fields are ranges
//! of it, so a header list costs two allocations however many fields it has (a request
//! from a browser has ten or more; as a `(String, String)` per field that was twenty-one).
//! Removing a field rebuilds the text without it.

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
#[derive(Clone, Default)]
pub struct Headers {
    /// Names and values, back to back.
    text: String,
    /// Each field: where its name starts, where its name ends (and its value starts),
    /// and where its value ends, in `text`.
    fields: Vec<(usize, usize, usize)>,
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
        Headers {
            text: String::new(),
            fields: Vec::new(),
        }
    }

    /// Room for `fields` fields of `bytes` bytes in all (names and values), so that
    /// appending them allocates nothing more.
    pub(crate) fn with_capacity(fields: usize, bytes: usize) -> Headers {
        Headers {
            text: String::with_capacity(bytes),
            fields: Vec::with_capacity(fields),
        }
    }

    fn name_at(&self, f: &(usize, usize, usize)) -> &str {
        &self.text[f.0..f.1]
    }

    fn value_at(&self, f: &(usize, usize, usize)) -> &str {
        &self.text[f.1..f.2]
    }

    /// Fields as `(name, value)` pairs, in order.
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .map(|f| (self.name_at(f), self.value_at(f)))
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
        self.pairs()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
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
        self.pairs()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
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
        self.pairs().any(|(n, _)| n.eq_ignore_ascii_case(name))
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
        self.push(&name.into(), &value.into());
    }

    /// Adds a field from borrowed text (no allocation when there is room).
    pub(crate) fn push(&mut self, name: &str, value: &str) {
        let start = self.text.len();
        self.text.push_str(name);
        let mid = self.text.len();
        self.text.push_str(value);
        self.fields.push((start, mid, self.text.len()));
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
        self.push(&name, &value.into());
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
        let found = self.get_all(name).count();
        if found > 0 {
            let mut kept = Headers::with_capacity(self.fields.len() - found, self.text.len());
            for (n, v) in self.pairs().filter(|(n, _)| !n.eq_ignore_ascii_case(name)) {
                kept.push(n, v);
            }
            *self = kept;
        }
        found
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
        self.pairs()
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

impl PartialEq for Headers {
    /// The same fields (names and values, byte for byte) in the same order.
    fn eq(&self, other: &Headers) -> bool {
        self.fields.len() == other.fields.len() && self.pairs().eq(other.pairs())
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.pairs()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::Headers;

    #[test]
    fn remove_keeps_the_others_in_order() {
        let mut h = Headers::new();
        h.append("A", "1");
        h.append("B", "2");
        h.append("a", "3");
        h.append("C", "");
        assert_eq!(h.remove("A"), 2);
        assert_eq!(h.iter().collect::<Vec<_>>(), [("B", "2"), ("C", "")]);
        h.insert("b", "4");
        assert_eq!(h.iter().collect::<Vec<_>>(), [("C", ""), ("b", "4")]);
        assert_eq!(h.remove("missing"), 0);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn equal_by_fields_not_by_history() {
        let mut a = Headers::new();
        a.append("X", "1");
        a.append("Y", "2");
        a.remove("x");
        let mut b = Headers::with_capacity(4, 100);
        b.push("Y", "2");
        assert_eq!(a, b);
        b.push("Y", "2");
        assert_ne!(a, b);
        // Names and values are kept apart: "XY" + "" is not "X" + "Y".
        let mut c = Headers::new();
        c.append("XY", "");
        let mut d = Headers::new();
        d.append("X", "Y");
        assert_ne!(c, d);
        assert_eq!(format!("{d:?}"), r#"{"X": "Y"}"#);
    }
}
