//! The two-stage server ([`HttpServer::two_stage`], [`StageTwo`]): handlers on the worker
//! pool, I/O on the reactor. Over real loopback TCP, std `TcpStream` clients run on
//! threads of their own (not the pool under test) while the test thread turns the
//! reactor; every wait is bounded, so a server that never answers fails the test instead
//! of hanging it. Worker jobs that must stay busy wait on a [`Gate`] the test opens.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::{parse_responses, Resp};
use ropewalk_protocols::http::{
    HttpServer, Request, Response, ServerConfig, Site, StageTwo, StaticFiles,
};
use ropewalk_reactor::deferred::{Deferred, Failure};
use ropewalk_reactor::testing::StringTransport;
use ropewalk_reactor::{Phase, PoolConfig, Protocol, Reactor, SystemEvent};

const LIMIT: Duration = Duration::from_secs(20);

/// A gate worker jobs wait on (at most `LIMIT`) until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn wait(&self) {
        let open = self.open.lock().unwrap();
        let (_open, _) = self.cv.wait_timeout_while(open, LIMIT, |o| !*o).unwrap();
    }
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
    fn is_open(&self) -> bool {
        *self.open.lock().unwrap()
    }
}

/// Turns the reactor until `cond` holds; fails after `LIMIT`.
fn run_until(reactor: &Reactor, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        reactor.iterate(Duration::from_millis(20));
    }
}

/// Turns the reactor until `rx` gives a value.
fn run_until_recv<T>(reactor: &Reactor, what: &str, rx: &mpsc::Receiver<T>) -> T {
    let mut got = None;
    run_until(reactor, what, || {
        got = rx.try_recv().ok();
        got.is_some()
    });
    got.unwrap()
}

/// On a thread of its own: connects to `addr`, writes `request` (whose last request asks
/// to close), and reads until the server closes.
fn client(addr: SocketAddr, request: String) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        match s.read_to_end(&mut out) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!("client read: {e}"),
        }
        let _ = tx.send(out);
    });
    rx
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
}

fn get_close(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
}

fn listen(reactor: &Reactor, server: &HttpServer) -> SocketAddr {
    let port = server
        .listen(reactor, "127.0.0.1:0".parse().unwrap())
        .unwrap();
    port.local_addr().inet().unwrap()
}

fn responses(out: &[u8]) -> Vec<Resp> {
    parse_responses(out)
}

/// A handler that waits at `gate` (after saying it started), then answers `blocked`.
fn gated(
    gate: &Arc<Gate>,
    started: mpsc::Sender<()>,
) -> impl Fn(Request) -> Result<Response, Failure> + Send + Sync {
    let gate = gate.clone();
    let started = Mutex::new(started);
    move |_: Request| {
        let _ = started.lock().unwrap().send(());
        gate.wait();
        Ok(Response::text("blocked"))
    }
}

/// The handler runs on a worker thread, not on the reactor's (this test's) thread; the
/// same closure on a one-stage server runs on the reactor's.
#[test]
fn handlers_run_off_the_reactor_thread() {
    let reactor = Reactor::new().unwrap();
    let where_am_i = |_: Request| {
        let t = std::thread::current();
        Ok(Response::text(format!(
            "{:?} {}",
            t.id(),
            t.name().unwrap_or("-")
        )))
    };
    let two = HttpServer::two_stage(&reactor, where_am_i, ServerConfig::default());
    let one = HttpServer::new(&reactor, where_am_i);
    let (two_addr, one_addr) = (listen(&reactor, &two), listen(&reactor, &one));
    let here = format!("{:?}", std::thread::current().id());

    let out = run_until_recv(&reactor, "two-stage", &client(two_addr, get_close("/")));
    let rs = responses(&out);
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].status, 200);
    let text = rs[0].text();
    let (id, name) = text.split_once(' ').unwrap();
    assert_ne!(id, here, "a two-stage handler ran on the reactor thread");
    assert!(name.starts_with("ropewalk-worker"), "{name}");

    let out = run_until_recv(&reactor, "one-stage", &client(one_addr, get_close("/")));
    let rs = responses(&out);
    assert_eq!(rs[0].text().split_once(' ').unwrap().0, here);
}

/// Two pipelined requests, the first slow and the second fast: both run on the pool at
/// once, the fast one finishes first (it opens the slow one's gate), and the responses
/// still come back in request order.
#[test]
fn pipelined_responses_keep_request_order() {
    let reactor = Reactor::new().unwrap();
    let gate = Arc::new(Gate::default());
    let finished = Arc::new(Mutex::new(Vec::new()));
    let (g, f) = (gate.clone(), finished.clone());
    let handler = move |req: Request| {
        let path = req.path().to_string();
        if path == "/slow" {
            g.wait();
        }
        f.lock().unwrap().push(path.clone());
        if path == "/fast" {
            g.open();
        }
        Ok(Response::text(format!("answer to {path}")))
    };
    let server = HttpServer::two_stage(&reactor, handler, ServerConfig::default());
    let addr = listen(&reactor, &server);
    let request = format!("{}{}", get("/slow"), get_close("/fast"));
    let out = run_until_recv(&reactor, "the responses", &client(addr, request));
    let rs = responses(&out);
    assert_eq!(rs.len(), 2, "{}", String::from_utf8_lossy(&out));
    assert_eq!(rs[0].text(), "answer to /slow");
    assert_eq!(rs[1].text(), "answer to /fast");
    assert_eq!(*finished.lock().unwrap(), ["/fast", "/slow"]);
}

/// With every stage-two thread busy, the reactor goes on serving other connections: a
/// route on the reactor and a static file answer at once; the blocked requests are
/// answered when their gate opens.
#[test]
fn reactor_serves_while_stage_two_is_busy() {
    let dir = std::env::temp_dir().join(format!("ropewalk-two-stage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "file\n").unwrap();
    let reactor = Reactor::new().unwrap();
    reactor.configure_pool(PoolConfig {
        max_threads: 2,
        ..PoolConfig::default()
    });
    let gate = Arc::new(Gate::default());
    let (started_tx, started_rx) = mpsc::channel();
    let files = StaticFiles::new(&reactor, &dir)
        .unwrap()
        .with_prefix("/static/");
    let site = Site::new()
        .get("/ping", |_: Request| Ok(Response::static_text("pong")))
        .get("/block", StageTwo::new(&reactor, gated(&gate, started_tx)))
        .mount("/static/", files);
    let server = HttpServer::new(&reactor, site);
    let addr = listen(&reactor, &server);

    let blocked: Vec<_> = (0..2).map(|_| client(addr, get_close("/block"))).collect();
    for _ in 0..2 {
        run_until_recv(&reactor, "a blocked handler to start", &started_rx);
    }
    assert_eq!(reactor.pool_stats().threads, 2);
    let ping = run_until_recv(&reactor, "/ping", &client(addr, get_close("/ping")));
    assert_eq!(responses(&ping)[0].text(), "pong");
    let file = run_until_recv(
        &reactor,
        "a file",
        &client(addr, get_close("/static/a.txt")),
    );
    assert_eq!(responses(&file)[0].text(), "file\n");
    assert!(!gate.is_open());
    for rx in &blocked {
        assert!(rx.try_recv().is_err(), "answered before its gate opened");
    }

    gate.open();
    for rx in &blocked {
        let out = run_until_recv(&reactor, "a blocked response", rx);
        assert_eq!(responses(&out)[0].text(), "blocked");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A handler that panics on a worker thread gives 500; the next request on the same
/// connection is served.
#[test]
fn panicking_handler_gives_500_and_the_server_goes_on() {
    let reactor = Reactor::new().unwrap();
    let handler = |req: Request| {
        if req.path() == "/panic" {
            panic!("the handler broke");
        }
        Ok(Response::text("fine"))
    };
    let server = HttpServer::two_stage(&reactor, handler, ServerConfig::default());
    let addr = listen(&reactor, &server);
    let request = format!("{}{}", get("/panic"), get_close("/"));
    let out = run_until_recv(&reactor, "the responses", &client(addr, request));
    let rs = responses(&out);
    assert_eq!(rs.len(), 2, "{}", String::from_utf8_lossy(&out));
    assert_eq!(rs[0].status, 500);
    assert!(
        !rs[0].text().contains("broke"),
        "no internals in the answer"
    );
    assert_eq!(rs[1].status, 200);
    assert_eq!(rs[1].text(), "fine");
}

/// A pool of one thread and a queue of one: the first request runs, the second waits,
/// the third gets 503 with `Retry-After` at once; the first two are answered later.
#[test]
fn full_pool_answers_503() {
    let reactor = Reactor::new().unwrap();
    reactor.configure_pool(PoolConfig {
        max_threads: 1,
        max_queue: 1,
        ..PoolConfig::default()
    });
    let gate = Arc::new(Gate::default());
    let (started_tx, started_rx) = mpsc::channel();
    let server = HttpServer::two_stage(&reactor, gated(&gate, started_tx), ServerConfig::default());
    let mut conns: Vec<_> = (0..3)
        .map(|_| {
            let mut c = server.connection();
            let t = StringTransport::connect(&mut c);
            (c, t)
        })
        .collect();
    conns[0].0.data_received(get("/0").as_bytes()).unwrap();
    run_until_recv(&reactor, "the first handler to start", &started_rx);
    conns[1].0.data_received(get("/1").as_bytes()).unwrap();
    conns[2].0.data_received(get("/2").as_bytes()).unwrap();
    let refused = responses(&conns[2].1.value());
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].status, 503);
    assert_eq!(refused[0].header("retry-after"), Some("1"));
    assert!(conns[1].1.value().is_empty());

    gate.open();
    run_until(&reactor, "the admitted answers", || {
        conns[..2].iter().all(|(_, t)| !t.value().is_empty())
    });
    for (_, t) in &conns[..2] {
        assert_eq!(responses(&t.value())[0].text(), "blocked");
    }
}

/// What cannot leave a worker thread: a streamed body, a Deferred that has not fired.
/// Each gives 500 (the reason is logged), and the connection goes on.
#[test]
fn streamed_body_and_pending_deferred_give_500() {
    let reactor = Reactor::new().unwrap();
    let handler = |req: Request| match req.path() {
        "/stream" => {
            let (resp, body) = Response::streaming(200);
            body.write(b"never sent");
            Deferred::succeed(resp)
        }
        "/pending" => {
            let (d, resolver) = Deferred::<Response>::pending();
            // Kept from firing (a dropped resolver fails its Deferred): work that would
            // finish later, on a thread that will never run it.
            std::mem::forget(resolver);
            d
        }
        _ => Deferred::succeed(Response::text("whole")),
    };
    let server = HttpServer::two_stage(&reactor, handler, ServerConfig::default());
    let mut c = server.connection();
    let t = StringTransport::connect(&mut c);
    let request = format!("{}{}{}", get("/stream"), get("/pending"), get("/"));
    c.data_received(request.as_bytes()).unwrap();
    run_until(&reactor, "three responses", || {
        responses(&t.value()).len() == 3
    });
    let rs = responses(&t.value());
    assert_eq!(rs[0].status, 500);
    assert_eq!(rs[1].status, 500);
    assert_eq!((rs[2].status, rs[2].text().as_str()), (200, "whole"));
    assert!(!t.is_disconnecting());
}

/// A drain waits for a request that is on the pool: it is answered in full, with
/// `Connection: close`, and the drain ends when its connection has closed.
#[test]
fn drain_waits_for_in_flight_stage_two_requests() {
    let reactor = Reactor::new().unwrap();
    let gate = Arc::new(Gate::default());
    let (started_tx, started_rx) = mpsc::channel();
    let server = HttpServer::two_stage(&reactor, gated(&gate, started_tx), ServerConfig::default());
    let addr = listen(&reactor, &server);
    let rx = client(addr, get("/"));
    run_until_recv(&reactor, "the handler to start", &started_rx);
    let mut drained = server.drain(Duration::from_secs(10));
    reactor.iterate(Duration::ZERO);
    assert!(
        drained.try_result().is_none(),
        "drained with a request on the pool"
    );
    assert_eq!(server.live_connections(), 1);
    gate.open();
    run_until(&reactor, "the drain", || drained.try_result().is_some());
    let out = run_until_recv(&reactor, "the response", &rx);
    let rs = responses(&out);
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].text(), "blocked");
    assert_eq!(rs[0].header("connection"), Some("close"));
    assert_eq!(server.live_connections(), 0);
}

/// Stopping the reactor with `drain_on_shutdown` loses no request that is on the pool:
/// `run` returns after it has been answered.
#[test]
fn shutdown_answers_the_requests_on_the_pool() {
    let reactor = Reactor::new().unwrap();
    let gate = Arc::new(Gate::default());
    let (started_tx, started_rx) = mpsc::channel();
    let server = HttpServer::two_stage(&reactor, gated(&gate, started_tx), ServerConfig::default());
    let addr = listen(&reactor, &server);
    server.drain_on_shutdown(&reactor, Duration::from_secs(10));
    // Runs after the drain's trigger (same phase, added later): the drain has begun.
    let g = gate.clone();
    reactor.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, move || {
        g.open();
        Deferred::succeed(())
    });
    let rx = client(addr, get("/"));
    run_until_recv(&reactor, "the handler to start", &started_rx);
    let r = reactor.clone();
    reactor.call_soon(move || r.stop().unwrap());
    reactor.run().unwrap();
    let out = rx.recv_timeout(LIMIT).unwrap();
    let rs = responses(&out);
    assert_eq!(rs.len(), 1, "{}", String::from_utf8_lossy(&out));
    assert_eq!(rs[0].text(), "blocked");
    assert_eq!(rs[0].header("connection"), Some("close"));
}

/// The same handler, unchanged, gives the same response from either stage.
#[test]
fn same_handler_same_response_in_both_modes() {
    let reactor = Reactor::new().unwrap();
    fn hello(req: Request) -> Result<Response, Failure> {
        Ok(Response::text(format!("hello {}", req.path())).with_header("X-Mode", "any"))
    }
    let mut outs = Vec::new();
    for server in [
        HttpServer::with_config(&reactor, hello, ServerConfig::default()),
        HttpServer::two_stage(&reactor, hello, ServerConfig::default()),
    ] {
        let mut c = server.connection();
        let t = StringTransport::connect(&mut c);
        c.data_received(get("/x").as_bytes()).unwrap();
        run_until(&reactor, "the response", || !t.value().is_empty());
        let r = responses(&t.value()).remove(0);
        outs.push((r.status, r.header("x-mode").map(str::to_string), r.text()));
    }
    assert_eq!(outs[0], outs[1]);
    assert_eq!(outs[0].2, "hello /x");
}

/// A client that leaves while its request is on the pool: the job finishes, its response
/// is dropped, and the pool's one thread serves the next request.
#[test]
fn client_gone_while_on_the_pool() {
    let reactor = Reactor::new().unwrap();
    reactor.configure_pool(PoolConfig {
        max_threads: 1,
        ..PoolConfig::default()
    });
    let gate = Arc::new(Gate::default());
    let (started_tx, started_rx) = mpsc::channel();
    let server = HttpServer::two_stage(&reactor, gated(&gate, started_tx), ServerConfig::default());
    let mut gone = server.connection();
    let gone_t = StringTransport::connect(&mut gone);
    gone.data_received(get("/").as_bytes()).unwrap();
    run_until_recv(&reactor, "the handler to start", &started_rx);
    gone.connection_lost(Failure::msg("client left"));
    gate.open();
    let mut next = server.connection();
    let t = StringTransport::connect(&mut next);
    next.data_received(get("/").as_bytes()).unwrap();
    run_until(&reactor, "the next response", || !t.value().is_empty());
    assert_eq!(responses(&t.value())[0].text(), "blocked");
    assert!(gone_t.value().is_empty());
}
