//! Request-head strictness: each malformed request gets its status, nothing after it is
//! read, and the connection closes. Mirrors `twisted/web/test/test_http.py` `ParsingTests`
//! and `ChunkedTransferEncodingTests`, stricter where RFC 9112 asks for it.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::{echo, get, Conn};
use ropewalk_protocols::http::{Request, Response, ServerConfig};
use ropewalk_reactor::deferred::Failure;

/// Sends `request` followed by a valid pipelined GET, and checks: one response with
/// `status`, no handler call, connection closed, and no internals in the body.
#[track_caller]
fn rejects(request: impl AsRef<[u8]>, status: u16) {
    rejects_with(request, status, ServerConfig::default());
}

#[track_caller]
fn rejects_with(request: impl AsRef<[u8]>, status: u16, config: ServerConfig) {
    let calls = Rc::new(Cell::new(0));
    let seen = calls.clone();
    let mut c = Conn::with_config(
        move |req: Request| {
            seen.set(seen.get() + 1);
            echo(req)
        },
        config,
    );
    let mut input = request.as_ref().to_vec();
    input.extend_from_slice(get("/smuggled").as_bytes());
    c.send(&input);
    let shown = String::from_utf8_lossy(request.as_ref()).into_owned();
    let resp = c.response();
    assert_eq!(resp.status, status, "for {shown:?}: {}", c.output());
    assert_eq!(calls.get(), 0, "handler called for {shown:?}");
    assert!(c.closed(), "connection left open after {shown:?}");
    assert_eq!(resp.header("connection"), Some("close"), "for {shown:?}");
    assert!(!c.output().contains("smuggled"));
    // Anything more from the client is ignored.
    c.send(get("/later"));
    assert_eq!(c.responses().len(), 1);
}

/// The request is accepted: the echo handler answers 200 and the connection stays open.
#[track_caller]
fn accepts(request: impl AsRef<[u8]>) -> String {
    let mut c = Conn::new(echo);
    c.send(request.as_ref());
    let resp = c.response();
    assert_eq!(
        resp.status,
        200,
        "for {:?}",
        String::from_utf8_lossy(request.as_ref())
    );
    if !request.as_ref().windows(8).any(|w| w == b"HTTP/1.0") {
        assert!(!c.closed());
    }
    resp.text()
}

/// Twisted: HTTP1_1Tests (a plain GET is answered and the connection stays open).
#[test]
fn plain_get_is_answered() {
    assert_eq!(accepts(get("/")), "GET / 0:");
    assert_eq!(accepts(get("/a/b?c=d&e")), "GET /a/b?c=d&e 0:");
}

/// Twisted: ParsingTests.test_invalidVersion. Twisted answers 400 to any version other
/// than `HTTP/1.0`/`HTTP/1.1`; we answer 505 to a well-formed version of another major
/// version (RFC 9110 §15.6.6), serve a higher minor version of HTTP/1 as HTTP/1.1 (RFC
/// 9110 §2.5), and answer 400 to a malformed one.
#[test]
fn versions() {
    rejects("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505);
    rejects("GET / HTTP/9.9\r\n\r\n", 505);
    rejects("GET / HTTP/0.9\r\n\r\n", 505);
    rejects("GET / HTTP/1.10\r\nHost: x\r\n\r\n", 400);
    rejects("GET / HTTP/1.x\r\nHost: x\r\n\r\n", 400);
    // A higher minor version is served as HTTP/1.1: Host is required, keep-alive is the
    // default, and the answer says HTTP/1.1.
    rejects("GET / HTTP/1.2\r\n\r\n", 400);
    for minor in ["2", "9"] {
        let mut c = Conn::new(echo);
        c.send_bytewise(format!("GET /v HTTP/1.{minor}\r\nHost: x\r\n\r\n").as_bytes());
        c.send(format!("GET /w HTTP/1.{minor}\r\nHost: x\r\n\r\n"));
        let all = c.responses();
        assert_eq!(all.len(), 2, "{}", c.output());
        assert_eq!(all[0].text(), "GET /v 0:");
        assert_eq!(all[1].text(), "GET /w 0:");
        assert!(c.output().starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(!c.closed());
    }
    rejects("GET / http/1.1\r\nHost: x\r\n\r\n", 400);
    rejects("GET / HTTP/1.1x\r\nHost: x\r\n\r\n", 400);
    rejects("GET / HTTP/11\r\nHost: x\r\n\r\n", 400);
    // HTTP/0.9's request line has no version.
    rejects("GET /\r\n\r\n", 400);
    accepts("GET / HTTP/1.0\r\n\r\n");
}

/// Twisted: ParsingTests.test_invalidRequestLineExtraSpaces (and a space inside the
/// target, which once looked like a version we do not speak and got 505).
#[test]
fn request_line_spaces() {
    rejects("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    rejects("GET /  HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    rejects("GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400);
    rejects(" GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    rejects("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    rejects("GET /a HTTP/1.1 HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    rejects("GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

/// Twisted: ParsingTests.test_invalidMethodNonAscii, test_invalidMethodEmpty,
/// test_invalidMethodNUL.
#[test]
fn bad_methods() {
    rejects("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    rejects(" / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    rejects("G\0T / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    rejects("G\u{e9}T / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    rejects("GE:T / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

/// Twisted: ParsingTests.test_invalidRequestTargetEmpty, test_invalidRequestTargetNUL,
/// test_invalidRequestTargetWhitespace. Twisted accepts target bytes 0x7F-0xB0 (a
/// decimal/hex slip); we reject DEL and every control byte.
#[test]
fn bad_targets() {
    rejects("GET  HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    rejects("GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    rejects("GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    rejects("GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    // Neither origin, absolute nor asterisk form.
    rejects("GET foo HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    rejects("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    // Absolute form is accepted (Twisted too).
    assert_eq!(
        accepts("GET http://x.test/p?q HTTP/1.1\r\nHost: x.test\r\n\r\n"),
        "GET http://x.test/p?q 0:"
    );
}

/// Twisted: ParsingTests.test_invalidHeaderNoColon.
#[test]
fn header_without_colon() {
    rejects("GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400);
}

/// Twisted: ParsingTests.test_invalidHeaderOnlyColon.
#[test]
fn header_with_empty_name() {
    rejects("GET / HTTP/1.1\r\nHost: x\r\n: value\r\n\r\n", 400);
}

/// Twisted: ParsingTests.test_invalidHeaderWhitespaceBeforeColon (RFC 9112 §5.1: MUST
/// reject).
#[test]
fn whitespace_before_colon() {
    rejects("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400);
    rejects(
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length\t: 0\r\n\r\n",
        400,
    );
}

/// Twisted: ParsingTests.test_invalidHeaderNameChars.
#[test]
fn bad_header_name_characters() {
    for name in [
        "Fo(o",
        "Fo o",
        "Fo\"o",
        "Fo/o",
        "Fo@o",
        "Fo\u{e9}o",
        "Fo\0o",
    ] {
        rejects(
            format!("GET / HTTP/1.1\r\nHost: x\r\n{name}: v\r\n\r\n"),
            400,
        );
    }
}

/// Twisted: ParsingTests.test_invalidHeaderValueControlChars (Twisted issue #12754: a
/// bare CR or LF in a value hid a `Content-Length` from one parser but not another).
#[test]
fn control_characters_in_values() {
    rejects("GET / HTTP/1.1\r\nHost: x\r\nFoo: a\0b\r\n\r\n", 400);
    rejects("GET / HTTP/1.1\r\nHost: x\r\nFoo: a\rb\r\n\r\n", 400);
    rejects(
        "POST / HTTP/1.1\r\nHost: x\r\nFoo: x\rContent-Length: 5\r\n\r\nhello",
        400,
    );
    rejects("GET / HTTP/1.1\r\nHost: x\r\nFoo: a\x7fb\r\n\r\n", 400);
    rejects("GET / HTTP/1.1\r\nHost: x\r\nFoo: a\x01b\r\n\r\n", 400);
}

/// Twisted: ParsingTests.test_headersMultiline. Twisted accepts obsolete line folding and
/// joins the lines; RFC 9112 §5.2 lets a server reject it, and we do (400).
#[test]
fn obs_fold_is_rejected() {
    rejects("GET / HTTP/1.1\r\nHost: x\r\nFoo: a\r\n b\r\n\r\n", 400);
    rejects("GET / HTTP/1.1\r\nHost: x\r\nFoo: a\r\n\tb\r\n\r\n", 400);
    // A fold right after the request line.
    rejects("GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400);
}

/// Twisted: ParsingTests.test_headerStripWhitespace: only SP and HTAB are trimmed.
#[test]
fn header_values_are_trimmed_of_sp_and_htab_only() {
    let seen = Rc::new(std::cell::RefCell::new(String::new()));
    let s = seen.clone();
    let mut c = Conn::new(move |req: Request| {
        *s.borrow_mut() = req.headers().get("x-a").unwrap_or("").to_string();
        Ok(Response::new(204))
    });
    c.send("GET / HTTP/1.1\r\nHost: x\r\nX-A: \t  some value \t \r\n\r\n");
    assert_eq!(c.response().status, 204);
    assert_eq!(*seen.borrow(), "some value");
}

/// Twisted: ParsingTests.test_invalidContentLengthHeader, test_contentLengthMalformed,
/// test_contentLengthTooPositive, test_contentLengthNegative (CVE-2022-24801).
#[test]
fn malformed_content_length() {
    for cl in [
        "+5", "-1", "1 2", "five", "0x5", "5,5", "5, 5", "", "5.0", "\u{665}",
    ] {
        rejects(
            format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}\r\n\r\nhello"),
            400,
        );
    }
    // Leading zeros are digits (Twisted accepts them too).
    let mut c = Conn::new(echo);
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0005\r\n\r\nhello");
    assert_eq!(c.response().text(), "POST / 5:hello");
}

/// A `Content-Length` past `u64::MAX` is a 400 (hyper answers 431; either way, no
/// wrap-around).
#[test]
fn content_length_overflowing_u64() {
    rejects(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n",
        400,
    );
    rejects(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999999\r\n\r\n",
        400,
    );
    // u64::MAX itself parses, and is over the body limit.
    rejects(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\n",
        413,
    );
}

/// Twisted: ParsingTests.test_duplicateContentLengths,
/// test_duplicateContentLengthsWithPipelinedRequests (CVE-2020-10108): two lengths, even
/// equal, are a 400 and the request is never processed.
#[test]
fn duplicate_content_length() {
    rejects(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        400,
    );
    rejects(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello",
        400,
    );
}

/// Twisted: ParsingTests.test_contentLengthAndTransferEncoding,
/// test_contentLengthAndTransferEncodingWithPipelinedRequests (CVE-2020-10109). hyper
/// lets TE win and closes afterwards; we reject (RFC 9112 §6.1 allows either).
#[test]
fn content_length_with_transfer_encoding() {
    rejects(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
    rejects(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
    );
}

/// Twisted: ParsingTests.test_unknownTransferEncoding (Twisted answers 400). RFC 9112
/// §6.1: a coding we do not implement is 501; `chunked` must be the final coding.
/// Twisted accepts `identity`; it is no longer a registered coding, and we answer 501.
/// Transfer codings (RFC 9112 §6.1, §6.3, §7): only a lone `chunked` is implemented. A
/// well-formed list of registered codings we do not implement is 501 (§6.1); a list in
/// which `chunked` is not last, appears twice, or a coding is not a registered one or
/// not a token at all is malformed framing (§6.3: the length cannot be determined): 400.
#[test]
fn transfer_codings() {
    let chunked_body = "\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    for te in [
        "gzip",
        "gzip, chunked",
        "identity",
        "x-gzip, deflate, chunked",
    ] {
        rejects(
            format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}{chunked_body}"),
            501,
        );
    }
    // Split across two fields: still `gzip, chunked`.
    rejects(
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked{chunked_body}"
        ),
        501,
    );
    for te in [
        "",
        "chunked, gzip",
        "chunked, chunked",
        "xchunked",
        "chunkedx",
        "chunked-false",
        "\u{a0}chunked",
        "chunked\u{a0}",
        "foo",
        "foo, chunked",
        "chunked;q=1",
        "\"chunked\"",
        // Empty list elements (RFC 9110 §5.6.1 says to ignore them): refused rather than
        // guessed at.
        ",chunked",
        "chunked,",
    ] {
        rejects(
            format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}{chunked_body}"),
            400,
        );
    }
    // Two `chunked` fields: chunked twice.
    rejects(
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked{chunked_body}"
        ),
        400,
    );
    // obs-text before chunked.
    let mut raw = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \xa0chunked".to_vec();
    raw.extend_from_slice(chunked_body.as_bytes());
    rejects(raw, 400);
    // HTTP/1.0 has no transfer codings (RFC 9112 §6.1): 400, as hyper.
    rejects(
        format!("POST / HTTP/1.0\r\nTransfer-Encoding: chunked{chunked_body}"),
        400,
    );
    // Twisted: ChunkedTransferEncodingTests.test_chunkedEncoding (case-insensitive).
    let mut c = Conn::new(echo);
    c.send(format!(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED{chunked_body}"
    ));
    assert_eq!(c.response().text(), "POST / 5:hello");
}

/// Twisted: ChunkedTransferEncodingTests.test_malformedChunkSize,
/// test_malformedChunkSizeHex, test_malformedChunkSizeNegative,
/// test_malformedChunkedEncoding (CVE-2022-24801: `0x`, `+`, `-`).
#[test]
fn bad_chunk_sizes() {
    for size in [
        "0x5",
        "+5",
        "-5",
        "g",
        "",
        " 5",
        "5 5",
        // Whitespace after the size is BWS, allowed only before a `;` (RFC 9112 §7.1.1).
        "5 ",
        "5\t",
        "5 \t ",
        "0x",
        "5\x0b",
        // 17 hex digits: past u64.
        "10000000000000000",
        "fffffffffffffffff",
    ] {
        rejects(
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nhello\r\n0\r\n\r\n"
            ),
            400,
        );
    }
}

/// Twisted: ChunkedTransferEncodingTests.test_malformedChunkEnd.
#[test]
fn chunk_data_not_followed_by_crlf() {
    rejects(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        400,
    );
    rejects(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r0\r\n\r\n",
        400,
    );
}

/// A bare LF anywhere in the chunked framing is a 400 (RFC 9112 §7.1; lenient LF
/// handling here is a known smuggling vector).
#[test]
fn bare_lf_in_chunk_framing() {
    for body in [
        "5\nhello\r\n0\r\n\r\n",
        "5\r\nhello\n0\r\n\r\n",
        "5\r\nhello\r\n0\n\r\n",
        "5\r\nhello\r\n0\r\n\n",
        "5;a=b\nhello\r\n0\r\n\r\n",
    ] {
        rejects(
            format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}"),
            400,
        );
    }
}

/// Twisted: ChunkedTransferEncodingTests.test_extensions, test_extensionsMalformed
/// (CVE-2022-24801: illegal characters in extensions).
#[test]
fn chunk_extensions() {
    let mut c = Conn::new(echo);
    c.send(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         5;name=value;flag ; q=\"a \\\" b\"\r\nhello\r\n0;last\r\n\r\n",
    );
    assert_eq!(c.response().text(), "POST / 5:hello");
    // BWS before `;` and around `=`.
    let mut c = Conn::new(echo);
    c.send(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         5 \t;a = b\t;c\r\nhello\r\n0 ;d\r\n\r\n",
    );
    assert_eq!(c.response().text(), "POST / 5:hello");
    for ext in [
        ";",
        ";=v",
        "; a=",
        ";a=\"open",
        ";a\x01",
        ";a=\x7f",
        "x",
        ";a b",
        ";a=b c",
        // BWS only before `;` and around `=`: never at the end of the line.
        ";a ",
        ";a=b ",
        ";a=\"b\" ",
        ";a=b\t",
        // A quoted-pair escapes only HTAB, SP, VCHAR and obs-text.
        ";a=\"\\\x01\"",
        ";a=\"\\\x7f\"",
    ] {
        rejects(
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5{ext}\r\nhello\r\n0\r\n\r\n"
            ),
            400,
        );
    }
}

/// Twisted: ChunkedTransferEncodingTests.test_oversizedChunkSizeLine,
/// test_oversizedChunkSizeLinePartial (1024 bytes, as Twisted's code).
#[test]
fn oversized_chunk_size_line() {
    let long = format!("5;a={}", "b".repeat(2000));
    rejects(
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{long}\r\nhello\r\n0\r\n\r\n"
        ),
        400,
    );
    // Partial: the line has no end yet, but is already too long.
    let mut c = Conn::new(echo);
    c.send(format!(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{long}"
    ));
    assert_eq!(c.response().status, 400);
    assert!(c.closed());
}

/// Twisted: ChunkedTransferEncodingTests.test_trailerHeaders. Trailer fields are read and
/// dropped, never merged into the request's headers (where they could override
/// `Content-Length`, `Host` or an authentication header).
#[test]
fn trailers_are_never_merged() {
    let seen = Rc::new(std::cell::RefCell::new(Vec::new()));
    let s = seen.clone();
    let mut c = Conn::new(move |req: Request| {
        s.borrow_mut().extend(
            req.headers()
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>(),
        );
        echo(req)
    });
    c.send(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n0\r\nX-Trailer: 1\r\nContent-Length: 99\r\nHost: evil\r\n\r\n",
    );
    c.send(get("/next"));
    let rs = c.responses();
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].text(), "POST / 5:hello");
    assert_eq!(rs[1].text(), "GET /next 0:");
    let seen = seen.borrow();
    assert!(seen
        .iter()
        .all(|h| !h.to_ascii_lowercase().starts_with("x-trailer")));
    assert!(seen
        .iter()
        .all(|h| !h.contains("evil") && !h.contains("99")));
}

/// Twisted: ChunkedTransferEncodingTests.test_tooLongTrailerHeader,
/// test_unfinishedTrailerHeader: malformed trailers are rejected.
#[test]
fn bad_trailers() {
    for trailer in [
        "NoColon\r\n",
        "Bad Name: v\r\n",
        "X: a\0b\r\n",
        "X: a\nY: b\r\n",
    ] {
        rejects(
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n{trailer}\r\n"
            ),
            400,
        );
    }
}

/// RFC 9112 §3.2: an HTTP/1.1 request without `Host`, or with two, is a 400. Twisted
/// accepts both; we do not.
#[test]
fn host_header() {
    rejects("GET / HTTP/1.1\r\n\r\n", 400);
    rejects("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    rejects("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400);
    rejects("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    // HTTP/1.0 needs none.
    accepts("GET / HTTP/1.0\r\n\r\n");
    // An empty Host is allowed (RFC 9110 §7.2, for targets without an authority).
    accepts("GET / HTTP/1.1\r\nHost:\r\n\r\n");
}

/// Twisted: ParsingTests.test_tooManyHeaders, test_headerLimitPerRequest. Twisted
/// answers 400; we answer 431 (RFC 6585), as hyper. The limit is per request.
#[test]
fn too_many_headers() {
    let config = || ServerConfig {
        max_headers: 10,
        ..ServerConfig::default()
    };
    let fields = |n: usize| -> String { (0..n).map(|i| format!("X-{i}: v\r\n")).collect() };
    // Host plus 9 others: exactly at the limit.
    let ok = format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n", fields(9));
    let mut c = Conn::with_config(echo, config());
    c.send(format!("{ok}{ok}{ok}"));
    assert_eq!(c.responses().len(), 3);
    assert!(!c.closed());
    rejects_with(
        format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n", fields(10)),
        431,
        config(),
    );
}

/// Twisted: ParsingTests.test_headersTooBigInitialCommand, test_headersTooBigOtherHeaders,
/// test_headersTooBigPerRequest. Twisted answers 400; we answer 431.
#[test]
fn header_bytes_limit() {
    let config = || ServerConfig {
        max_header_bytes: 1024,
        ..ServerConfig::default()
    };
    let big = |n: usize| {
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(n)
        )
    };
    // The head, CRLFs included, exactly at the limit; then again on the same connection.
    let at_limit = big(1024 - big(0).len());
    assert_eq!(at_limit.len(), 1024);
    let mut c = Conn::with_config(echo, config());
    c.send(format!("{at_limit}{at_limit}"));
    assert_eq!(c.responses().len(), 2);
    assert!(!c.closed());
    rejects_with(big(1025 - big(0).len()), 431, config());
    // Incomplete but already too big: no need to wait for its end.
    let mut c = Conn::with_config(echo, config());
    c.send(format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}",
        "a".repeat(2000)
    ));
    assert_eq!(c.response().status, 431);
    assert!(c.closed());
    // Byte by byte too.
    let mut c = Conn::with_config(echo, config());
    c.send_bytewise(big(1100));
    assert_eq!(c.response().status, 431);
    assert!(c.closed());
}

/// A target longer than `max_uri` is a 414 (RFC 9112 §3), even before its line ends.
#[test]
fn uri_too_long() {
    let config = || ServerConfig {
        max_uri: 100,
        ..ServerConfig::default()
    };
    let path = |n: usize| format!("/{}", "p".repeat(n - 1));
    let mut c = Conn::with_config(echo, config());
    c.send(get(&path(100)));
    assert_eq!(c.response().status, 200);
    rejects_with(get(&path(101)), 414, config());
    let mut c = Conn::with_config(echo, config());
    c.send(format!("GET {}", path(10_000)));
    assert_eq!(c.response().status, 414);
    assert!(c.closed());
}

/// Unknown expectations get 417 (RFC 9110 §10.1.1).
#[test]
fn unknown_expectation() {
    rejects(
        "POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 0\r\n\r\n",
        417,
    );
}

/// Leading empty lines before a request line are skipped (RFC 9112 §2.2 "SHOULD
/// ignore at least one"); Twisted tolerates one.
#[test]
fn leading_empty_lines() {
    assert_eq!(accepts(format!("\r\n{}", get("/"))), "GET / 0:");
}

/// Bare LF as a line end in a request head is refused (400 and close), alone or mixed
/// with CRLF, as llhttp and Twisted do: RFC 9112 §2.2 only *allows* a recipient to take
/// it, and a front that reads `x\nContent-Length: 23` as one value sees other request
/// boundaries than we would (httparse alone takes bare LF).
#[test]
fn bare_lf_head_line_endings() {
    for head in [
        "GET /lf HTTP/1.1\nHost: x\n\n",
        "GET /lf HTTP/1.1\nHost: x\r\n\r\n",
        "GET /lf HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
        "GET /lf HTTP/1.1\r\nHost: x\r\n\n",
        "\nGET /lf HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        rejects(head, 400);
    }
}

/// llhttp's smuggling regression case: a bare LF hides a `Content-Length` from a front
/// that reads LF as part of a value. One 400 and a close, never an answer for `/admin`.
#[test]
fn bare_lf_cannot_smuggle_a_request() {
    let calls = Rc::new(Cell::new(0));
    let seen = calls.clone();
    let mut c = Conn::new(move |req: Request| {
        seen.set(seen.get() + 1);
        echo(req)
    });
    c.send(
        "GET / HTTP/1.1\r\nHost: localhost\r\nDummy: x\nContent-Length: 23\r\n\r\n\
         GET / HTTP/1.1\r\nDummy: GET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    let all = c.responses();
    assert_eq!(all.len(), 1, "{}", c.output());
    assert_eq!(all[0].status, 400);
    assert_eq!(calls.get(), 0);
    assert!(c.closed());
}

/// No malformed input gets a 5xx other than 501/505, whose meaning is "we do not
/// implement that", and none shows internals. A smoke test over bytes a fuzzer would try.
#[test]
fn garbage_never_gets_a_server_error() {
    let inputs: Vec<Vec<u8>> = vec![
        b"\0\0\0\0\r\n\r\n".to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), // a TLS ClientHello
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\xff\xfe: x\r\n\r\n".to_vec(),
        (0u8..=255).collect(),
        b"\r\n\r\n\r\n\r\n".repeat(10),
    ];
    for input in inputs {
        let mut c =
            Conn::new(|_: Request| -> Result<Response, Failure> { panic!("handler reached") });
        c.send(&input);
        c.advance(60.0);
        for r in c.responses() {
            assert!(
                r.status < 500 || r.status == 505 || r.status == 501,
                "{input:?} -> {}",
                r.status
            );
        }
        assert!(c.closed(), "{input:?} left the connection open");
    }
}

/// The handler sees every field as sent (blanks around values trimmed, order kept) and
/// the target, whether the head is UTF-8 (copied whole) or holds obs-text (copied field
/// by field, lossily).
#[test]
fn fields_and_target_reach_the_handler() {
    let show = |req: Request| {
        let fields: Vec<String> = req
            .headers()
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        Ok(Response::text(format!(
            "{} {} {} {}",
            req.method(),
            req.path(),
            req.query().unwrap_or("-"),
            fields.join("|")
        )))
    };
    for (head, want) in [
        (
            &b"GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nX-One:  spaced \t\r\nX-Two:\r\nX-Blank: \t \r\nX-Utf8: caf\xc3\xa9\r\nA: 1\r\nB: 2\r\n\r\n"[..],
            "GET /a/b x=1 Host=h|X-One=spaced|X-Two=|X-Blank=|X-Utf8=caf\u{e9}|A=1|B=2",
        ),
        (
            &b"BREW /pot HTTP/1.1\r\nHost: h\r\nX-Obs: a\xffb \r\n\r\n"[..],
            "BREW /pot - Host=h|X-Obs=a\u{fffd}b",
        ),
    ] {
        let mut c = common::Conn::new(show);
        c.send(head);
        let resp = c.response();
        assert_eq!(resp.status, 200);
        assert_eq!(String::from_utf8_lossy(&resp.body), want);
    }
}
