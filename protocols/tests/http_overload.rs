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
