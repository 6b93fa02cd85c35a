//! Overload: a full worker pool, descriptors run out, too much buffered at once. The
//! server answers 503 (with `Retry-After` where waiting helps) and logs it without
//! flooding the log, instead of a 500 with an ERROR line per request.

mod common;

use std::rc::Rc;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::{get, parse_responses};
use ropewalk_protocols::http::{HttpServer, Request, Response};
use ropewalk_reactor::testing::StringTransport;
use ropewalk_reactor::{PoolConfig, Protocol, Reactor};

static RECORDS: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = record.args().to_string();
            RECORDS.lock().unwrap().push((record.level(), line));
        }
    }
    fn flush(&self) {}
}

fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Warn);
    });
}

fn logged(marker: &str) -> Vec<(log::Level, String)> {
    RECORDS
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, m)| m.contains(marker))
        .cloned()
        .collect()
}

const LIMIT: Duration = Duration::from_secs(20);

/// A gate worker jobs wait on until the test opens it.
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
}

fn run_until(reactor: &Reactor, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        reactor.iterate(Duration::from_millis(20));
    }
}

/// A worker pool of one thread and a queue of one: the first request runs, the second
/// waits, the next ten get 503 with `Retry-After` at once (not 500), logged as one
/// WARN (not one ERROR each); the two admitted ones are then answered.
#[test]
fn full_worker_pool_answers_503_with_retry_after() {
    capture_logs();
    let reactor = Reactor::new().unwrap();
    reactor.configure_pool(PoolConfig {
        max_threads: 1,
        max_queue: 1,
        ..PoolConfig::default()
    });
    let gate = Arc::new(Gate::default());
    let (started_tx, started_rx) = mpsc::channel();
    let started_tx = Mutex::new(started_tx);
    let (r, g) = (reactor.clone(), gate.clone());
    let handler = move |req: Request| {
        let (g, tx) = (g.clone(), started_tx.lock().unwrap().clone());
        let path = req.path().to_string();
        r.defer_to_thread(move || {
            let _ = tx.send(());
            g.wait();
            Ok(path)
        })
        .add_callback(|path| Ok(Response::text(format!("done {path}"))))
    };
    let server = HttpServer::new(&reactor, handler);
    let mut conns: Vec<_> = (0..12)
        .map(|_| {
            let mut c = server.connection();
            let t = StringTransport::connect(&mut c);
            (c, t)
        })
        .collect();
    conns[0].0.data_received(get("/0").as_bytes()).unwrap();
    started_rx.recv_timeout(LIMIT).unwrap();
    for (i, (c, _)) in conns.iter_mut().enumerate().skip(1) {
        c.data_received(get(&format!("/{i}")).as_bytes()).unwrap();
    }
    for (c, t) in &conns[2..] {
        let r = parse_responses(&t.value());
        assert_eq!(r.len(), 1, "{c:?}");
        assert_eq!(r[0].status, 503);
        assert_eq!(r[0].header("retry-after"), Some("1"));
    }
    let warned = logged("answering 503");
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert_eq!(warned[0].0, log::Level::Warn);
    assert!(logged("request handler failed").is_empty());

    gate.open();
    let admitted: Vec<Rc<StringTransport>> = conns[..2].iter().map(|(_, t)| t.clone()).collect();
    run_until(&reactor, "the admitted requests' answers", || {
        admitted.iter().all(|t| !t.value().is_empty())
    });
    for (i, t) in admitted.iter().enumerate() {
        let r = parse_responses(&t.value());
        assert_eq!(r[0].status, 200);
        assert_eq!(r[0].text(), format!("done /{i}"));
    }
}

const CHILD: &str = "ROPEWALK_OVERLOAD_CHILD";

/// Runs this binary's test `test` again in a child process with `ulimit -n nofile` and
/// `ROPEWALK_OVERLOAD_CHILD` set, so the descriptor limit of the other tests is untouched;
/// the child is killed (by its pid) if it outlives `LIMIT`.
fn run_child(test: &str, nofile: u32) {
    let exe = std::env::current_exe().unwrap();
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(LIMIT) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .arg("-9")
                .arg(pid.to_string())
                .status();
            panic!("the child process did not finish within {LIMIT:?}");
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "child failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A static file the server cannot open because the process ran out of descriptors is
/// a 503 that no cache keeps (it was a 404: "not found", cacheable, for a file that is
/// there), logged; once descriptors are free again the file is served. In a child
/// process with `ulimit -n 64`, the descriptor table is filled before the request.
#[test]
fn static_file_without_descriptors_is_503() {
    if std::env::var_os(CHILD).is_none() {
        return run_child("static_file_without_descriptors_is_503", 64);
    }
    capture_logs();
    let dir = std::env::temp_dir().join(format!("ropewalk-overload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "hello\n").unwrap();
    let reactor = Reactor::new().unwrap();
    // No open-file cache: each request looks the file up (and opens it) again.
    let files = ropewalk_protocols::http::StaticFiles::new(&reactor, &dir)
        .unwrap()
        .with_open_file_cache(0, std::time::Duration::ZERO);
    let server = HttpServer::new(&reactor, files);
    let ask = |what: &str| {
        let mut c = server.connection();
        let t = StringTransport::connect(&mut c);
        c.data_received(get("/a.txt").as_bytes()).unwrap();
        run_until(&reactor, what, || !t.value().is_empty());
        parse_responses(&t.value()).remove(0)
    };
    // Start the pool's thread while descriptors are left.
    assert_eq!(ask("a first answer").status, 200);
    let mut spare = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => spare.push(f),
            Err(e) if e.raw_os_error() == Some(24) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let r = ask("the answer without descriptors");
    drop(spare);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let errors = logged("cannot serve");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].1.contains("Too many open files"), "{errors:?}");
    assert_eq!(ask("the answer with descriptors again").status, 200);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server with a budget of 100 body bytes across connections (and 80 per request), on
/// a `ManualClock`, echoing the body's length.
fn budget_server() -> HttpServer {
    let clock = ropewalk_reactor::ManualClock::new();
    let config = ropewalk_protocols::http::ServerConfig {
        max_body: 80,
        max_buffered_bodies: 100,
        ..Default::default()
    };
    HttpServer::with_config(
        &clock,
        |req: Request| Ok(Response::text(format!("{} bytes", req.body().len()))),
        config,
    )
}

fn post_head(len: usize) -> String {
    format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n")
}

fn connect(
    server: &HttpServer,
) -> (
    ropewalk_protocols::http::HttpConnection,
    Rc<StringTransport>,
) {
    let mut c = server.connection();
    let t = StringTransport::connect(&mut c);
    (c, t)
}

/// Bodies being read share one budget: a second 60-byte body while the first is held
/// gets 503 with `Retry-After` and a close (an 81-byte one, past the per-request cap,
/// 413); when the first connection dies mid-body its bytes come back, and a request that
/// completes gives its bytes back once answered.
#[test]
fn request_bodies_share_a_server_wide_budget() {
    let server = budget_server();
    let (mut a, ta) = connect(&server);
    a.data_received(format!("{}half", post_head(60)).as_bytes())
        .unwrap();
    assert!(ta.value().is_empty());

    let (mut b, tb) = connect(&server);
    b.data_received(post_head(60).as_bytes()).unwrap();
    let r = parse_responses(&tb.value());
    assert_eq!(r[0].status, 503);
    assert_eq!(r[0].header("retry-after"), Some("1"));
    assert!(tb.is_disconnecting());

    let (mut c, tc) = connect(&server);
    c.data_received(post_head(81).as_bytes()).unwrap();
    assert_eq!(parse_responses(&tc.value())[0].status, 413);

    // The first client goes away mid-body: its 60 bytes are free again.
    a.connection_lost(ropewalk_reactor::deferred::Failure::msg("reset"));
    let (mut d, td) = connect(&server);
    let body = "x".repeat(60);
    d.data_received(format!("{}{body}", post_head(60)).as_bytes())
        .unwrap();
    assert_eq!(parse_responses(&td.value())[0].text(), "60 bytes");
    // Answered: its bytes are back too, and the same connection goes on.
    d.data_received(format!("{}{body}", post_head(60)).as_bytes())
        .unwrap();
    let (mut e, te) = connect(&server);
    e.data_received(format!("{}{}", post_head(40), "y".repeat(40)).as_bytes())
        .unwrap();
    assert_eq!(parse_responses(&td.value()).len(), 2);
    assert_eq!(parse_responses(&te.value())[0].text(), "40 bytes");
}

/// A chunked body reserves as it grows: past the budget, 503 and close; the bytes come
/// back at once.
#[test]
fn chunked_body_past_the_budget_is_503() {
    let server = budget_server();
    let (mut a, ta) = connect(&server);
    a.data_received(format!("{}x", post_head(50)).as_bytes())
        .unwrap();
    let (mut b, tb) = connect(&server);
    b.data_received(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n28\r\n0123456789012345678901234567890123456789\r\n",
    )
    .unwrap();
    assert!(tb.value().is_empty(), "40 bytes fit");
    b.data_received(b"b\r\n0123456789a\r\n").unwrap();
    let r = parse_responses(&tb.value());
    assert_eq!(r[0].status, 503);
    assert!(tb.is_disconnecting());
    // The 51 chunked bytes went back: the first body completes, and another 50 fit.
    a.data_received("y".repeat(49).as_bytes()).unwrap();
    assert_eq!(parse_responses(&ta.value())[0].text(), "50 bytes");
    let (mut c, tc) = connect(&server);
    c.data_received(format!("{}{}", post_head(50), "z".repeat(50)).as_bytes())
        .unwrap();
    assert_eq!(parse_responses(&tc.value())[0].text(), "50 bytes");
}

/// The bytes a connection's buffers hold, from its `Debug` line.
fn held(conn: &ropewalk_protocols::http::HttpConnection) -> usize {
    let debug = format!("{conn:?}");
    let rest = &debug[debug.find("held: ").expect("held in Debug") + 6..];
    rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap()]
        .parse()
        .unwrap()
}

/// `/echo` of `http_server` (`Response::bytes(req.into_body())`): a 4 MiB body echoed to
/// a peer that does not read. The body moves into the response; once written, the copy
/// is the transport's queue alone: the connection keeps none (it kept the 4 MiB output
/// buffer, so a stuck echo held its body twice).
#[test]
fn echoed_body_is_not_held_twice() {
    let clock = ropewalk_reactor::ManualClock::new();
    let server = HttpServer::new(&clock, |req: Request| Ok(Response::bytes(req.into_body())));
    let (mut c, t) = connect(&server);
    let len = 4 << 20;
    c.data_received(post_head(len).as_bytes()).unwrap();
    let piece = vec![b'e'; 64 * 1024];
    for _ in 0..len / piece.len() {
        c.data_received(&piece).unwrap();
    }
    let r = parse_responses(&t.value());
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].body.len(), len);
    let held = held(&c);
    assert!(
        held <= 256 * 1024,
        "the connection holds {held} bytes after the echo"
    );
}
