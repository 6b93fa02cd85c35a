//! [`Headers`]: an ordered, case-insensitive, repeatable header list.
//!
//! # Implementation
//!
//! Every name and value is kept back to back in one string, and the fields are ranges
//! of it, so a header list costs at most two allocations however many fields it has (a
//! request from a browser has ten or more; as a `(String, String)` per field that was
//! twenty-one). The first [`INLINE_FIELDS`] ranges live in the list itself, so a list of
//! up to that many fields allocates once, for its text; a list built from static text
//! (a response's `Content-Type`) allocates nothing until it is changed. The text may
//! also hold bytes that belong to no field (a request keeps its target there: one
//! allocation for the whole head). Removing a field rebuilds the text without it.
//!
//! The ranges are `u32`s: a list holds at most 4 GiB of text (adding past that panics).

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::ops::Range;

/// Fields whose ranges are kept without a separate allocation.
const INLINE_FIELDS: usize = 3;

/// Where a field's name starts and ends, and where its value starts and ends, in the
/// text.
type Field = [u32; 4];

/// The field ranges: the first few inline, then on the heap.
#[derive(Clone)]
enum Fields {
    Inline(u8, [Field; INLINE_FIELDS]),
    Heap(Vec<Field>),
}

impl Fields {
    const EMPTY: Fields = Fields::Inline(0, [[0; 4]; INLINE_FIELDS]);

    fn with_capacity(n: usize) -> Fields {
        if n <= INLINE_FIELDS {
            Fields::EMPTY
        } else {
            Fields::Heap(Vec::with_capacity(n))
        }
    }

    #[inline]
    fn as_slice(&self) -> &[Field] {
        match self {
            Fields::Inline(len, f) => &f[..usize::from(*len)],
            Fields::Heap(v) => v,
        }
    }

    #[inline]
    fn push(&mut self, field: Field) {
        match self {
            Fields::Inline(len, f) if usize::from(*len) < INLINE_FIELDS => {
                f[usize::from(*len)] = field;
                *len += 1;
            }
            _ => self.push_spilled(field),
        }
    }

    /// `push` past the inline fields (apart, so that `push` is small enough to inline).
    fn push_spilled(&mut self, field: Field) {
        match self {
            Fields::Inline(_, f) => {
                let mut v = Vec::with_capacity(2 * INLINE_FIELDS);
                v.extend_from_slice(f);
                v.push(field);
                *self = Fields::Heap(v);
            }
            Fields::Heap(v) => v.push(field),
        }
    }
}

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
#[derive(Clone)]
pub struct Headers {
    /// Names and values, back to back (and any extra text, see `push_extra`).
    text: Cow<'static, str>,
    fields: Fields,
}

impl Default for Headers {
    fn default() -> Headers {
        Headers::new()
    }
}

impl Headers {
    /// No headers.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ropewalk_protocols::http::Headers::new().is_empty());
    /// ```
    pub const fn new() -> Headers {
        Headers {
            text: Cow::Borrowed(""),
            fields: Fields::EMPTY,
        }
    }

    /// Room for `fields` fields of `bytes` bytes in all (names and values, and extra
    /// text), so that appending them allocates nothing more.
    pub(crate) fn with_capacity(fields: usize, bytes: usize) -> Headers {
        Headers {
            text: Cow::Owned(String::with_capacity(bytes)),
            fields: Fields::with_capacity(fields),
        }
    }

    /// A list whose text is a copy of `text` (one allocation) and that has room for
    /// `fields` fields, added with [`Self::push_at`]: parts of `text` that are no field
    /// are extra text (see [`Self::push_extra`]).
    pub(crate) fn from_text(text: &str, fields: usize) -> Headers {
        check_len(text.len());
        // The text of the last list dropped, if any: no allocation.
        let mut owned = SPARE_TEXT.try_with(Cell::take).unwrap_or_default();
        owned.clear();
        owned.push_str(text);
        Headers {
            text: Cow::Owned(owned),
            fields: Fields::with_capacity(fields),
        }
    }

    /// Adds a field whose name and value are already in the text. The ranges must be in
    /// the text and fall on character boundaries (or reading the field panics).
    #[inline]
    pub(crate) fn push_at(&mut self, name: Range<usize>, value: Range<usize>) {
        debug_assert!(self.text.get(name.clone()).is_some());
        debug_assert!(self.text.get(value.clone()).is_some());
        self.fields.push([
            name.start as u32,
            name.end as u32,
            value.start as u32,
            value.end as u32,
        ]);
    }

    /// One field from a static header line, `Name: value\r\n`: no allocation until the
    /// list is changed. The line is checked here, at compile time (a token for a name,
    /// one space, no control bytes in the value, none of the fields the server writes
    /// itself), so that [`Self::static_lines`] may be sent as it is.
    pub(crate) const fn from_static_line(line: &'static str) -> Headers {
        let b = line.as_bytes();
        let mut n = 0;
        while b[n] != b':' {
            assert!(super::wire::token::is_tchar(b[n]));
            n += 1;
        }
        assert!(n > 0 && b[n + 1] == b' ');
        assert!(b[b.len() - 2] == b'\r' && b[b.len() - 1] == b'\n');
        let mut i = n + 2;
        while i < b.len() - 2 {
            assert!((b[i] >= 0x20 || b[i] == b'\t') && b[i] != 0x7f);
            i += 1;
        }
        let name = b.split_at(n).0;
        let managed = [
            "content-length",
            "transfer-encoding",
            "connection",
            "date",
            "server",
        ];
        let mut m = 0;
        while m < managed.len() {
            assert!(!same_name(name, managed[m].as_bytes()));
            m += 1;
        }
        let mut fields = [[0; 4]; INLINE_FIELDS];
        fields[0] = [0, n as u32, n as u32 + 2, b.len() as u32 - 2];
        Headers {
            text: Cow::Borrowed(line),
            fields: Fields::Inline(1, fields),
        }
    }

    /// The whole list as header lines ready to send (`Name: value\r\n` each), if it is
    /// still the static text it was made from ([`Self::from_static_line`], or empty):
    /// any change makes a copy, and ends this.
    #[inline]
    pub(crate) fn static_lines(&self) -> Option<&'static str> {
        match self.text {
            Cow::Borrowed(text) => Some(text),
            Cow::Owned(_) => None,
        }
    }

    #[inline]
    fn name_at(&self, f: &Field) -> &str {
        &self.text[f[0] as usize..f[1] as usize]
    }

    #[inline]
    fn value_at(&self, f: &Field) -> &str {
        &self.text[f[2] as usize..f[3] as usize]
    }

    /// Fields as `(name, value)` pairs, in order.
    #[inline]
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .as_slice()
            .iter()
            .map(|f| (self.name_at(f), self.value_at(f)))
    }

    /// Appends text that belongs to no field; returns where it is, for [`Self::extra`].
    /// Removing a field drops such text: only lists that are not changed afterwards (a
    /// request's) hold any.
    pub(crate) fn push_extra(&mut self, s: &str) -> Range<usize> {
        let text = self.text.to_mut();
        let start = text.len();
        text.push_str(s);
        check_len(text.len());
        start..text.len()
    }

    /// Text added by [`Self::push_extra`].
    #[inline]
    pub(crate) fn extra(&self, at: Range<usize>) -> &str {
        &self.text[at]
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
        let text = self.text.to_mut();
        let start = text.len();
        text.push_str(name);
        let mid = text.len();
        text.push_str(value);
        check_len(text.len());
        self.fields
            .push([start as u32, mid as u32, mid as u32, text.len() as u32]);
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
            let mut kept = Headers::with_capacity(self.len() - found, self.text.len());
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
        self.fields.as_slice().len()
    }

    /// Whether there are none.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ropewalk_protocols::http::Headers::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

/// The largest text kept for reuse when a list is dropped.
const MAX_SPARE_TEXT: usize = 4 * 1024;

thread_local! {
    /// The text of a list dropped on this thread, kept for the next request head (see
    /// [`Headers::from_text`]): a server that answers a request before it parses the next
    /// (the common case) reuses one allocation instead of one per request.
    static SPARE_TEXT: Cell<String> = const { Cell::new(String::new()) };
}

impl Drop for Headers {
    fn drop(&mut self) {
        if let Cow::Owned(text) = &mut self.text {
            if (1..=MAX_SPARE_TEXT).contains(&text.capacity()) {
                let text = std::mem::take(text);
                // One spare at most: the larger one is kept, the other freed.
                let _ = SPARE_TEXT.try_with(|spare| {
                    let other = spare.take();
                    spare.set(if other.capacity() < text.capacity() {
                        text
                    } else {
                        other
                    });
                });
            }
        }
    }
}

/// `a` and `b` are the same name, ignoring ASCII case (for constants).
const fn same_name(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if !a[i].eq_ignore_ascii_case(&b[i]) {
            return false;
        }
        i += 1;
    }
    true
}

/// Fields are `u32` ranges of the text.
#[inline]
fn check_len(len: usize) {
    assert!(u32::try_from(len).is_ok(), "header list text over 4 GiB");
}

impl PartialEq for Headers {
    /// The same fields (names and values, byte for byte) in the same order.
    fn eq(&self, other: &Headers) -> bool {
        self.len() == other.len() && self.pairs().eq(other.pairs())
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
    use std::borrow::Cow;

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
    fn more_fields_than_fit_inline() {
        let mut h = Headers::new();
        let names: Vec<String> = (0..super::INLINE_FIELDS * 3)
            .map(|i| format!("X-{i}"))
            .collect();
        for (i, n) in names.iter().enumerate() {
            h.append(n.as_str(), i.to_string());
        }
        assert_eq!(h.len(), names.len());
        for (i, (n, v)) in h.iter().enumerate() {
            assert_eq!((n, v), (names[i].as_str(), i.to_string().as_str()));
        }
        assert_eq!(h.remove("x-0"), 1);
        assert_eq!(h.iter().next(), Some(("X-1", "1")));
        assert_eq!(h.clone(), h);
    }

    #[test]
    fn a_static_list_is_copied_when_changed() {
        const CT: Headers = Headers::from_static_line("Content-Type: text/plain\r\n");
        let mut h = CT;
        assert_eq!(h.static_lines(), Some("Content-Type: text/plain\r\n"));
        assert_eq!(h.get("content-type"), Some("text/plain"));
        h.append("X-A", "1");
        assert_eq!(h.static_lines(), None);
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [("Content-Type", "text/plain"), ("X-A", "1")]
        );
        assert_eq!(CT.len(), 1);
        let mut g = CT;
        assert_eq!(g.remove("content-type"), 1);
        assert!(g.is_empty());
    }

    #[test]
    fn the_text_of_a_dropped_list_is_reused() {
        let mut h = Headers::with_capacity(1, 1000);
        h.push("A", "1");
        drop(h);
        let reused = Headers::from_text("B: 2", 1);
        assert!(matches!(&reused.text, Cow::Owned(s) if s.capacity() >= 1000));
        assert_eq!(reused.extra(0..4), "B: 2");
        // Too large to keep: freed.
        let big = Headers::from_text(&"x".repeat(super::MAX_SPARE_TEXT + 1), 0);
        drop((reused, big));
        let fresh = Headers::from_text("C", 0);
        assert!(matches!(&fresh.text, Cow::Owned(s) if s.capacity() <= super::MAX_SPARE_TEXT));
    }

    #[test]
    fn extra_text_belongs_to_no_field() {
        let mut h = Headers::new();
        h.append("A", "1");
        let at = h.push_extra("/path?q");
        h.push("B", "2");
        assert_eq!(h.extra(at), "/path?q");
        assert_eq!(h.iter().collect::<Vec<_>>(), [("A", "1"), ("B", "2")]);
        let mut plain = Headers::new();
        plain.append("A", "1");
        plain.append("B", "2");
        assert_eq!(h, plain);
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
