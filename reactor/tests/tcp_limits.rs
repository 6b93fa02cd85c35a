//! Resource limits: running out of file descriptors while accepting, and 10,000
//! concurrent connections. Both run parts of themselves in a child process (this test
//! binary run again, selected by `ROPEWALK_LIMITS_CHILD`) so the descriptor limits of
//! the other tests' process are untouched.

mod support;

use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::{Address, Clock, ListenOptions, Protocol, Reactor, TransportRef};
use support::net::{run_until, Events, Probe};
use support::{bounded, capture_logs, logged};

const CHILD: &str = "ROPEWALK_LIMITS_CHILD";
const WAIT: Duration = Duration::from_secs(20);

/// Runs this binary's test `test` in a child process with `ulimit -n nofile` and
/// `ROPEWALK_LIMITS_CHILD=role`; kills it (it is ours, by its pid) after `limit`.
fn run_child(
    test: &str,
    role: &str,
    nofile: u32,
    env: &[(&str, String)],
    limit: Duration,
) -> Output {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("the child process did not finish within {limit:?}");
        }
    }
}

fn check_child(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "child failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

fn role() -> Option<String> {
    std::env::var(CHILD).ok()
}

/// Twisted: §2.3 (on EMFILE `tcp.Port.doRead` frees a reserved descriptor, accepts and
/// closes; here the listener backs off instead) — Twisted's
/// `internet/test/test_tcp.py …test_acceptOutOfFiles` covers the same ground. In a child
/// with `ulimit -n 64`, the descriptor table is filled so that a client's socket takes
/// the last descriptor and accepting it fails with EMFILE: one warning is logged, the
/// loop does not spin while it backs off, and once a client closes (freeing its two
/// descriptors) the waiting connection is accepted.
#[test]
fn accept_backs_off_on_emfile_and_recovers() {
    if role().as_deref() == Some("emfile") {
        return emfile_child();
    }
    if role().is_some() {
        return;
    }
    let out = run_child(
        "accept_backs_off_on_emfile_and_recovers",
        "emfile",
        64,
        &[],
        Duration::from_secs(60),
    );
    check_child(&out);
}

fn emfile_child() {
    bounded(Duration::from_secs(40), || {
        capture_logs();
        let reactor = Reactor::new().unwrap();
        let conns: Rc<RefCell<Vec<Rc<Events>>>> = Rc::default();
        let c2 = conns.clone();
        let port = reactor
            .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
                let ev = Events::new();
                c2.borrow_mut().push(ev.clone());
                Some(Probe::new(&ev))
            })
            .unwrap();
        let addr = port.local_addr().inet().unwrap();
        // Fill the descriptor table, then free three: a client and its accepted socket,
        // then one more client socket, whose accept has no descriptor left.
        let mut spare = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => spare.push(f),
                Err(e) if e.raw_os_error() == Some(24) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(spare.len() > 3, "{} spare descriptors", spare.len());
        spare.truncate(spare.len() - 3);
        let first = TcpStream::connect(addr).unwrap();
        run_until(&reactor, WAIT, "the first accept", || {
            conns.borrow().len() == 1
        });
        assert!(logged("pausing accepts").is_empty());
        let _second = TcpStream::connect(addr).unwrap();
        assert!(
            std::fs::File::open("/dev/null").is_err(),
            "descriptors left over"
        );
        run_until(&reactor, WAIT, "the EMFILE warning", || {
            !logged("pausing accepts").is_empty()
        });
        let warnings = logged("pausing accepts");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].0, log::Level::Warn);
        assert!(
            warnings[0].1.contains("Too many open files"),
            "{warnings:?}"
        );
        assert_eq!(conns.borrow().len(), 1);
        // Close a client: its socket, then (on EOF) the server's end, are freed.
        let turns = reactor.stats().turns;
        drop(first);
        let first_ev = conns.borrow()[0].clone();
        run_until(&reactor, WAIT, "the second accept", || {
            conns.borrow().len() == 2
        });
        let used = reactor.stats().turns - turns;
        assert!(
            used < 100,
            "{used} turns during the back-off: the loop spun"
        );
        assert_eq!(first_ev.reason_kind(), "Done");
        assert_eq!(logged("pausing accepts").len(), 1, "warned again");
        drop(spare);
        port.stop_listening();
    });
}

/// The back-off's warning is rate-limited: out of descriptors for 2.5 s, the listener
/// retries ten times a second but warns at most once a second, and a later warning says
/// how many it held back (it logged one line per retry, 25 here, before).
#[test]
fn accept_backoff_warning_is_rate_limited() {
    if role().as_deref() == Some("emfile-long") {
        return emfile_long_child();
    }
    if role().is_some() {
        return;
    }
    let out = run_child(
        "accept_backoff_warning_is_rate_limited",
        "emfile-long",
        64,
        &[],
        Duration::from_secs(60),
    );
    check_child(&out);
}

fn emfile_long_child() {
    bounded(Duration::from_secs(40), || {
        capture_logs();
        let reactor = Reactor::new().unwrap();
        let port = reactor
            .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
                Some(Probe::new(&Events::new()))
            })
            .unwrap();
        let addr = port.local_addr().inet().unwrap();
        // Every descriptor taken but one, for the client: its accept fails.
        let mut spare = Vec::new();
        while let Ok(f) = std::fs::File::open("/dev/null") {
            spare.push(f);
        }
        spare.pop();
        let _client = TcpStream::connect(addr).unwrap();
        let start = reactor.now();
        run_until(&reactor, WAIT, "2.5 s of back-off", || {
            reactor.now() >= start + Duration::from_millis(2500)
        });
        let warnings = logged("pausing accepts");
        assert!(
            (2..=4).contains(&warnings.len()),
            "{} warnings in 2.5 s: {warnings:?}",
            warnings.len()
        );
        assert!(
            warnings[1..]
                .iter()
                .all(|(_, m)| m.contains("similar lines suppressed")),
            "{warnings:?}"
        );
        drop(spare);
        port.stop_listening();
    });
}

/// Counts what happens on many connections.
#[derive(Default)]
struct Tally {
    made: Cell<usize>,
    live: Cell<usize>,
    max_live: Cell<usize>,
    clean: Cell<usize>,
    unclean: RefCell<Vec<String>>,
    echoed: Cell<usize>,
    transports: RefCell<Vec<TransportRef>>,
}

impl Tally {
    fn made(&self) {
        self.made.set(self.made.get() + 1);
        self.live.set(self.live.get() + 1);
        self.max_live.set(self.max_live.get().max(self.live.get()));
    }

    fn lost(&self, reason: &Failure) {
        self.live.set(self.live.get() - 1);
        match reason.downcast_ref::<ropewalk_reactor::ConnectionError>() {
            Some(e) if e.is_clean() => self.clean.set(self.clean.get() + 1),
            _ => self.unclean.borrow_mut().push(reason.to_string()),
        }
    }
}

/// The server end: echoes.
struct EchoEnd {
    tally: Rc<Tally>,
    transport: Option<TransportRef>,
}

impl Protocol for EchoEnd {
    fn connection_made(&mut self, transport: TransportRef) {
        self.tally.made();
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        self.transport.as_ref().unwrap().write(data);
        Ok(())
    }
    fn connection_lost(&mut self, reason: Failure) {
        self.tally.lost(&reason);
    }
}

const MANY: usize = 10_000;
const MESSAGE: &[u8] = b"hello, ten thousand";

/// The client end: sends `MESSAGE`, waits for it back; when every client has its echo,
/// all of them close.
struct Greeter {
    tally: Rc<Tally>,
    got: usize,
}

impl Protocol for Greeter {
    fn connection_made(&mut self, transport: TransportRef) {
        self.tally.made();
        transport.write(MESSAGE);
        self.tally.transports.borrow_mut().push(transport);
    }
    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        self.got += data.len();
        if self.got == MESSAGE.len() {
            self.tally.echoed.set(self.tally.echoed.get() + 1);
            if self.tally.echoed.get() == MANY {
                for t in self.tally.transports.borrow().iter() {
                    t.lose_connection();
                }
            }
        }
        Ok(())
    }
    fn connection_lost(&mut self, reason: Failure) {
        self.tally.lost(&reason);
    }
}

/// Twisted: none (a scale check, C10K). A server on one reactor accepts 10,000
/// concurrent connections from a child process (the descriptor limit here is 20,000 a
/// process), echoes a small message on each, and every connection closes cleanly at
/// both ends.
#[test]
fn ten_thousand_concurrent_connections() {
    if role().as_deref() == Some("clients") {
        return clients_child();
    }
    if role().is_some() {
        return;
    }
    bounded(Duration::from_secs(90), || {
        let reactor = Reactor::new().unwrap();
        let tally = Rc::new(Tally::default());
        let t2 = tally.clone();
        let opts = ListenOptions {
            backlog: 4096,
            ..ListenOptions::default()
        };
        let port = reactor
            .listen_tcp_with(
                "127.0.0.1:0".parse().unwrap(),
                move |_: &Address| {
                    Some(EchoEnd {
                        tally: t2.clone(),
                        transport: None,
                    })
                },
                &opts,
            )
            .unwrap();
        let addr = port.local_addr().inet().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let out = run_child(
                "ten_thousand_concurrent_connections",
                "clients",
                20_000,
                &[("ROPEWALK_LIMITS_ADDR", addr.to_string())],
                Duration::from_secs(80),
            );
            let _ = tx.send(out);
        });
        let mut out = None;
        run_until(
            &reactor,
            Duration::from_secs(85),
            "all connections to end",
            || {
                if out.is_none() {
                    out = rx.try_recv().ok();
                }
                tally.clean.get() + tally.unclean.borrow().len() == MANY
            },
        );
        let out = match out {
            Some(o) => o,
            None => rx.recv_timeout(Duration::from_secs(30)).unwrap(),
        };
        check_child(&out);
        assert_eq!(tally.made.get(), MANY);
        assert_eq!(tally.max_live.get(), MANY, "not all open at once");
        assert!(
            tally.unclean.borrow().is_empty(),
            "{:?}",
            &tally.unclean.borrow()[..3.min(tally.unclean.borrow().len())]
        );
        assert_eq!(tally.clean.get(), MANY);
        port.stop_listening();
        assert_eq!(reactor.stats().sources, 0);
    });
}

fn clients_child() {
    bounded(Duration::from_secs(75), || {
        let addr: SocketAddr = std::env::var("ROPEWALK_LIMITS_ADDR")
            .unwrap()
            .parse()
            .unwrap();
        let reactor = Reactor::new().unwrap();
        let tally = Rc::new(Tally::default());
        let failures: Rc<RefCell<Vec<String>>> = Rc::default();
        let started = Cell::new(0usize);
        // Keep at most this many connects in flight (the server's accept queue is 4,096).
        let window = 512;
        run_until(
            &reactor,
            Duration::from_secs(70),
            "every client to close",
            || {
                while started.get() < MANY
                    && started.get() - tally.made.get() - failures.borrow().len() < window
                {
                    started.set(started.get() + 1);
                    let t = tally.clone();
                    let f = failures.clone();
                    // Not waited on: the errback records a failure; the Deferred may go.
                    let d = reactor
                        .connect_tcp(
                            addr,
                            move |_: &Address| {
                                Some(Greeter {
                                    tally: t.clone(),
                                    got: 0,
                                })
                            },
                            Duration::from_secs(30),
                        )
                        .add_callback(|_| Ok(()))
                        .add_errback(move |e| {
                            f.borrow_mut().push(e.to_string());
                            Ok(())
                        });
                    drop(d);
                }
                assert!(failures.borrow().is_empty(), "{:?}", failures.borrow());
                tally.clean.get() + tally.unclean.borrow().len() == MANY
            },
        );
        assert_eq!(tally.echoed.get(), MANY);
        assert_eq!(tally.max_live.get(), MANY);
        assert!(
            tally.unclean.borrow().is_empty(),
            "{:?}",
            tally.unclean.borrow().first()
        );
        assert_eq!(tally.clean.get(), MANY);
    });
}
