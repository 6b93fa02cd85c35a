//! The malformed-request table: every rejection rule of the server, one row each, with
//! the status it must get. Each request is sent with a valid `GET /smuggled` behind it
//! in the same read, and every row must give exactly one response, with its status and
//! `Connection: close`, the connection closed, and no handler call at all — so nothing
//! behind a rejected request is ever read as a second request (no smuggling). The table
//! is run twice: in one read, and one byte per read.
//!
//! The rows run with small limits ([`config`]) so that the 431/414/413 rows stay short;
//! the default limits are covered in `http_parsing.rs`, which also has the accepted
//! neighbours of these rows (what is *not* rejected).

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::{echo, Conn};
use ropewalk_protocols::http::{Request, ServerConfig};

/// Sent behind each row, in the same write.
const SMUGGLED: &[u8] = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

/// 70 bytes of `a`, for the limit rows.
macro_rules! a70 {
    () => {
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    };
}

/// The limits the table runs with.
fn config() -> ServerConfig {
    ServerConfig {
        max_header_bytes: 256,
        max_headers: 8,
        max_uri: 64,
        max_body: 16,
        ..ServerConfig::default()
    }
}

/// (name, request, status).
#[rustfmt::skip]
const CASES: &[(&str, &[u8], u16)] = &[
    // Request line (RFC 9112 §3).
    ("request line: HTTP/0.9, no version", b"GET /\r\n\r\n", 400),
    ("request line: two spaces after method", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("request line: two spaces before version", b"GET /  HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("request line: trailing space", b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400),
    ("request line: leading space", b" GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("request line: tab separator", b"GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("request line: space inside target", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("request line: two versions", b"GET /a HTTP/1.1 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("request line: bare CR as line end", b"GET / HTTP/1.1\rHost: x\r\n\r\n", 400),
    // Method (a token).
    ("method: separator", b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("method: colon", b"GE:T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("method: NUL", b"G\0T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("method: non-ASCII", b"G\xc3\xa9T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    // Target.
    ("target: NUL", b"GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("target: DEL", b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("target: control byte", b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("target: no leading slash", b"GET foo HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("target: asterisk for GET", b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    // Version.
    ("version: HTTP/2.0", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("version: HTTP/1.2", b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505),
    ("version: lower case", b"GET / http/1.1\r\nHost: x\r\n\r\n", 400),
    ("version: trailing garbage", b"GET / HTTP/1.1x\r\nHost: x\r\n\r\n", 400),
    ("version: no dot", b"GET / HTTP/11\r\nHost: x\r\n\r\n", 400),
    // Header field syntax (RFC 9112 §5).
    ("header: no colon", b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400),
    ("header: empty name", b"GET / HTTP/1.1\r\nHost: x\r\n: value\r\n\r\n", 400),
    ("header: space before colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    ("header: tab before colon", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length\t: 0\r\n\r\n", 400),
    ("header: separator in name", b"GET / HTTP/1.1\r\nHost: x\r\nFo(o: v\r\n\r\n", 400),
    ("header: space in name", b"GET / HTTP/1.1\r\nHost: x\r\nFo o: v\r\n\r\n", 400),
    ("header: non-ASCII name", b"GET / HTTP/1.1\r\nHost: x\r\nFo\xc3\xa9o: v\r\n\r\n", 400),
    // CR, LF, NUL and other controls in values.
    ("value: NUL", b"GET / HTTP/1.1\r\nHost: x\r\nFoo: a\0b\r\n\r\n", 400),
    ("value: bare CR", b"GET / HTTP/1.1\r\nHost: x\r\nFoo: a\rb\r\n\r\n", 400),
    ("value: bare CR hiding a Content-Length",
     b"POST / HTTP/1.1\r\nHost: x\r\nFoo: x\rContent-Length: 5\r\n\r\nhello", 400),
    ("value: DEL", b"GET / HTTP/1.1\r\nHost: x\r\nFoo: a\x7fb\r\n\r\n", 400),
    ("value: control byte", b"GET / HTTP/1.1\r\nHost: x\r\nFoo: a\x01b\r\n\r\n", 400),
    // Obsolete line folding (RFC 9112 §5.2).
    ("obs-fold: space", b"GET / HTTP/1.1\r\nHost: x\r\nFoo: a\r\n b\r\n\r\n", 400),
    ("obs-fold: tab", b"GET / HTTP/1.1\r\nHost: x\r\nFoo: a\r\n\tb\r\n\r\n", 400),
    ("obs-fold: right after the request line", b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400),
    // Content-Length forms (RFC 9112 §6.3; CVE-2022-24801, CVE-2020-10108).
    ("content-length: plus sign", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", 400),
    ("content-length: negative", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\nhello", 400),
    ("content-length: hex", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello", 400),
    ("content-length: list", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello", 400),
    ("content-length: inner space", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\nhello", 400),
    ("content-length: empty", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\nhello", 400),
    ("content-length: decimal point", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5.0\r\n\r\nhello", 400),
    ("content-length: past u64",
     b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n", 400),
    ("content-length: two equal fields",
     b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    ("content-length: two different fields",
     b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello", 400),
    // Content-Length with Transfer-Encoding (RFC 9112 §6.1; CVE-2020-10109).
    ("CL+TE: Content-Length first",
     b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("CL+TE: Transfer-Encoding first",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    // Transfer codings: only a final `chunked` (501 for the rest).
    ("transfer-encoding: gzip",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501),
    ("transfer-encoding: chunked not last",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501),
    ("transfer-encoding: chunked twice",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501),
    ("transfer-encoding: gzip and chunked in two fields",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501),
    ("transfer-encoding: identity",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501),
    ("transfer-encoding: empty",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    ("transfer-encoding: on HTTP/1.0",
     b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    // Chunk framing (RFC 9112 §7.1).
    ("chunk size: 0x prefix",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk size: plus sign",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk size: negative",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk size: not hex",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\ng\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk size: empty",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk size: leading space",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk size: past u64",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk data: not followed by CRLF",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400),
    ("chunk framing: bare LF after size",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400),
    ("chunk framing: bare LF after data",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", 400),
    ("chunk framing: bare LF after last chunk",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\n\r\n", 400),
    ("chunk extension: space in name",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a b\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk extension: unterminated quote",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"open\r\nhello\r\n0\r\n\r\n", 400),
    ("trailer: no colon",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nNoColon\r\n\r\n", 400),
    ("trailer: NUL in value",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\0b\r\n\r\n", 400),
    // Host (RFC 9112 §3.2).
    ("host: missing on HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("host: twice", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("host: twice, same value, other case", b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400),
    ("host: twice on HTTP/1.0", b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    // Expectations (RFC 9110 §10.1.1).
    ("expect: unknown expectation",
     b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 0\r\n\r\n", 417),
    // Limits: header bytes and count 431 (RFC 6585), target 414, body 413.
    ("limit: head over max_header_bytes", concat!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", a70!(), a70!(), a70!(), a70!(), "\r\n\r\n"
    ).as_bytes(), 431),
    ("limit: more fields than max_headers",
     b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\nH: 8\r\n\r\n", 431),
    ("limit: target over max_uri",
     concat!("GET /", a70!(), " HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(), 414),
    ("limit: Content-Length over max_body",
     b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\nhello hello hello", 413),
    ("limit: chunked body over max_body",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n11\r\nhello hello hello\r\n0\r\n\r\n", 413),
];

/// Feeds `request` + [`SMUGGLED`] (in one read, or a byte per read) and checks the row;
/// returns what went wrong.
fn check(name: &str, request: &[u8], status: u16, bytewise: bool) -> Result<(), String> {
    let seen = Rc::new(RefCell::new(Vec::<String>::new()));
    let s = seen.clone();
    let mut c = Conn::with_config(
        move |req: Request| {
            s.borrow_mut().push(req.target().to_string());
            echo(req)
        },
        config(),
    );
    let mut input = request.to_vec();
    input.extend_from_slice(SMUGGLED);
    if bytewise {
        c.send_bytewise(&input);
    } else {
        c.send(&input);
    }
    let how = if bytewise {
        "a byte per read"
    } else {
        "one read"
    };
    let fail =
        |what: String, c: &Conn| Err(format!("{name} ({how}): {what}; wrote {:?}", c.output()));
    let all = c.responses();
    if all.len() != 1 {
        return fail(format!("{} responses, not one", all.len()), &c);
    }
    let resp = &all[0];
    if resp.status != status {
        return fail(format!("status {}, not {status}", resp.status), &c);
    }
    if resp.header("connection") != Some("close") {
        return fail("no Connection: close".into(), &c);
    }
    if !c.closed() {
        return fail("the connection was left open".into(), &c);
    }
    if !seen.borrow().is_empty() {
        return fail(format!("the handler saw {:?}", seen.borrow()), &c);
    }
    // Whatever the client sends next is never read either.
    c.send(SMUGGLED);
    if c.responses().len() != 1 || !seen.borrow().is_empty() {
        return fail("read a request after closing".into(), &c);
    }
    Ok(())
}

/// Runs every row, and reports every row that fails (not only the first).
fn check_all(bytewise: bool) {
    let failures: Vec<String> = CASES
        .iter()
        .filter_map(|&(name, request, status)| check(name, request, status, bytewise).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn the_table_has_every_rule() {
    assert!(CASES.len() >= 40, "only {} rows", CASES.len());
    let mut names: Vec<&str> = CASES.iter().map(|c| c.0).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CASES.len(), "two rows share a name");
    for status in [400, 413, 414, 417, 431, 501, 505] {
        assert!(CASES.iter().any(|c| c.2 == status), "no row for {status}");
    }
}

/// The request behind each row is itself valid: were it read, it would be answered.
#[test]
fn the_smuggled_request_alone_is_answered() {
    let mut c = Conn::with_config(echo, config());
    c.send(SMUGGLED);
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "GET /smuggled 0:"));
    assert!(!c.closed());
}

#[test]
fn every_row_in_one_read() {
    check_all(false);
}

#[test]
fn every_row_a_byte_per_read() {
    check_all(true);
}
