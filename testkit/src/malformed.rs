//! The malformed-request table: every rejection rule of the HTTP server, one row each,
//! with the status it must get.
//!
//! A row is data: a name, the request bytes and the status. Every row shares one
//! contract, so it is not repeated per row: the server answers exactly one response with
//! that status and `Connection: close`, closes the connection, and never calls the
//! handler — so nothing behind a rejected request (such as [`SMUGGLED`]) is ever read as
//! a second request.
//!
//! [`MALFORMED`] holds the rows that do not depend on the server's limits; the rows that
//! pass a limit are made for given [`Limits`] by [`over_limits`]. The protocols test
//! `http_malformed_table.rs` runs them all against a connection on a string transport
//! (with [`Limits::SMALL`]); the soak in `bench/` sends them to a live server (with
//! [`Limits::DEFAULT`]).
//!
//! # Examples
//!
//! ```
//! use ropewalk_testkit::malformed::{over_limits, Limits, MALFORMED};
//!
//! for row in MALFORMED.iter().cloned().chain(over_limits(&Limits::SMALL)) {
//!     assert!((400..600).contains(&row.status), "{}", row.name);
//! }
//! ```

use std::borrow::Cow;

/// A valid request, sent behind each row in the same write: it must never be answered.
///
/// # Examples
///
/// ```
/// use ropewalk_testkit::malformed::SMUGGLED;
///
/// assert!(SMUGGLED.starts_with(b"GET /smuggled "));
/// ```
pub const SMUGGLED: &[u8] = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

/// One row of the table: a request the server must refuse, and the status it refuses
/// it with (then `Connection: close`, and the connection closed).
///
/// # Examples
///
/// ```
/// use ropewalk_testkit::malformed::MALFORMED;
///
/// let row = MALFORMED.iter().find(|r| r.name == "version: HTTP/2.0").unwrap();
/// assert_eq!(row.status, 505);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedRequest {
    /// What the row breaks, as "area: detail"; unique in the table.
    pub name: &'static str,
    /// The whole request, as sent.
    pub request: Cow<'static, [u8]>,
    /// The status of the one response.
    pub status: u16,
}

/// A row of [`MALFORMED`] (a `const fn`, so the table is a constant).
const fn row(name: &'static str, request: &'static [u8], status: u16) -> MalformedRequest {
    MalformedRequest {
        name,
        request: Cow::Borrowed(request),
        status,
    }
}

/// The rows that do not depend on the server's limits, grouped by the rule they break
/// (request line, method, target, version, fields, values, folding, Content-Length,
/// Transfer-Encoding, chunks, trailers, Host, Expect).
///
/// # Examples
///
/// ```
/// use ropewalk_testkit::malformed::MALFORMED;
///
/// assert!(MALFORMED.iter().any(|r| r.status == 501));
/// ```
#[rustfmt::skip]
pub const MALFORMED: &[MalformedRequest] = &[
    // Request line (RFC 9112 §3).
    row("request line: HTTP/0.9, no version", b"GET /\r\n\r\n", 400),
    row("request line: two spaces after method", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    row("request line: two spaces before version", b"GET /  HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    row("request line: trailing space", b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400),
    row("request line: leading space", b" GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    row("request line: tab separator", b"GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    row("request line: space inside target", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    row("request line: two versions", b"GET /a HTTP/1.1 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    row("request line: bare CR as line end", b"GET / HTTP/1.1\rHost: x\r\n\r\n", 400),
    // Bare LF as a line end (RFC 9112 §2.2; llhttp's smuggling case).
    row("line end: bare LF everywhere", b"GET / HTTP/1.1\nHost: x\n\n", 400),
    row("line end: bare LF after the request line", b"GET / HTTP/1.1\nHost: x\r\n\r\n", 400),
    row("line end: bare LF after a field", b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", 400),
    row("line end: bare LF as the empty line", b"GET / HTTP/1.1\r\nHost: x\r\n\n", 400),
    row("line end: bare LF hiding a Content-Length",
     b"GET / HTTP/1.1\r\nHost: x\r\nDummy: x\nContent-Length: 23\r\n\r\nGET / HTTP/1.1\r\nDummy: GET /admin HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    // Method (a token).
    row("method: separator", b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    row("method: colon", b"GE:T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    row("method: NUL", b"G\0T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    row("method: non-ASCII", b"G\xc3\xa9T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    // Target.
    row("target: NUL", b"GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    row("target: DEL", b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    row("target: control byte", b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    row("target: no leading slash", b"GET foo HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    row("target: asterisk for GET", b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    // Version.
    row("version: HTTP/2.0", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    row("version: HTTP/3.0", b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505),
    row("version: two-digit minor", b"GET / HTTP/1.10\r\nHost: x\r\n\r\n", 400),
    row("version: HTTP/1.2 without Host", b"GET / HTTP/1.2\r\n\r\n", 400),
    row("version: lower case", b"GET / http/1.1\r\nHost: x\r\n\r\n", 400),
    row("version: trailing garbage", b"GET / HTTP/1.1x\r\nHost: x\r\n\r\n", 400),
    row("version: no dot", b"GET / HTTP/11\r\nHost: x\r\n\r\n", 400),
    // Header field syntax (RFC 9112 §5).
    row("header: no colon", b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400),
    row("header: empty name", b"GET / HTTP/1.1\r\nHost: x\r\n: value\r\n\r\n", 400),
    row("header: space before colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    row("header: tab before colon", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length\t: 0\r\n\r\n", 400),
    row("header: separator in name", b"GET / HTTP/1.1\r\nHost: x\r\nFo(o: v\r\n\r\n", 400),
    row("header: space in name", b"GET / HTTP/1.1\r\nHost: x\r\nFo o: v\r\n\r\n", 400),
    row("header: non-ASCII name", b"GET / HTTP/1.1\r\nHost: x\r\nFo\xc3\xa9o: v\r\n\r\n", 400),
    // CR, LF, NUL and other controls in values.
    row("value: NUL", b"GET / HTTP/1.1\r\nHost: x\r\nFoo: a\0b\r\n\r\n", 400),
    row("value: bare CR", b"GET / HTTP/1.1\r\nHost: x\r\nFoo: a\rb\r\n\r\n", 400),
    row("value: bare CR hiding a Content-Length",
     b"POST / HTTP/1.1\r\nHost: x\r\nFoo: x\rContent-Length: 5\r\n\r\nhello", 400),
    row("value: DEL", b"GET / HTTP/1.1\r\nHost: x\r\nFoo: a\x7fb\r\n\r\n", 400),
    row("value: control byte", b"GET / HTTP/1.1\r\nHost: x\r\nFoo: a\x01b\r\n\r\n", 400),
    // Obsolete line folding (RFC 9112 §5.2).
    row("obs-fold: space", b"GET / HTTP/1.1\r\nHost: x\r\nFoo: a\r\n b\r\n\r\n", 400),
    row("obs-fold: tab", b"GET / HTTP/1.1\r\nHost: x\r\nFoo: a\r\n\tb\r\n\r\n", 400),
    row("obs-fold: right after the request line", b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400),
    // Content-Length forms (RFC 9112 §6.3; CVE-2022-24801, CVE-2020-10108).
    row("content-length: plus sign", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", 400),
    row("content-length: negative", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\nhello", 400),
    row("content-length: hex", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello", 400),
    row("content-length: list", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello", 400),
    row("content-length: inner space", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\nhello", 400),
    row("content-length: empty", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\nhello", 400),
    row("content-length: decimal point", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5.0\r\n\r\nhello", 400),
    row("content-length: past u64",
     b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n", 400),
    row("content-length: two equal fields",
     b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    row("content-length: two different fields",
     b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello", 400),
    // Content-Length with Transfer-Encoding (RFC 9112 §6.1; CVE-2020-10109).
    row("CL+TE: Content-Length first",
     b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    row("CL+TE: Transfer-Encoding first",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    // Transfer codings (RFC 9112 §6.1, §6.3, §7): only a lone `chunked`; 501 for a
    // well-formed list of registered codings, 400 for malformed framing.
    row("transfer-encoding: gzip",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501),
    row("transfer-encoding: gzip then chunked",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501),
    row("transfer-encoding: gzip and chunked in two fields",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501),
    row("transfer-encoding: identity",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501),
    row("transfer-encoding: chunked not last",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    row("transfer-encoding: chunked twice",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    row("transfer-encoding: chunked in two fields",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    row("transfer-encoding: xchunked",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    row("transfer-encoding: obs-text before chunked",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \xa0chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    row("transfer-encoding: no-break space before chunked",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \xc2\xa0chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    row("transfer-encoding: unregistered coding",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    row("transfer-encoding: empty element",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: , chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    row("transfer-encoding: empty",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    row("transfer-encoding: on HTTP/1.0",
     b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    // Chunk framing (RFC 9112 §7.1).
    row("chunk size: 0x prefix",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
    row("chunk size: plus sign",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n", 400),
    row("chunk size: negative",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400),
    row("chunk size: not hex",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\ng\r\nhello\r\n0\r\n\r\n", 400),
    row("chunk size: empty",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n", 400),
    row("chunk size: leading space",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n", 400),
    row("chunk size: trailing space",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\na \r\nhelloworld\r\n0\r\n\r\n", 400),
    row("chunk size: trailing tab",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\t\r\nhello\r\n0\r\n\r\n", 400),
    row("chunk size: last chunk with trailing space",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0 \r\n\r\n", 400),
    row("chunk size: 0x with no digits",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x\r\n\r\n", 400),
    row("chunk size: past u64",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nhello\r\n0\r\n\r\n", 400),
    row("chunk data: not followed by CRLF",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400),
    row("chunk framing: bare LF after size",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400),
    row("chunk framing: bare LF after data",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", 400),
    row("chunk framing: bare LF after last chunk",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\n\r\n", 400),
    row("chunk extension: space in name",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a b\r\nhello\r\n0\r\n\r\n", 400),
    row("chunk extension: unterminated quote",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"open\r\nhello\r\n0\r\n\r\n", 400),
    row("chunk extension: trailing space",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b \r\nhello\r\n0\r\n\r\n", 400),
    row("chunk extension: control byte in a quoted-pair",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"\\\x01\"\r\nhello\r\n0\r\n\r\n", 400),
    row("trailer: no colon",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nNoColon\r\n\r\n", 400),
    row("trailer: NUL in value",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\0b\r\n\r\n", 400),
    // Host (RFC 9112 §3.2).
    row("host: missing on HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n", 400),
    row("host: twice", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    row("host: twice, same value, other case", b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400),
    row("host: twice on HTTP/1.0", b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    // Expectations (RFC 9110 §10.1.1).
    row("expect: unknown expectation",
     b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 0\r\n\r\n", 417),
];

/// The server's limits that [`over_limits`] makes rows for; the same fields as the
/// server's configuration.
///
/// # Examples
///
/// ```
/// use ropewalk_testkit::malformed::Limits;
///
/// let limits = Limits { max_body: 1024, ..Limits::DEFAULT };
/// assert_eq!(limits.max_uri, 8 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of a request head.
    pub max_header_bytes: usize,
    /// Most header fields.
    pub max_headers: usize,
    /// Most bytes of a request target.
    pub max_uri: usize,
    /// Most bytes of a request body.
    pub max_body: u64,
}

impl Limits {
    /// The server's default limits (`ServerConfig::default()`): 64 KiB of head, 100
    /// fields, 8 KiB of target, 16 MiB of body.
    pub const DEFAULT: Limits = Limits {
        max_header_bytes: 64 * 1024,
        max_headers: 100,
        max_uri: 8 * 1024,
        max_body: 16 * 1024 * 1024,
    };

    /// Small limits, so that the rows past them stay short: 256 bytes of head, 8 fields,
    /// 64 bytes of target, 16 bytes of body.
    pub const SMALL: Limits = Limits {
        max_header_bytes: 256,
        max_headers: 8,
        max_uri: 64,
        max_body: 16,
    };
}

/// A body past a limit is sent up to this many bytes; past it, only declared.
const BODY_SENT: u64 = 64;

/// The rows that pass one of `limits`: the head's bytes and its field count (431), the
/// target (414), a Content-Length and a chunked body (413).
///
/// A body one byte over `max_body` is sent in full when it is short (up to 64 bytes) and
/// only its first 64 bytes otherwise: the server must refuse on the declared size, before
/// it reads the body.
///
/// # Examples
///
/// ```
/// use ropewalk_testkit::malformed::{over_limits, Limits};
///
/// let rows = over_limits(&Limits::SMALL);
/// assert_eq!(rows.iter().filter(|r| r.status == 431).count(), 2);
/// assert!(rows.iter().all(|r| r.request.len() < 1024));
/// ```
pub fn over_limits(limits: &Limits) -> Vec<MalformedRequest> {
    let a = |n: usize| "a".repeat(n);
    let over_body = limits.max_body + 1;
    // Sent in full when short; otherwise the server must stop at the declared size.
    let body = a(over_body.min(BODY_SENT) as usize);
    let mut fields = String::new();
    for i in 0..limits.max_headers {
        fields.push_str(&format!("X-{i}: {i}\r\n"));
    }
    let owned = |name: &'static str, request: String, status: u16| MalformedRequest {
        name,
        request: Cow::Owned(request.into_bytes()),
        status,
    };
    vec![
        owned(
            "limit: head over max_header_bytes",
            format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", a(limits.max_header_bytes)),
            431,
        ),
        // Host and max_headers more: one field too many.
        owned(
            "limit: more fields than max_headers",
            format!("GET / HTTP/1.1\r\nHost: x\r\n{fields}\r\n"),
            431,
        ),
        owned(
            "limit: target over max_uri",
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", a(limits.max_uri)),
            414,
        ),
        owned(
            "limit: Content-Length over max_body",
            format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {over_body}\r\n\r\n{body}"),
            413,
        ),
        owned(
            "limit: chunked body over max_body",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{over_body:x}\r\n{body}\r\n0\r\n\r\n"
            ),
            413,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_past_the_small_limits_are_one_over_each() {
        let rows = over_limits(&Limits::SMALL);
        let head = &rows[0].request;
        assert!(head.len() > 256);
        let fields = rows[1].request.windows(2).filter(|w| w == b"\r\n").count();
        // Request line, Host, 8 fields, the empty line.
        assert_eq!(fields, 11);
        assert!(rows[2]
            .request
            .starts_with(format!("GET /{} ", "a".repeat(64)).as_bytes()));
        assert!(rows[3].request.ends_with(&[b'a'; 17]));
        assert!(rows[4]
            .request
            .ends_with(b"\r\n11\r\naaaaaaaaaaaaaaaaa\r\n0\r\n\r\n"));
    }

    #[test]
    fn rows_past_the_default_limits_declare_big_bodies_without_sending_them() {
        let rows = over_limits(&Limits::DEFAULT);
        assert!(rows[3].request.ends_with(&[b'a'; 64]));
        assert!(rows.iter().all(|r| r.request.len() < 128 * 1024));
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = MALFORMED.iter().map(|r| r.name).collect();
        names.extend(over_limits(&Limits::SMALL).iter().map(|r| r.name));
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
