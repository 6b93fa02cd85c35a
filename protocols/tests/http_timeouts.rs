//! Timeouts, on a `ManualClock`: idle keep-alive connections close, incomplete requests
//! get 408 (never a hang), and no timer runs while a handler works. Mirrors Twisted's
//! `policies.TimeoutMixin` in `HTTPChannel` (`test_http.py` `HTTP1_0Tests.test_requestBodyTimeout`,
//! `test_requestBodyDefaultTimeout`).

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use common::{echo, get, Conn};
use ropewalk_protocols::http::{Request, Response, ServerConfig};
use ropewalk_reactor::deferred::Deferred;
use ropewalk_reactor::Protocol;

fn config() -> ServerConfig {
    ServerConfig {
        request_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        ..ServerConfig::default()
    }
}

/// `config()` with the total bound on a body (`body_timeout`) out of the way, for the
/// tests of the pause inside one (`trickled_body_is_cut_off` tests the total).
fn pause_config() -> ServerConfig {
    ServerConfig {
        body_timeout: Duration::from_secs(1000),
        ..config()
    }
}

/// Twisted: HTTP1_0Tests.test_requestBodyDefaultTimeout (60 s idle). A connection that
/// never sends a byte is closed at the idle timeout, without a response.
#[test]
fn idle_new_connection_closes() {
    let c = Conn::with_config(echo, config());
    c.advance(59.9);
    assert!(!c.closed());
    c.advance(0.1);
    assert!(c.closed());
    assert!(!c.t.was_aborted());
    assert!(c.output().is_empty());
}

/// An idle keep-alive connection closes `idle_timeout` after its last response.
#[test]
fn idle_keep_alive_closes() {
    let mut c = Conn::with_config(echo, config());
    c.advance(50.0);
    c.send(get("/"));
    c.advance(59.0);
    assert!(!c.closed(), "the idle clock restarts after each response");
    c.send(get("/"));
    c.advance(59.0);
    assert!(!c.closed());
    c.advance(1.0);
    assert!(c.closed());
    assert_eq!(c.responses().len(), 2);
}

/// A slowloris head: bytes keep coming but the head never ends. The head has
/// `request_timeout` from its first byte, not reset by each byte (Twisted resets its
/// timer on every read, so a byte every 59 s keeps a connection forever); then 408.
#[test]
fn slow_head_gets_408() {
    let mut c = Conn::with_config(echo, config());
    let head = get("/");
    for b in head.as_bytes()[..10].iter() {
        c.send([*b]);
        c.advance(2.9);
    }
    assert!(!c.closed());
    c.advance(1.0);
    let r = c.response();
    assert_eq!(r.status, 408);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
    // The rest of the head arriving late is ignored.
    c.send(&head[10..]);
    assert_eq!(c.responses().len(), 1);
}

/// An incomplete body (the client stops sending) gets 408 too: never a hang.
#[test]
fn stalled_body_gets_408() {
    for request in [
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
    ] {
        let mut c = Conn::with_config(echo, pause_config());
        c.send(request);
        c.advance(29.0);
        assert!(!c.closed(), "{request:?}");
        c.advance(1.0);
        assert_eq!(c.response().status, 408, "{request:?}");
        assert!(c.closed());
    }
}

/// Twisted: HTTP1_0Tests.test_requestBodyTimeout (every read restarts the timer). A
/// body that keeps arriving, each pause shorter than `request_timeout`, is not cut off
/// (`ServerConfig::request_timeout`: "the longest pause inside a body"); a longer pause
/// is a 408. (The total, `body_timeout`, is set out of the way: see
/// `trickled_body_is_cut_off`.)
#[test]
fn slow_but_steady_body_is_not_cut_off() {
    let mut c = Conn::with_config(echo, pause_config());
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n");
    for b in b"hello" {
        c.advance(20.0);
        c.send([*b]);
    }
    assert_eq!(c.response().text(), "POST / 5:hello");
    assert!(!c.closed());

    let mut c = Conn::with_config(echo, pause_config());
    c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for piece in ["3\r\n", "abc", "\r\n", "0\r\n", "\r\n"] {
        c.advance(20.0);
        c.send(piece);
    }
    assert_eq!(c.response().text(), "POST / 3:abc");

    let mut c = Conn::with_config(echo, pause_config());
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhe");
    c.advance(20.0);
    c.send("l");
    c.advance(30.0);
    assert_eq!(c.response().status, 408);
}

/// Twisted: the timer is disabled from `allContentReceived` to `requestDone`. A handler
/// that takes 1000 s is not timed out; the idle timer starts after its response.
#[test]
fn no_timeout_while_the_handler_works() {
    let resolver = Rc::new(Cell::new(None));
    let r = resolver.clone();
    let mut c = Conn::with_config(
        move |_: Request| {
            let (d, res) = Deferred::pending();
            r.set(Some(res));
            d
        },
        config(),
    );
    c.send(get("/"));
    c.advance(1000.0);
    assert!(!c.closed());
    assert!(c.output().is_empty());
    resolver
        .take()
        .unwrap()
        .callback(Response::text("done"))
        .unwrap();
    assert_eq!(c.response().text(), "done");
    c.advance(59.0);
    assert!(!c.closed());
    c.advance(1.0);
    assert!(c.closed());
}

/// A streamed response in progress is not timed out either.
#[test]
fn no_timeout_while_streaming() {
    let writer = Rc::new(Cell::new(None));
    let w = writer.clone();
    let mut c = Conn::with_config(
        move |_: Request| {
            let (resp, body) = Response::streaming(200);
            w.set(Some(body));
            Ok(resp)
        },
        config(),
    );
    c.send(get("/"));
    let body = writer.take().unwrap();
    for _ in 0..10 {
        c.advance(100.0);
        body.write(b"tick");
    }
    assert!(!c.closed());
    body.finish();
    c.advance(60.0);
    assert!(c.closed());
    assert_eq!(c.response().text(), "tick".repeat(10));
}

/// A request waiting behind a slow one (pipelined, incomplete) is not timed out while
/// the server itself is busy; its clock starts when the server can read it.
#[test]
fn pipelined_partial_request_waits_for_the_server() {
    let resolver = Rc::new(Cell::new(None));
    let r = resolver.clone();
    let mut c = Conn::with_config(
        move |req: Request| {
            if req.path() == "/slow" {
                let (d, res) = Deferred::pending();
                r.set(Some(res));
                d
            } else {
                Deferred::from_result(echo(req))
            }
        },
        config(),
    );
    c.send(format!("{}GET /next HTTP/1.1\r\n", get("/slow")));
    c.advance(100.0);
    assert!(!c.closed());
    resolver
        .take()
        .unwrap()
        .callback(Response::text("slow"))
        .unwrap();
    c.advance(29.0);
    c.send("Host: x\r\n\r\n");
    let rs = c.responses();
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[1].text(), "GET /next 0:");
}

/// Once the connection is lost no timer is left behind.
#[test]
fn no_timers_after_close() {
    let mut c = Conn::with_config(echo, config());
    c.send("GET / HTTP/1.1\r\n");
    assert_eq!(c.clock.delayed_calls().len(), 1);
    c.lose();
    assert!(c.clock.delayed_calls().is_empty());
    c.advance(1000.0);
    assert!(c.output().is_empty());

    let mut c = Conn::with_config(echo, config());
    c.send(get("/"));
    c.conn
        .connection_lost(ropewalk_reactor::deferred::Failure::msg("gone"));
    assert!(c.clock.delayed_calls().is_empty());
}

/// Twisted: HTTPChannelTests.test_transportForciblyClosed. A timed-out connection whose
/// peer does not let it close (the close waits on writes it never reads) is aborted
/// `abort_timeout` (15 s) later, not before.
#[test]
fn timed_out_connection_is_aborted_if_it_does_not_close() {
    let c = Conn::with_config(echo, config());
    c.advance(60.0);
    assert!(c.closed() && !c.t.was_aborted(), "closed cleanly first");
    c.advance(14.9);
    assert!(!c.t.was_aborted());
    c.advance(0.1);
    assert!(c.t.was_aborted());

    // A request timeout too: 408, then the abort.
    let mut c = Conn::with_config(echo, config());
    c.send("GET / HTTP/1.1\r\n");
    c.advance(30.0);
    assert_eq!(c.response().status, 408);
    assert!(!c.t.was_aborted());
    c.advance(15.0);
    assert!(c.t.was_aborted());
}

/// Twisted: HTTPChannelTests.test_transportNotAbortedWithZeroAbortTimeout. With no
/// `abort_timeout`, a timed-out connection is only ever closed cleanly.
#[test]
fn no_abort_without_abort_timeout() {
    let c = Conn::with_config(
        echo,
        ServerConfig {
            abort_timeout: None,
            ..config()
        },
    );
    c.advance(60.0);
    assert!(c.closed());
    c.advance(3600.0);
    assert!(!c.t.was_aborted());
}

/// Twisted: HTTPChannelTests.test_transportNotAbortedAfterConnectionLost. A timed-out
/// connection that does close in time is not aborted afterwards.
#[test]
fn no_abort_once_the_connection_is_gone() {
    let mut c = Conn::with_config(echo, config());
    c.advance(60.0);
    assert!(c.closed());
    c.lose();
    c.advance(3600.0);
    assert!(!c.t.was_aborted());
}

/// Twisted: HTTPChannelTests.test_connectionLostAfterForceClose. The connection lost that
/// follows the abort is taken quietly; nothing more is written or scheduled.
#[test]
fn connection_lost_after_the_abort() {
    let mut c = Conn::with_config(echo, config());
    c.advance(60.0);
    c.advance(15.0);
    assert!(c.t.was_aborted());
    let written = c.output();
    c.lose();
    c.advance(3600.0);
    assert_eq!(c.output(), written);
}

/// Twisted: none (Twisted arms `abortTimeout` for timeouts only). A connection the
/// server closes after a bad request or a `Connection: close` response, whose peer never
/// lets the close complete, is aborted `abort_timeout` later too; one that does close in
/// time is not.
#[test]
fn a_closing_connection_whose_peer_does_not_let_it_close_is_aborted() {
    for request in [
        "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n".to_string(),
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(),
    ] {
        let mut c = Conn::with_config(echo, config());
        c.send(&request);
        assert!(c.closed(), "{request:?}: the server closes");
        assert!(!c.t.was_aborted());
        c.advance(14.9);
        assert!(!c.t.was_aborted(), "{request:?}: not before abort_timeout");
        c.advance(0.1);
        assert!(c.t.was_aborted(), "{request:?}: aborted at abort_timeout");

        let mut c = Conn::with_config(echo, config());
        c.send(&request);
        c.lose();
        c.advance(3600.0);
        assert!(
            !c.t.was_aborted(),
            "{request:?}: closed in time, never aborted"
        );
    }
}

/// nginx's `send_timeout`: a peer that takes none of a buffered response (it sits in the
/// transport's queue) for `send_timeout` is aborted; each time the socket takes some of
/// it the clock restarts, so a slow but steady reader is never cut. Before, the idle
/// timer closed it at 60 s whatever it read (then aborted it 15 s later).
#[test]
fn peer_that_stops_reading_a_buffered_response_is_aborted() {
    let mut c = Conn::with_config(echo, config());
    // The peer's window is full: what the server writes stays queued.
    c.t.set_write_buffer_len(100_000);
    c.send(get("/"));
    assert_eq!(c.clock.delayed_calls().len(), 1, "one watchdog");
    c.advance(59.0);
    assert!(!c.closed());
    // The socket takes some: the send clock restarts.
    c.t.set_write_buffer_len(90_000);
    c.advance(59.0);
    assert!(!c.closed(), "aborted though the peer read 59 s ago");
    c.t.set_write_buffer_len(80_000);
    c.advance(59.9);
    assert!(!c.closed());
    c.advance(0.1);
    assert!(c.t.was_aborted(), "60 s without progress");
}

/// Once the queue drains the send timeout stops and the idle one starts from then.
#[test]
fn send_timeout_gives_way_to_idle_once_the_queue_drains() {
    let mut c = Conn::with_config(echo, config());
    c.t.set_write_buffer_len(100_000);
    c.send(get("/"));
    c.advance(50.0);
    c.t.set_write_buffer_len(0);
    c.advance(59.0);
    assert!(!c.closed(), "idle counts from the drain");
    c.advance(1.0);
    assert!(c.closed() && !c.t.was_aborted(), "idle: a clean close");
}

/// A streamed response whose peer stops reading is aborted `send_timeout` after its
/// last progress, while a stream whose handler is slow (nothing queued) is not timed
/// out at all (see `no_timeout_while_streaming`).
#[test]
fn peer_that_stops_reading_a_stream_is_aborted() {
    let writer = Rc::new(Cell::new(None));
    let w = writer.clone();
    let mut c = Conn::with_config(
        move |_: Request| {
            let (resp, body) = Response::streaming(200);
            w.set(Some(body));
            Ok(resp)
        },
        ServerConfig {
            send_timeout: Duration::from_secs(10),
            ..config()
        },
    );
    c.send(get("/"));
    let body = writer.take().unwrap();
    c.advance(500.0);
    assert!(!c.closed(), "nothing queued: no send timeout");
    c.t.set_write_buffer_len(70_000);
    body.write(b"more than the peer takes");
    c.advance(9.0);
    c.t.set_write_buffer_len(60_000);
    c.advance(9.0);
    assert!(!c.closed());
    c.advance(1.0);
    assert!(c.t.was_aborted());
}

/// The trickle: a body at one byte every 2 s never pauses long enough for
/// `request_timeout`, but gets only `body_timeout` (20 s) plus a second per
/// `min_body_rate` (500) bytes: 408 and close at about 20 s, not never.
#[test]
fn trickled_body_is_cut_off() {
    for head in [
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n",
    ] {
        let mut c = Conn::with_config(echo, config());
        c.send(head);
        for _ in 0..9 {
            c.advance(2.0);
            c.send("x");
        }
        c.advance(1.9);
        assert!(!c.closed(), "{head:?}: cut before body_timeout");
        c.advance(0.2);
        assert_eq!(c.response().status, 408, "{head:?}");
        assert!(c.closed());
    }
}

/// A body that keeps up `min_body_rate` earns time past `body_timeout`: 1,000 bytes a
/// second for 60 s (each second earns two) is read whole.
#[test]
fn body_at_the_minimum_rate_is_read_whole() {
    let mut c = Conn::with_config(echo, config());
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n");
    for _ in 0..60 {
        c.advance(1.0);
        c.send([b'y'; 1000]);
    }
    let r = c.response();
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("POST / 60000:yyy"));
}

/// A body sent from a file (`BodyWriter::send_file`) counts as queued bytes, as written
/// ones do: a peer that stops reading it is aborted `send_timeout` after its last
/// progress. Without a length it is framed as a chunk.
#[test]
fn peer_that_stops_reading_a_file_body_is_aborted() {
    let path = std::env::temp_dir().join(format!("ropewalk-timeouts-file-{}", std::process::id()));
    std::fs::write(&path, "0123456789").unwrap();
    let file = Rc::new(std::fs::File::open(&path).unwrap());
    std::fs::remove_file(&path).unwrap();
    let mut c = Conn::with_config(
        move |_: Request| {
            let (resp, body) = Response::streaming(200);
            body.write(b"<");
            body.send_file(file.clone(), 3, 4);
            body.write(b">");
            body.finish();
            Ok(resp)
        },
        ServerConfig {
            send_timeout: Duration::from_secs(10),
            ..config()
        },
    );
    c.t.set_write_buffer_len(70_000);
    c.send(get("/"));
    let out = c.output();
    assert!(
        out.ends_with("1\r\n<\r\n4\r\n3456\r\n1\r\n>\r\n0\r\n\r\n"),
        "chunked, in order: {out:?}"
    );
    c.advance(9.0);
    c.t.set_write_buffer_len(60_000);
    c.advance(9.0);
    assert!(!c.closed());
    c.advance(1.0);
    assert!(c.t.was_aborted(), "10 s without progress");
}
