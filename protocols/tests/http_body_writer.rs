//! `BodyWriter` on a server connection without sockets (a `StringTransport` and a
//! `ManualClock`): abort, and `ready` waiting for the server to take the response.

use std::cell::RefCell;
use std::rc::Rc;

use ropewalk_deferred::{Deferred, Resolver};
use ropewalk_protocols::http::{BodyWriter, HttpServer, Request, Response};
use ropewalk_reactor::testing::StringTransport;
use ropewalk_reactor::{ManualClock, Protocol};

#[test]
fn abort_drops_the_connection_mid_body() {
    let clock = ManualClock::new();
    let writer: Rc<RefCell<Option<BodyWriter>>> = Rc::default();
    let w = writer.clone();
    let server = HttpServer::new(&clock, move |_: Request| {
        let (resp, body) = Response::streaming(200);
        *w.borrow_mut() = Some(body);
        Ok(resp.with_header("Content-Length", "10"))
    });
    let mut conn = server.connection();
    let t = StringTransport::connect(&mut conn);
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let body = writer.borrow_mut().take().unwrap();
    body.write(b"abc");
    assert!(!t.was_aborted());
    body.abort();
    assert!(t.was_aborted());
    assert!(body.is_aborted());
    let out = String::from_utf8(t.value()).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("Content-Length: 10\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nabc"), "{out}");
}

#[test]
fn head_keeps_a_streamed_length() {
    let clock = ManualClock::new();
    let server = HttpServer::new(&clock, |_: Request| {
        let (resp, _body) = Response::streaming(200);
        Ok(resp.with_header("Content-Length", "12345"))
    });
    let mut conn = server.connection();
    let t = StringTransport::connect(&mut conn);
    conn.data_received(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let out = String::from_utf8(t.value()).unwrap();
    assert!(out.contains("Content-Length: 12345\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\n"), "{out}");
}

#[test]
fn ready_waits_until_the_server_takes_the_response() {
    let clock = ManualClock::new();
    let pending: Rc<RefCell<Option<Resolver<Response>>>> = Rc::default();
    let p = pending.clone();
    let server = HttpServer::new(&clock, move |_: Request| {
        let (d, r) = Deferred::pending();
        *p.borrow_mut() = Some(r);
        d
    });
    let mut conn = server.connection();
    let t = StringTransport::connect(&mut conn);
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();

    let (resp, body) = Response::streaming(200);
    body.write(&[b'x'; 1000]);
    assert!(body.ready().is_called(), "a little held data: no wait");
    body.write(&vec![b'y'; 64 * 1024]);
    let ready = body.ready();
    assert!(
        !ready.is_called(),
        "64 KiB held before the server took it: wait"
    );

    pending.borrow_mut().take().unwrap().callback(resp).unwrap();
    assert!(ready.is_called(), "the server took the response");
    body.finish();
    let out = t.value();
    assert!(out.ends_with(b"0\r\n\r\n"));
}
