//! Persistence (RFC 9112 §9.3), response heads (Date, Server, HEAD, 204/304), routing
//! statuses (404/405/501) and handler failures (500), on a `StringTransport`.
//! Mirrors `twisted/web/test/test_http.py` `PersistenceTests`, `HTTP1_0Tests`,
//! `HTTP1_1Tests`, `HTTP1_1_close_Tests` and `test_web.py` `AllowedMethodsTests`,
//! `NewRenderTests`, `RequestTests`.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::{echo, get, parse_head_responses, Conn};
use ropewalk_protocols::http::{Request, Response, ServerConfig, Site};
use ropewalk_reactor::deferred::{Deferred, Failure};
use ropewalk_reactor::Protocol;

/// Twisted: PersistenceTests.test_http11, HTTP1_1Tests. HTTP/1.1 is persistent by default.
#[test]
fn http11_is_persistent() {
    let mut c = Conn::new(echo);
    c.send(get("/1"));
    c.send(get("/2"));
    let rs = c.responses();
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[1].text(), "GET /2 0:");
    assert!(rs.iter().all(|r| r.header("connection").is_none()));
    assert!(!c.closed());
}

/// Twisted: PersistenceTests.test_http10, HTTP1_0Tests. HTTP/1.0 without keep-alive is
/// answered, then closed; what follows is not read.
#[test]
fn http10_closes() {
    let mut c = Conn::new(echo);
    c.send(format!("GET / HTTP/1.0\r\n\r\n{}", get("/after")));
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
    assert!(!c.output().contains("/after"));
}

/// HTTP/1.0 with `Connection: keep-alive` stays open (RFC 9112 §9.3, as hyper). Twisted
/// differs: it never keeps an HTTP/1.0 connection.
#[test]
fn http10_keep_alive() {
    let mut c = Conn::new(echo);
    c.send("GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    c.send("GET /2 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    let rs = c.responses();
    assert_eq!(rs.len(), 2);
    assert!(rs
        .iter()
        .all(|r| r.header("connection") == Some("keep-alive")));
    assert!(!c.closed());
    // A later HTTP/1.0 request without it ends the connection.
    c.send("GET /3 HTTP/1.0\r\n\r\n");
    assert_eq!(c.responses()[2].header("connection"), Some("close"));
    assert!(c.closed());
}

/// Twisted: PersistenceTests.test_http11Close, HTTP1_1_close_Tests.
#[test]
fn http11_connection_close() {
    let mut c = Conn::new(echo);
    c.send(format!(
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n{}",
        get("/after")
    ));
    let r = c.response();
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
    c.send(get("/later"));
    assert_eq!(c.responses().len(), 1);
}

/// Connection options are a comma-separated, case-insensitive list, across fields
/// (RFC 9110 §7.6.1). Twisted splits on spaces, so `Upgrade,close` keeps its connection
/// open; here it closes.
#[test]
fn connection_tokens_split_on_commas() {
    for value in [
        "close",
        "CLOSE",
        "keep-alive, close",
        "Upgrade,close",
        "close,Upgrade",
        " ,close, ",
    ] {
        let mut c = Conn::new(echo);
        c.send(format!(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: {value}\r\n\r\n"
        ));
        assert_eq!(c.response().header("connection"), Some("close"), "{value}");
        assert!(c.closed(), "{value}");
    }
    // Two fields.
    let mut c = Conn::new(echo);
    c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n");
    assert!(c.closed());
    // Not a token: `closed`, `close-ish`.
    for value in ["closed", "close-ish", "keep-alive", "Upgrade"] {
        let mut c = Conn::new(echo);
        c.send(format!(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: {value}\r\n\r\n"
        ));
        assert!(!c.closed(), "{value}");
    }
    // HTTP/1.0: keep-alive and close together means close.
    let mut c = Conn::new(echo);
    c.send("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n");
    assert!(c.closed());
}

/// The client half-closes after its request: the answer is written, then the
/// connection closes, and the last response says so.
#[test]
fn eof_after_request() {
    let (d, resolver) = Deferred::<Response>::pending();
    let d = Cell::new(Some(d));
    let mut c = Conn::new(move |_: Request| d.take().unwrap());
    c.send(get("/"));
    assert!(c.conn.eof_received(), "keeps the write side open to answer");
    assert!(!c.closed());
    resolver.callback(Response::text("late")).unwrap();
    let r = c.response();
    assert_eq!(r.text(), "late");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
    // EOF on an idle connection: nothing to answer.
    let mut c = Conn::new(echo);
    assert!(!c.conn.eof_received());
}

/// Twisted: HTTP1_1Tests (`Date` and `Server`), `server.Request.process`. Every response
/// carries one `Date` (IMF-fixdate) and the configured `Server`.
#[test]
fn date_and_server_headers() {
    let mut c = Conn::new(|_: Request| {
        Ok(Response::text("x")
            .with_header("Date", "Mon, 01 Jan 1990 00:00:00 GMT")
            .with_header("Content-Length", "999"))
    });
    c.send(get("/"));
    let r = c.response();
    assert_eq!(r.header_count("date"), 1);
    let date = r.header("date").unwrap();
    assert_ne!(date, "Mon, 01 Jan 1990 00:00:00 GMT");
    assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    assert_eq!(r.header("server"), Some("ropewalk"));
    // A handler's Content-Length never contradicts the body.
    assert_eq!(r.header_count("content-length"), 1);
    assert_eq!(r.header("content-length"), Some("1"));

    let mut c = Conn::with_config(
        |_: Request| Ok(Response::text("x")),
        ServerConfig {
            server_name: None,
            ..ServerConfig::default()
        },
    );
    c.send(get("/"));
    assert_eq!(c.response().header("server"), None);

    // A handler's own Server wins.
    let mut c = Conn::new(|_: Request| Ok(Response::text("x").with_header("Server", "mine")));
    c.send(get("/"));
    let r = c.response();
    assert_eq!(r.header("server"), Some("mine"));
    assert_eq!(r.header_count("server"), 1);
}

/// Twisted: test_web.py NewRenderTests.testImplicitHead, test_unsupportedHeadReturn. HEAD
/// gets GET's headers, `Content-Length` included, and no body; the next request on the
/// connection is read correctly.
#[test]
fn head_has_get_headers_and_no_body() {
    let site = Site::new().get("/", |_: Request| Ok(Response::text("hello, world")));
    let mut c = Conn::new(site);
    c.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = c.t.take();
    let heads = parse_head_responses(&out);
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].status, 200);
    assert_eq!(heads[0].header("content-length"), Some("12"));
    assert_eq!(
        heads[0].header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(out.ends_with(b"\r\n\r\n"));
    c.send(get("/"));
    assert_eq!(c.response().text(), "hello, world");
    assert!(!c.closed());
}

/// A handler that answers HEAD itself with an empty body and the length GET would have:
/// that length is sent (RFC 9110 §9.3.2), not 0.
#[test]
fn head_keeps_a_handler_content_length() {
    let mut c = Conn::new(|req: Request| {
        assert_eq!(req.method(), "HEAD");
        Ok(Response::new(200).with_header("Content-Length", "1234"))
    });
    c.send("HEAD /big HTTP/1.1\r\nHost: x\r\n\r\n");
    let heads = parse_head_responses(&c.t.value());
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].header("content-length"), Some("1234"));
    assert!(!c.closed());
}

/// HEAD for a streamed response with a known length: the length is sent, the body
/// never is, and the writer is told to stop.
#[test]
fn head_of_a_streamed_response() {
    let writer = Rc::new(Cell::new(None));
    let w = writer.clone();
    let mut c = Conn::new(move |_: Request| {
        let (resp, body) = Response::streaming(200);
        w.set(Some(body));
        Ok(resp.with_header("Content-Length", "5"))
    });
    c.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    let body = writer.take().unwrap();
    assert!(body.is_aborted());
    body.write(b"hello");
    body.finish();
    let heads = parse_head_responses(&c.t.value());
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].header("content-length"), Some("5"));
    assert_eq!(heads[0].header("transfer-encoding"), None);
    c.send(get("/"));
    assert_eq!(parse_head_responses(&c.t.value()).len(), 2);
}

/// 204 and 304 never carry a body; 204 has no `Content-Length` (RFC 9110 §8.6).
#[test]
fn no_body_statuses() {
    let mut c = Conn::new(|req: Request| {
        let status = if req.path() == "/204" { 204 } else { 304 };
        Ok(Response::new(status).with_body(b"must not be sent".to_vec()))
    });
    c.send(format!("{}{}", get("/204"), get("/304")));
    c.send(get("/204"));
    let rs = c.responses();
    assert_eq!(
        rs.iter().map(|r| r.status).collect::<Vec<_>>(),
        [204, 304, 204]
    );
    assert_eq!(rs[0].header("content-length"), None);
    assert!(!c.output().contains("must not"));
    assert!(!c.closed());
    // A bare 304 claims no length of 0 for the resource.
    let mut c = Conn::new(|_: Request| Ok(Response::new(304).with_header("ETag", "\"v1\"")));
    c.send(get("/"));
    let r = c.response();
    assert_eq!(r.status, 304);
    assert_eq!(r.header("content-length"), None);
}

/// Twisted: AllowedMethodsTests.test_notAllowed, NewRenderTests.test_notAllowedMethod,
/// AllowedMethodsTests.test_notImplementedQuoting; a missing child is 404.
#[test]
fn routing_statuses() {
    let site = Site::new()
        .get("/", |_: Request| Ok(Response::text("home")))
        .post("/form", |_: Request| Ok(Response::text("posted")));
    let mut c = Conn::new(site);
    c.send(get("/nope"));
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    c.send("BREW / HTTP/1.1\r\nHost: x\r\n\r\n");
    c.send(get("/form"));
    c.send("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    let rs = c.responses();
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [404, 405, 501, 405, 200]);
    assert_eq!(rs[1].header("allow"), Some("GET, HEAD"));
    assert_eq!(rs[3].header("allow"), Some("POST"));
    assert!(rs[4].header("allow").unwrap().contains("GET"));
    // Unknown method and 405 leave the connection open.
    assert!(!c.closed());
}

/// Twisted: RequestTests.test_processingFailedNoTracebackByDefault. A handler that
/// panics, returns an error or errbacks later gives a 500 with no internals, and the
/// connection goes on serving.
#[test]
fn handler_failures_are_500_without_internals() {
    let later = Rc::new(Cell::new(None));
    let l = later.clone();
    let mut c = Conn::new(move |req: Request| -> Deferred<Response> {
        match req.path() {
            "/panic" => panic!("secret panic detail"),
            "/err" => Deferred::fail(Failure::msg("secret error detail")),
            "/later" => {
                let (d, r) = Deferred::pending();
                l.set(Some(r));
                d
            }
            _ => Deferred::succeed(Response::text("fine")),
        }
    });
    c.send(get("/panic"));
    c.send(get("/err"));
    c.send(get("/later"));
    later
        .take()
        .unwrap()
        .errback(Failure::msg("secret late detail"))
        .unwrap();
    c.send(get("/ok"));
    let rs = c.responses();
    assert_eq!(
        rs.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 500, 200]
    );
    assert!(!c.output().contains("secret"));
    assert_eq!(rs[0].text(), "Internal Server Error\n");
    assert!(!c.closed());
}

/// A long run of pipelined requests answered at once: every response, in order, written
/// in batches while the requests are parsed.
#[test]
fn long_pipelined_run_answered_in_order() {
    let mut c = Conn::new(echo);
    let n = 3000;
    let input: String = (0..n).map(|i| get(&format!("/{i:0>200}"))).collect();
    c.send(input.as_bytes());
    let rs = c.responses();
    assert_eq!(rs.len(), n);
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(r.text(), format!("GET /{i:0>200} 0:"));
    }
    assert!(!c.closed());
}

/// The same through a `Site`, whose handlers answer without a Deferred: a handler that
/// panics or returns an error gives a 500, and the connection goes on serving.
#[test]
fn site_handler_failures_are_500_without_internals() {
    let site = Site::new()
        .get("/panic", |_: Request| -> Result<Response, Failure> {
            panic!("secret panic detail")
        })
        .get("/err", |_: Request| -> Result<Response, Failure> {
            Err(Failure::msg("secret error detail"))
        })
        .get("/ok", |_: Request| Ok(Response::static_text("fine")));
    let mut c = Conn::new(site);
    c.send(get("/panic"));
    c.send(get("/err"));
    c.send(get("/ok"));
    let rs = c.responses();
    assert_eq!(
        rs.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    assert!(!c.output().contains("secret"));
    assert_eq!(rs[2].text(), "fine");
    assert!(!c.closed());
}

/// Twisted: HTTPChannelSanitizationTests.test_writeHeadersSanitizesLinearWhitespace. CR,
/// LF and other control bytes in a handler's header value become spaces: no response
/// splitting. Twisted turns CR/LF in a *name* into spaces too, which leaves an invalid
/// field on the wire; we drop a field whose name is not a token.
#[test]
fn response_headers_are_sanitized() {
    let mut c = Conn::new(|_: Request| {
        Ok(Response::text("x")
            .with_header("X-Evil", "a\r\nSet-Cookie: stolen=1")
            .with_header("X-Name\r\nInjected", "v")
            .with_header("X-Nul", "a\0b"))
    });
    c.send(get("/"));
    let r = c.response();
    assert_eq!(r.header("set-cookie"), None);
    assert_eq!(r.header("injected"), None);
    assert_eq!(r.header("x-evil"), Some("a  Set-Cookie: stolen=1"));
    assert_eq!(r.header("x-nul"), Some("a b"));
    assert!(!c.output().contains("X-Name"));
}

/// Responses to HTTP/1.0 requests use status line `HTTP/1.1` (RFC 9110 §6.2: the
/// server's own version); Twisted answers `HTTP/1.0`. A streamed body without a length
/// is close-delimited on HTTP/1.0 even when keep-alive was asked.
#[test]
fn http10_streamed_body_is_close_delimited() {
    let writer = Rc::new(Cell::new(None));
    let w = writer.clone();
    let mut c = Conn::new(move |_: Request| {
        let (resp, body) = Response::streaming(200);
        w.set(Some(body));
        Ok(resp)
    });
    c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let body = writer.take().unwrap();
    body.write(b"part1 ");
    body.write(b"part2");
    assert!(!c.closed());
    body.finish();
    let r = c.response();
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.text(), "part1 part2");
    assert!(c.closed());
}

/// A connection reuses the head of its last response with static header lines while
/// nothing in it changes (status, header lines, body length, keep-alive, version, the
/// `Date` second); each of them, changed, makes a new one.
#[test]
fn a_reused_response_head_follows_what_changes() {
    let mut c = Conn::new(|req: Request| {
        Ok(match req.path() {
            "/html" => Response::html("x"),
            "/gone" => Response::static_text("x").with_status(410),
            "/long" => Response::static_text("xyz"),
            _ => Response::static_text("x"),
        })
    });
    for path in ["/", "/", "/long", "/gone", "/html", "/"] {
        c.send(get(path));
    }
    c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let rs = c.responses();
    let seen: Vec<_> = rs
        .iter()
        .map(|r| {
            (
                r.status,
                r.header("content-length"),
                r.header("content-type"),
                r.header("connection"),
                r.text(),
            )
        })
        .collect();
    let text = Some("text/plain; charset=utf-8");
    let html = Some("text/html; charset=utf-8");
    let x = || "x".to_string();
    assert_eq!(
        seen,
        [
            (200, Some("1"), text, None, x()),
            (200, Some("1"), text, None, x()),
            (200, Some("3"), text, None, "xyz".to_string()),
            (410, Some("1"), text, None, x()),
            (200, Some("1"), html, None, x()),
            (200, Some("1"), text, None, x()),
            (200, Some("1"), text, Some("keep-alive"), x()),
            (200, Some("1"), text, Some("close"), x()),
        ]
    );
    assert!(rs.iter().all(|r| r.header("date").is_some()));
    assert!(c.closed());
}
