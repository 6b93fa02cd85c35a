//! [`Request`]: what the server hands a handler.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use ropewalk_reactor::tls::TlsInfo;
use ropewalk_reactor::Address;

use super::Headers;

/// The HTTP version of a request.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::http::Version;
///
/// assert_eq!(Version::Http10.as_str(), "HTTP/1.0");
/// assert!(Version::Http10 < Version::Http11);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// HTTP/1.0: not persistent unless asked, no chunked encoding.
    Http10,
    /// HTTP/1.1.
    Http11,
}

impl Version {
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ropewalk_protocols::http::Version::Http11.as_str(), "HTTP/1.1");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// A complete request: head and body.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::http::{Headers, Request, Version};
///
/// let req = Request::new("GET", "/search?q=rope%20walk&n=2", Version::Http11, Headers::new(), vec![]);
/// assert_eq!(req.path(), "/search");
/// assert_eq!(req.query_param("q").as_deref(), Some("rope walk"));
/// assert_eq!(req.query_param("n").as_deref(), Some("2"));
/// ```
#[derive(Clone)]
pub struct Request {
    /// The common methods are static strings: no allocation per request.
    method: Cow<'static, str>,
    /// Where the target is in the header list's text (one allocation for the whole
    /// head).
    target: Range<usize>,
    /// Where the path is, also in the header list's text; `None` stands for `/` (an
    /// absolute-form target with no path).
    path: Option<Range<usize>>,
    /// Where the query is, also in the header list's text.
    query: Option<Range<usize>>,
    version: Version,
    headers: Headers,
    body: Vec<u8>,
    peer: Address,
    /// What the connection's TLS negotiated: shared by its requests.
    tls: Option<Arc<TlsInfo>>,
}

impl Request {
    /// A request, as the server builds one (also handy in handler tests). `target` is the
    /// request target: origin form (`/path?query`), absolute form (`http://host/path`) or
    /// `*`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::{Headers, Request, Version};
    /// let r = Request::new("GET", "http://h.test/a?b", Version::Http11, Headers::new(), vec![]);
    /// assert_eq!((r.path(), r.query()), ("/a", Some("b")));
    /// ```
    pub fn new(
        method: impl Into<String>,
        target: impl Into<String>,
        version: Version,
        headers: Headers,
        body: Vec<u8>,
    ) -> Request {
        let mut headers = headers;
        let target = headers.push_extra(&target.into());
        Request::from_parts(
            Cow::Owned(method.into()),
            target,
            version,
            headers,
            body,
            Address::Test,
        )
    }

    /// A request from parts the server has parsed; `target` is where the request target
    /// is in `headers`' extra text.
    #[inline]
    pub(crate) fn from_parts(
        method: Cow<'static, str>,
        target: Range<usize>,
        version: Version,
        headers: Headers,
        body: Vec<u8>,
        peer: Address,
    ) -> Request {
        let (path, query) = split_target(headers.extra(target.clone()));
        let shift = |r: Range<usize>| target.start + r.start..target.start + r.end;
        let (path, query) = (path.map(shift), query.map(shift));
        Request {
            method,
            target,
            path,
            query,
            version,
            headers,
            body,
            peer,
            tls: None,
        }
    }

    /// Sets what the connection's TLS negotiated.
    #[inline]
    pub(crate) fn set_tls_info(&mut self, tls: Option<Arc<TlsInfo>>) {
        self.tls = tls;
    }

    /// The method, as sent (methods are case-sensitive).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::http::{Headers, Request, Version};
    /// let r = Request::new("POST", "/", Version::Http11, Headers::new(), vec![]);
    /// assert_eq!(r.method(), "POST");
    /// ```
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Whether the method is one of the common ones the server's parser keeps as static
    /// strings (`GET`, `HEAD`, `POST`, `PUT`, `DELETE`, `OPTIONS`, `PATCH`, `CONNECT`,
    /// `TRACE`); `false` says nothing (a request made with [`Request::new`]).
    #[inline]
    pub(crate) fn has_common_method(&self) -> bool {
        matches!(self.method, Cow::Borrowed(_))
    }

    /// The request target as sent.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::http::{Headers, Request, Version};
    /// let r = Request::new("GET", "/a?b=1", Version::Http11, Headers::new(), vec![]);
    /// assert_eq!(r.target(), "/a?b=1");
    /// ```
    pub fn target(&self) -> &str {
        self.headers.extra(self.target.clone())
    }

    /// The path, without the query (not percent-decoded).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::http::{Headers, Request, Version};
    /// let r = Request::new("GET", "/a%20b?c", Version::Http11, Headers::new(), vec![]);
    /// assert_eq!(r.path(), "/a%20b");
    /// ```
    pub fn path(&self) -> &str {
        self.path.clone().map_or("/", |r| self.headers.extra(r))
    }

    /// The query string, after `?`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::http::{Headers, Request, Version};
    /// let r = Request::new("GET", "/", Version::Http11, Headers::new(), vec![]);
    /// assert_eq!(r.query(), None);
    /// ```
    pub fn query(&self) -> Option<&str> {
        self.query.clone().map(|r| self.headers.extra(r))
    }

    /// The first value of a query parameter, percent-decoded (`+` is a space).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::http::{Headers, Request, Version};
    /// let r = Request::new("GET", "/d?ms=250&x", Version::Http11, Headers::new(), vec![]);
    /// assert_eq!(r.query_param("ms").as_deref(), Some("250"));
    /// assert_eq!(r.query_param("x").as_deref(), Some(""));
    /// assert_eq!(r.query_param("y"), None);
    /// ```
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }

    /// The HTTP version.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::http::{Headers, Request, Version};
    /// let r = Request::new("GET", "/", Version::Http10, Headers::new(), vec![]);
    /// assert_eq!(r.version(), Version::Http10);
    /// ```
    pub fn version(&self) -> Version {
        self.version
    }

    /// The header fields.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::http::{Headers, Request, Version};
    /// let mut h = Headers::new();
    /// h.append("Host", "x.test");
    /// let r = Request::new("GET", "/", Version::Http11, h, vec![]);
    /// assert_eq!(r.headers().get("host"), Some("x.test"));
    /// ```
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The body (empty when there was none).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::http::{Headers, Request, Version};
    /// let r = Request::new("POST", "/", Version::Http11, Headers::new(), b"hi".to_vec());
    /// assert_eq!(r.body(), b"hi");
    /// ```
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body out of the request.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::http::{Headers, Request, Version};
    /// let r = Request::new("POST", "/", Version::Http11, Headers::new(), b"hi".to_vec());
    /// assert_eq!(r.into_body(), b"hi");
    /// ```
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The client's address.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::http::{Headers, Request, Version};
    /// let r = Request::new("GET", "/", Version::Http11, Headers::new(), vec![]);
    /// assert_eq!(r.peer(), &ropewalk_reactor::Address::Test);
    /// ```
    pub fn peer(&self) -> &Address {
        &self.peer
    }

    /// What TLS negotiated on the connection the request came on (protocol version,
    /// cipher suite, the name the client asked for by SNI, the ALPN protocol, the client's
    /// certificates, whether the session was resumed): `None` over plain TCP. Twisted's
    /// `request.isSecure()` is `tls_info().is_some()`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ropewalk_protocols::http::{Request, Response};
    ///
    /// let handler = |req: Request| {
    ///     let who = match req.tls_info() {
    ///         Some(tls) => format!("{:?} via {:?}", tls.server_name, tls.protocol_version),
    ///         None => "plain http".to_string(),
    ///     };
    ///     Ok::<_, ropewalk_deferred::Failure>(Response::text(who))
    /// };
    /// # let _ = handler;
    /// ```
    ///
    /// A request made by hand has none:
    ///
    /// ```
    /// # use ropewalk_protocols::http::{Headers, Request, Version};
    /// let r = Request::new("GET", "/", Version::Http11, Headers::new(), vec![]);
    /// assert!(r.tls_info().is_none());
    /// ```
    pub fn tls_info(&self) -> Option<&TlsInfo> {
        self.tls.as_deref()
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("target", &self.target())
            .field("path", &self.path())
            .field("query", &self.query())
            .field("version", &self.version)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .field("peer", &self.peer)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Where the path and the query are in a request target: origin form (`/path?query`),
/// absolute form (`http://host/path?query`) or `*`.
#[inline]
fn split_target(target: &str) -> (Option<Range<usize>>, Option<Range<usize>>) {
    let start = if target.starts_with('/') {
        0
    } else {
        match target.find("://") {
            Some(i) => match target[i + 3..].find('/') {
                Some(j) => i + 3 + j,
                None => return (None, None),
            },
            None => 0,
        }
    };
    // A byte search: `str::find(char)` costs more than the usual short target.
    match target.as_bytes()[start..].iter().position(|&b| b == b'?') {
        Some(q) => (Some(start..start + q), Some(start + q + 1..target.len())),
        None => (Some(start..target.len()), None),
    }
}

/// Decodes a query component as a form does (`application/x-www-form-urlencoded`): `+`
/// is a space, `%XX` a byte; a `%` not followed by two hex digits is kept as it is, as
/// browsers do. Bytes that are not UTF-8 become U+FFFD.
pub(crate) fn percent_decode(s: &str) -> String {
    let spaced = if s.contains('+') {
        Cow::Owned(s.replace('+', " "))
    } else {
        Cow::Borrowed(s)
    };
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Whether every `%` in `s` starts an escape: two hex digits follow it (RFC 3986 §2.1).
/// A path with a malformed escape is a bad request rather than a guess at a name.
pub(crate) fn escapes_are_valid(s: &[u8]) -> bool {
    s.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || (s.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

#[cfg(test)]
mod tests {
    use super::{Headers, Request, Version};

    fn parts(target: &str) -> (String, Option<String>) {
        let r = Request::new("GET", target, Version::Http11, Headers::new(), vec![]);
        (r.path().to_string(), r.query().map(str::to_string))
    }

    #[test]
    fn path_and_query_of_every_target_form() {
        let s = |p: &str, q: Option<&str>| (p.to_string(), q.map(str::to_string));
        assert_eq!(parts("/a/b?x=1&y"), s("/a/b", Some("x=1&y")));
        assert_eq!(parts("/?"), s("/", Some("")));
        assert_eq!(parts("/a?b?c"), s("/a", Some("b?c")));
        assert_eq!(parts("http://h.test/p?q"), s("/p", Some("q")));
        assert_eq!(parts("http://h.test"), s("/", None));
        assert_eq!(parts("http://h.test?q"), s("/", None));
        assert_eq!(parts("*"), s("*", None));
        assert_eq!(parts(""), s("", None));
        // An origin-form path that holds "://" is not an absolute URI.
        assert_eq!(parts("/x://y/z"), s("/x://y/z", None));
    }

    /// A `%` not followed by two hex digits is kept as it is (as browsers and the
    /// WHATWG form decoding do); `u8::from_str_radix` once read `%+b` as byte 0x0b.
    #[test]
    fn query_params_decode_only_valid_escapes() {
        let param = |target: &str| {
            Request::new("GET", target, Version::Http11, Headers::new(), vec![]).query_param("a")
        };
        for (target, want) in [
            ("/?a=x%20y+z", "x y z"),
            ("/?a=%41%62", "Ab"),
            ("/?a=%+b", "% b"),
            ("/?a=%-1", "%-1"),
            ("/?a=%zz%4", "%zz%4"),
            ("/?a=%", "%"),
            ("/?a=%c3%a9", "\u{e9}"),
            ("/?a=%ff", "\u{fffd}"),
            ("/?%61=1", "1"),
        ] {
            assert_eq!(param(target).as_deref(), Some(want), "{target}");
        }
    }
}
