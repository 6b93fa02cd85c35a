//! Request bodies (Content-Length, chunked, limits, `Expect: 100-continue`) and response
//! bodies (full, streamed, chunked, back-pressure). Mirrors `twisted/web/test/test_http.py`
//! `ChunkedTransferEncodingTests`, `Expect100ContinueServerTests`, and the response framing
//! of `http.Request.write`.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use common::{echo, get, Conn};
use ropewalk_protocols::http::{BodyWriter, Request, Response, ServerConfig};

/// A GET with a Content-Length body: the body is read as the body (and handed over),
/// never parsed as the next request; the next request after it is.
#[test]
fn get_body_is_not_a_request() {
    let mut c = Conn::new(echo);
    let smuggled = get("/smuggled");
    c.send(format!(
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{smuggled}{}",
        smuggled.len(),
        get("/next")
    ));
    let rs = c.responses();
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].text(), format!("GET / {}:{smuggled}", smuggled.len()));
    assert_eq!(rs[1].text(), "GET /next 0:");
}

/// HEAD with a body: the same.
#[test]
fn head_body_is_not_a_request() {
    let mut c = Conn::new(echo);
    c.send(format!(
        "HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nGET {}",
        get("/next")
    ));
    let out = c.output();
    assert_eq!(out.matches("HTTP/1.1 200").count(), 2, "{out}");
    assert!(out.ends_with("GET /next 0:"));
}

/// A POST with neither Content-Length nor Transfer-Encoding has an empty body and is
/// handled at once (RFC 9112 §6.3; Twisted the same).
#[test]
fn post_without_length_is_empty() {
    let mut c = Conn::new(echo);
    c.send("POST / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response().text(), "POST / 0:");
}

/// Bodies arriving a byte at a time, both framings.
#[test]
fn bodies_byte_by_byte() {
    let mut c = Conn::new(echo);
    c.send_bytewise("POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world");
    c.send_bytewise(
        "POST /te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         6;x=y\r\nhello \r\n5\r\nworld\r\n0\r\nT: v\r\n\r\n",
    );
    let texts: Vec<String> = c.responses().iter().map(|r| r.text()).collect();
    assert_eq!(
        texts,
        ["POST /cl 11:hello world", "POST /te 11:hello world"]
    );
}

/// Binary bodies pass through unchanged.
#[test]
fn binary_body() {
    let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let mut c = Conn::new(|req: Request| Ok(Response::bytes(req.into_body())));
    let mut input = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    input.extend_from_slice(&body);
    for piece in input.chunks(4096) {
        c.send(piece);
    }
    assert_eq!(c.response().body, body);
}

/// A declared body over `max_body` gets 413 at once, without reading it or calling the
/// handler, and the connection closes. Twisted has no body limit (issue #4898).
#[test]
fn content_length_over_limit_is_413_unread() {
    let calls = Rc::new(Cell::new(0));
    let n = calls.clone();
    let mut c = Conn::with_config(
        move |req: Request| {
            n.set(n.get() + 1);
            echo(req)
        },
        ServerConfig {
            max_body: 10,
            ..ServerConfig::default()
        },
    );
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
    assert_eq!(calls.get(), 0);
    // Exactly at the limit is fine.
    let mut c = Conn::with_config(
        echo,
        ServerConfig {
            max_body: 10,
            ..ServerConfig::default()
        },
    );
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789");
    assert_eq!(c.response().status, 200);
}

/// A chunked body that grows past `max_body` gets 413 as soon as a chunk size says so.
#[test]
fn chunked_over_limit_is_413() {
    let config = || ServerConfig {
        max_body: 10,
        ..ServerConfig::default()
    };
    let mut c = Conn::with_config(echo, config());
    c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n");
    assert!(c.output().is_empty());
    c.send("3\r\n");
    let r = c.response();
    assert_eq!(r.status, 413);
    assert!(c.closed());
    // One huge chunk size, with no data sent.
    let mut c = Conn::with_config(echo, config());
    c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n");
    assert_eq!(c.response().status, 413);
    // 10 bytes in pieces is fine.
    let mut c = Conn::with_config(echo, config());
    c.send(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n",
    );
    assert_eq!(c.response().text(), "POST / 10:0123456789");
}

/// Twisted: Expect100ContinueServerTests.test_expect100ContinueHeader. `100 Continue`
/// goes out after the head and before the body is read; then the real response.
#[test]
fn expect_100_continue() {
    let mut c = Conn::new(echo);
    c.send("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(c.output(), "HTTP/1.1 100 Continue\r\n\r\n");
    c.send("hello");
    let rs = c.responses();
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].status, 100);
    assert_eq!(rs[1].text(), "POST / 5:hello");
    // Chunked too, and the token is case-insensitive.
    let mut c = Conn::new(echo);
    c.send(
        "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert_eq!(c.output(), "HTTP/1.1 100 Continue\r\n\r\n");
}

/// Found by the http_server fuzz target: a pipelined request that expects `100 Continue`
/// behind one answered at once, in the same read. The `100` belongs to the second
/// request, so it goes out after the first response, never ahead of it (it was written
/// straight to the transport while the first response still waited in the batch).
#[test]
fn pipelined_100_continue_follows_the_earlier_response() {
    let mut c = Conn::new(echo);
    c.send(
        "GET /first HTTP/1.1\r\nHost: x\r\n\r\n\
         POST /second HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    c.send("hello");
    let rs = c.responses();
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 100, 200]);
    assert_eq!(rs[0].text(), "GET /first 0:");
    assert_eq!(rs[2].text(), "POST /second 5:hello");
}

/// Twisted: Expect100ContinueServerTests.test_HTTP10. HTTP/1.0 gets no 100 (RFC 9110
/// §10.1.1); neither does a request without a body, nor one whose body is refused.
#[test]
fn no_100_continue() {
    let mut c = Conn::new(echo);
    c.send("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    assert!(c.output().is_empty());
    c.send("hello");
    assert_eq!(c.response().text(), "POST / 5:hello");

    let mut c = Conn::new(echo);
    c.send("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(c.response().status, 200);

    let mut c = Conn::with_config(
        echo,
        ServerConfig {
            max_body: 4,
            ..ServerConfig::default()
        },
    );
    c.send("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(c.response().status, 413);
    assert!(c.closed());
}

/// `100 Continue` for a request behind pending ones is sent once they are answered, so
/// it never overtakes their responses and the client is not left waiting.
#[test]
fn expect_100_continue_behind_pending_request() {
    let resolver = Rc::new(Cell::new(None));
    let r = resolver.clone();
    let mut c = Conn::new(move |req: Request| {
        if req.path() == "/slow" {
            let (d, res) = ropewalk_reactor::deferred::Deferred::pending();
            r.set(Some(res));
            d
        } else {
            ropewalk_reactor::deferred::Deferred::from_result(echo(req))
        }
    });
    c.send(format!(
        "{}POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        get("/slow")
    ));
    assert!(c.output().is_empty());
    resolver
        .take()
        .unwrap()
        .callback(Response::text("slow"))
        .unwrap();
    let out = c.output();
    assert!(out.contains("slowHTTP/1.1 100 Continue"), "{out}");
    assert!(out.ends_with("HTTP/1.1 100 Continue\r\n\r\n"), "{out}");
    c.send("hello");
    let rs = c.responses();
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 100, 200], "{}", c.output());
    assert_eq!(rs[2].text(), "POST / 5:hello");
}

fn streaming_conn() -> (Conn, Rc<RefCell<Option<BodyWriter>>>) {
    let writer = Rc::new(RefCell::new(None));
    let w = writer.clone();
    let c = Conn::new(move |req: Request| {
        let (resp, body) = Response::streaming(200);
        *w.borrow_mut() = Some(body);
        Ok(match req.query_param("len") {
            Some(len) => resp.with_header("Content-Length", len),
            None => resp,
        })
    });
    (c, writer)
}

/// A response without a length on HTTP/1.1 is sent chunked, piece by piece as written
/// (Twisted: `http.Request.write` with `NOT_DONE_YET`), ending with `0\r\n\r\n`; the
/// connection stays open.
#[test]
fn streamed_response_is_chunked_on_http11() {
    let (mut c, writer) = streaming_conn();
    c.send(get("/"));
    let body = writer.borrow_mut().take().unwrap();
    let head = c.output();
    assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
    assert!(!head.contains("Content-Length"));
    body.write(b"hello ");
    assert!(c.output().ends_with("6\r\nhello \r\n"));
    body.write(b"");
    body.write(b"world");
    body.finish();
    assert!(c.output().ends_with("5\r\nworld\r\n0\r\n\r\n"));
    let r = c.response();
    assert!(r.chunked);
    assert_eq!(r.text(), "hello world");
    assert!(!c.closed());
    // Writes after finish are ignored.
    body.write(b"late");
    assert!(!c.output().contains("late"));
}

/// With a Content-Length set, a streamed body is sent as is.
#[test]
fn streamed_response_with_length() {
    let (mut c, writer) = streaming_conn();
    c.send(get("/?len=10"));
    let body = writer.borrow_mut().take().unwrap();
    body.write(b"01234");
    body.write(b"56789");
    body.finish();
    let r = c.response();
    assert!(!r.chunked);
    assert_eq!(r.header("content-length"), Some("10"));
    assert_eq!(r.text(), "0123456789");
    c.send(get("/"));
    assert!(!c.closed());
}

/// A body written and finished before the server takes the response is sent whole.
#[test]
fn streamed_response_finished_early() {
    let mut c = Conn::new(|_: Request| {
        let (resp, body) = Response::streaming(200);
        body.write(b"early ");
        body.write(b"bird");
        body.finish();
        Ok(resp)
    });
    c.send(get("/"));
    c.send(get("/"));
    let rs = c.responses();
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[1].text(), "early bird");
}

/// Back-pressure: the connection is the transport's streaming producer; when the
/// transport pauses it the writer is paused, `ready()` waits and no more requests are
/// read, and resuming undoes both. Stopping it aborts the writer. (Twisted: the
/// `HTTPChannel` is the transport's IPushProducer.)
#[test]
fn streamed_response_back_pressure() {
    let (mut c, writer) = streaming_conn();
    c.send(get("/"));
    let body = writer.borrow_mut().take().unwrap();
    let (producer, streaming) = c.t.producer().expect("a producer is registered");
    assert!(streaming);
    assert!(!body.is_paused());
    producer.pause_producing();
    assert!(body.is_paused());
    assert!(c.t.is_reading_paused());
    let mut ready = body.ready();
    assert!(ready.try_result().is_none());
    producer.resume_producing();
    assert!(!body.is_paused());
    assert!(!c.t.is_reading_paused());
    assert!(ready.try_result().unwrap().is_ok());
    body.write(b"more");
    body.finish();
    assert!(
        c.t.producer().is_some(),
        "the connection stays the producer"
    );
    assert_eq!(c.response().text(), "more");

    // stop_producing: the writer is aborted and its waiters released.
    c.send(get("/"));
    let body = writer.borrow_mut().take().unwrap();
    let (producer, _) = c.t.producer().unwrap();
    producer.pause_producing();
    let mut ready = body.ready();
    producer.stop_producing();
    assert!(body.is_aborted());
    assert!(ready.try_result().unwrap().is_ok());
}

/// The client going away aborts a streamed body; writes after that are dropped.
#[test]
fn streamed_response_client_gone() {
    let (mut c, writer) = streaming_conn();
    c.send(get("/"));
    let body = writer.borrow_mut().take().unwrap();
    body.write(b"part");
    c.lose();
    assert!(body.is_aborted());
    let before = c.output();
    body.write(b"dropped");
    body.finish();
    assert_eq!(c.output(), before);
}

/// A large full body is written with its length.
#[test]
fn large_full_response() {
    let big = vec![b'x'; 1 << 20];
    let b = big.clone();
    let mut c = Conn::new(move |_: Request| Ok(Response::bytes(b.clone())));
    c.send(get("/"));
    let r = c.response();
    assert_eq!(r.header("content-length"), Some("1048576"));
    assert_eq!(r.body, big);
}

/// If the client sends the body without waiting, no late `100 Continue` follows.
#[test]
fn no_late_100_when_body_came_anyway() {
    let resolver = Rc::new(Cell::new(None));
    let r = resolver.clone();
    let mut c = Conn::new(move |req: Request| {
        if req.path() == "/slow" {
            let (d, res) = ropewalk_reactor::deferred::Deferred::pending();
            r.set(Some(res));
            d
        } else {
            ropewalk_reactor::deferred::Deferred::from_result(echo(req))
        }
    });
    c.send(format!(
        "{}POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello{}",
        get("/slow"),
        get("/after")
    ));
    resolver
        .take()
        .unwrap()
        .callback(Response::text("slow"))
        .unwrap();
    let statuses: Vec<u16> = c.responses().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200]);
}

/// Regression (found by the soak test): streamed responses queued behind another one
/// when the client goes away were dropped without aborting their writers, so a producer
/// waiting on `ready()` (a static file being streamed: its task, its open file, 64 KiB
/// written early) waited forever. Every writer of a response that will never be sent is
/// aborted, and its waiters released.
#[test]
fn queued_streams_are_aborted_when_the_client_goes() {
    let writers = Rc::new(RefCell::new(Vec::<BodyWriter>::new()));
    let w = writers.clone();
    let mut c = Conn::new(move |_req: Request| {
        let (resp, body) = Response::streaming(200);
        // Written before the server takes the response: held, up to a bound.
        body.write(&[b'x'; 64 * 1024]);
        w.borrow_mut().push(body);
        Ok(resp.with_header("Content-Length", (128 * 1024).to_string()))
    });
    c.send(format!("{}{}{}", get("/a"), get("/b"), get("/c")));
    let ws = writers.borrow().clone();
    assert_eq!(ws.len(), 3, "all three dispatched");
    // The first is being sent; the two behind it wait for it, and so do their producers.
    let mut waits: Vec<_> = ws[1..].iter().map(BodyWriter::ready).collect();
    assert!(waits.iter_mut().all(|d| d.try_result().is_none()));
    c.lose();
    for (i, w) in ws.iter().enumerate() {
        assert!(w.is_aborted(), "writer {i} not aborted");
    }
    for d in &mut waits {
        assert!(
            d.try_result().is_some_and(|r| r.is_ok()),
            "a waiter left waiting"
        );
    }
}
