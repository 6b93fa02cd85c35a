//! Pipelining: responses strictly in request order whatever order the handlers answer
//! in, every complete request in a read parsed at once and answered in one write, and
//! bounded read-ahead. Mirrors `twisted/web/test/test_http.py` `PipeliningBodyTests`,
//! `HTTP1_0Tests.test_noPipelining` and the fixes for CVE-2023-46137 / CVE-2024-41671
//! (out-of-order responses to pipelined requests).

mod common;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use common::{echo, get, Conn};
use ropewalk_protocols::http::{Request, Response, ServerConfig};
use ropewalk_reactor::deferred::{Deferred, Resolver};

type Pending = Rc<RefCell<HashMap<String, Resolver<Response>>>>;

/// A handler whose answers are fired by hand, by path.
fn by_hand() -> (Pending, impl Fn(Request) -> Deferred<Response>) {
    let pending: Pending = Rc::default();
    let p = pending.clone();
    let handler = move |req: Request| {
        let (d, r) = Deferred::pending();
        p.borrow_mut().insert(req.path().to_string(), r);
        d
    };
    (pending, handler)
}

fn fire(pending: &Pending, path: &str) {
    let r = pending.borrow_mut().remove(path).expect("pending request");
    r.callback(Response::text(path.to_string())).unwrap();
}

/// Twisted: PipeliningBodyTests (and the CVE-2023-46137 / CVE-2024-41671 fixes). Later
/// handlers answering first do not overtake earlier ones. Unlike Twisted, which handles
/// one request at a time, all three are dispatched at once.
#[test]
fn responses_leave_in_request_order() {
    let (pending, handler) = by_hand();
    let mut c = Conn::new(handler);
    c.send(format!("{}{}{}", get("/a"), get("/b"), get("/c")));
    assert_eq!(pending.borrow().len(), 3, "all dispatched at once");
    fire(&pending, "/c");
    fire(&pending, "/b");
    assert!(c.output().is_empty(), "nothing may overtake /a");
    fire(&pending, "/a");
    let rs = c.responses();
    assert_eq!(
        rs.iter().map(|r| r.text()).collect::<Vec<_>>(),
        ["/a", "/b", "/c"]
    );
    assert!(!c.closed());
}

/// The ready front of the queue is written as soon as it is ready, and the rest waits.
#[test]
fn ready_prefix_is_written_early() {
    let (pending, handler) = by_hand();
    let mut c = Conn::new(handler);
    c.send(format!("{}{}{}", get("/a"), get("/b"), get("/c")));
    fire(&pending, "/b");
    fire(&pending, "/a");
    assert_eq!(
        c.responses().iter().map(|r| r.text()).collect::<Vec<_>>(),
        ["/a", "/b"]
    );
    fire(&pending, "/c");
    assert_eq!(c.responses().len(), 3);
}

/// Every complete request in one read is parsed, and the responses that are ready go out
/// in one `write` (the "batch everything" of may-minihttp; hyper flushes per response).
#[test]
fn one_read_one_write() {
    let mut c = Conn::new(echo);
    let batch: String = (0..16).map(|i| get(&format!("/{i}"))).collect();
    c.send(&batch);
    assert_eq!(c.responses().len(), 16);
    assert_eq!(c.t.write_calls(), 1);
    // A partial request at the end of the read waits for the rest.
    let before = c.t.write_calls();
    let next = get("/tail");
    c.send(format!("{}{}", get("/x"), &next[..10]));
    assert_eq!(c.t.write_calls(), before + 1);
    c.send(&next[10..]);
    let rs = c.responses();
    assert_eq!(rs.len(), 18);
    assert_eq!(rs[17].text(), "GET /tail 0:");
}

/// Pipelined requests with bodies, both framings, and one split across reads.
#[test]
fn pipelined_bodies() {
    let mut c = Conn::new(echo);
    let input = format!(
        "POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
         POST /2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
         {}POST /4 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nGET ",
        get("/3")
    );
    c.send(&input);
    c.send(get("/5"));
    let texts: Vec<String> = c.responses().iter().map(|r| r.text()).collect();
    assert_eq!(
        texts,
        [
            "POST /1 5:hello",
            "POST /2 3:abc",
            "GET /3 0:",
            "POST /4 4:GET ",
            "GET /5 0:"
        ]
    );
}

/// Twisted: PipeliningBodyTests.test_pipeliningReadLimit. Past `max_pipelined` requests
/// waiting for answers, reading pauses; answering resumes it and the buffered requests
/// are handled. Twisted pauses past 16 KiB buffered.
#[test]
fn read_ahead_is_bounded() {
    let (pending, handler) = by_hand();
    let mut c = Conn::with_config(
        handler,
        ServerConfig {
            max_pipelined: 2,
            ..ServerConfig::default()
        },
    );
    let all: String = (0..5).map(|i| get(&format!("/{i}"))).collect();
    c.send(&all);
    assert_eq!(pending.borrow().len(), 2, "only two dispatched");
    assert!(c.t.is_reading_paused());
    fire(&pending, "/0");
    assert!(pending.borrow().contains_key("/2"));
    fire(&pending, "/1");
    fire(&pending, "/2");
    fire(&pending, "/3");
    assert_eq!(pending.borrow().len(), 1);
    fire(&pending, "/4");
    assert!(!c.t.is_reading_paused());
    let texts: Vec<String> = c.responses().iter().map(|r| r.text()).collect();
    assert_eq!(texts, ["/0", "/1", "/2", "/3", "/4"]);
}

/// Twisted: HTTP1_0Tests.test_noPipelining. Requests after a non-persistent one are
/// never handled; the ones before it are answered in order.
#[test]
fn nothing_after_a_closing_request() {
    let calls = Rc::new(Cell::new(0));
    let n = calls.clone();
    let mut c = Conn::new(move |req: Request| {
        n.set(n.get() + 1);
        echo(req)
    });
    c.send(format!(
        "{}GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n{}",
        get("/first"),
        get("/never")
    ));
    assert_eq!(calls.get(), 2);
    let rs = c.responses();
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].header("connection"), None);
    assert_eq!(rs[1].header("connection"), Some("close"));
    assert!(c.closed());

    let mut c = Conn::new(echo);
    c.send(format!("GET /a HTTP/1.0\r\n\r\n{}", get("/b")));
    assert_eq!(c.responses().len(), 1);
}

/// Twisted: ParsingTests.test_duplicateContentLengthsWithPipelinedRequests,
/// test_contentLengthAndTransferEncodingWithPipelinedRequests. A bad request behind
/// good pending ones: the good ones are answered first, in order, then the 400, then
/// the connection closes.
#[test]
fn bad_request_behind_pending_ones() {
    let (pending, handler) = by_hand();
    let mut c = Conn::new(handler);
    c.send(format!(
        "{}{}POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx{}",
        get("/a"),
        get("/b"),
        get("/c")
    ));
    assert_eq!(pending.borrow().len(), 2);
    assert!(c.output().is_empty(), "the 400 waits its turn");
    assert!(!c.closed());
    fire(&pending, "/b");
    fire(&pending, "/a");
    let rs = c.responses();
    assert_eq!(
        rs.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 200, 400]
    );
    assert_eq!(rs[1].header("connection"), None);
    assert_eq!(rs[2].header("connection"), Some("close"));
    assert!(c.closed());
}

/// A streamed response holds back the ones after it until its body ends.
#[test]
fn streamed_response_in_the_middle() {
    let writer = Rc::new(Cell::new(None));
    let w = writer.clone();
    let mut c = Conn::new(move |req: Request| {
        if req.path() == "/stream" {
            let (resp, body) = Response::streaming(200);
            w.set(Some(body));
            Ok(resp)
        } else {
            echo(req)
        }
    });
    c.send(format!("{}{}{}", get("/a"), get("/stream"), get("/c")));
    let body = writer.take().unwrap();
    body.write(b"one,");
    assert!(!c.output().contains("GET /c"));
    body.write(b"two");
    body.finish();
    let rs = c.responses();
    assert_eq!(rs.len(), 3);
    assert!(rs[1].chunked);
    assert_eq!(rs[1].text(), "one,two");
    assert_eq!(rs[2].text(), "GET /c 0:");
    assert!(!c.closed());
}

/// A client that goes away cancels the handlers still working for it (their answers
/// could never be sent).
#[test]
fn disconnect_cancels_pending_handlers() {
    let cancelled = Rc::new(Cell::new(0));
    let resolvers = Rc::new(RefCell::new(Vec::new()));
    let (n, rs) = (cancelled.clone(), resolvers.clone());
    let mut c = Conn::new(move |req: Request| -> Deferred<Response> {
        if req.path() == "/quick" {
            return Deferred::succeed(Response::text("quick"));
        }
        let n = n.clone();
        let (d, r) = Deferred::with_canceller(move || {
            n.set(n.get() + 1);
            None
        });
        rs.borrow_mut().push(r);
        d
    });
    c.send(format!(
        "{}{}{}",
        get("/slow1"),
        get("/slow2"),
        get("/quick")
    ));
    assert_eq!(resolvers.borrow().len(), 2);
    c.lose();
    assert_eq!(cancelled.get(), 2);
    // Late answers are dropped without a write or a panic.
    for r in resolvers.borrow_mut().drain(..) {
        let _ = r.callback(Response::text("late"));
    }
    assert!(c.output().is_empty());
}
