//! Deployment behind a real HAProxy: two `http_server` processes on one port
//! (`--reuse-port`, the kernel spreads connections between them), each reading the PROXY
//! protocol (`--proxy-protocol`), behind HAProxy in HTTP mode with `send-proxy-v2` (and
//! `send-proxy`, v1, on a second frontend). Checked: both processes serve; the client
//! address HAProxy saw (a distinct loopback source, 127.0.0.2) is the one the servers
//! see; and draining one process with SIGTERM while requests keep coming loses none
//! (HAProxy retries what a closing process leaves unanswered: `retry-on`, `retries`).
//!
//! HAProxy is a peer, not a crate (Debian's `haproxy`): when it is missing a plain `cargo
//! test` skips this with a `*** SKIPPED` notice; under `ROPEWALK_REQUIRE_PEERS=1` (set by
//! `.ci/run`, which installs it) that is a failure. HAProxy listens on a socket the test
//! binds and passes it (`bind fd@N`), so it accepts from the moment it starts; every
//! subprocess is killed past its bound.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ropewalk_testkit::peers::require;

/// The longest any wait in this test may take.
const BOUND: Duration = Duration::from_secs(30);
/// Read and write timeout of each client request.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The `haproxy` program: on the `PATH`, or where Debian puts it (`/usr/sbin`, which a
/// user's `PATH` may lack).
fn haproxy() -> Option<String> {
    for candidate in ["haproxy", "/usr/sbin/haproxy"] {
        let ok = Command::new(candidate)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(candidate.to_string());
        }
    }
    let _ = require(
        "haproxy",
        &["haproxy", "-v"],
        "apt-get update && apt-get install -y haproxy",
    );
    None
}

/// Where cargo put the example binaries (next to this test's `deps/` folder).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "example {name} not built at {} (cargo test builds it; cargo test --test \
         haproxy_interop alone needs cargo build --example {name} first)",
        path.display()
    );
    path
}

/// A subprocess, killed when dropped.
struct Proc {
    child: Option<Child>,
    name: &'static str,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM.
    fn signal_term(&self) {
        let pid = self.pid().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
    }

    /// Sends SIGTERM; returns the exit status, or panics past [`BOUND`].
    fn terminate(self) -> std::process::ExitStatus {
        self.signal_term();
        self.wait()
    }

    /// Waits for the process to exit: its status, or a panic past [`BOUND`].
    fn wait(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(BOUND) {
            Ok(status) => status.unwrap(),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                panic!("{} did not exit within {BOUND:?} of SIGTERM", self.name);
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `http_server args` and waits (bounded) for its `listening on IP:PORT` line.
fn http_server(args: &[&str]) -> (Proc, SocketAddr) {
    let mut child = Command::new(example("http_server"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn http_server");
    let stdout = child.stdout.take().unwrap();
    let proc = Proc {
        child: Some(child),
        name: "http_server",
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(BOUND)
        .expect("http_server printed its address in time");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .parse()
        .expect("an address");
    (proc, addr)
}

/// Starts HAProxy with `config`, on the listening sockets `inherited` (which the config
/// names as `fd@N`); its log goes to `log`.
fn start_haproxy(program: &str, config: &Path, log: &Path, inherited: &[&TcpListener]) -> Proc {
    let socks: Vec<socket2::SockRef<'_>> = inherited
        .iter()
        .map(|l| socket2::SockRef::from(*l))
        .collect();
    for s in &socks {
        s.set_cloexec(false).unwrap();
    }
    let child = Command::new(program)
        .arg("-db") // foreground, no daemon
        .arg("-f")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
        .spawn()
        .expect("spawn haproxy");
    for s in &socks {
        s.set_cloexec(true).unwrap();
    }
    Proc {
        child: Some(child),
        name: "haproxy",
    }
}

/// One `GET path` through `front`, from the loopback address `source`, with
/// `Connection: close`: the status and body, or what went wrong.
fn get(source: [u8; 4], front: SocketAddr, path: &str) -> Result<(u16, String), String> {
    response(send(source, front, path)?)
}

/// Sends `GET path` through `front` from `source`, with `Connection: close`.
fn send(source: [u8; 4], front: SocketAddr, path: &str) -> Result<TcpStream, String> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
    sock.bind(&SocketAddr::from((source, 0)).into())
        .map_err(|e| format!("bind: {e}"))?;
    sock.connect_timeout(&front.into(), IO_TIMEOUT)
        .map_err(|e| format!("connect: {e}"))?;
    let mut s = TcpStream::from(sock);
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    Ok(s)
}

/// Reads the response to what [`send`] sent: its status and body.
fn response(mut s: TcpStream) -> Result<(u16, String), String> {
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)
        .map_err(|e| format!("read: {e} after {:?}", String::from_utf8_lossy(&resp)))?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(format!("no response head: {text:?}"));
    };
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status: {head:?}"))?;
    Ok((status, body.to_string()))
}

/// `client A.B.C.D:P\npid N\n` from `/whoami`: the client address and the pid.
fn whoami(body: &str) -> (String, u32) {
    let mut lines = body.lines();
    let client = lines
        .next()
        .and_then(|l| l.strip_prefix("client "))
        .unwrap_or_else(|| panic!("{body:?}"));
    let ip = client.rsplit_once(':').map_or(client, |(ip, _)| ip);
    let pid = lines
        .next()
        .and_then(|l| l.strip_prefix("pid "))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{body:?}"));
    (ip.to_string(), pid)
}

/// One client's request: which client, the path, and what came back.
type Reply = (usize, &'static str, Result<(u16, String), String>);

/// What the clients got.
#[derive(Default)]
struct Tally {
    /// `/whoami` answers by the pid that served them.
    served_by: std::collections::HashMap<u32, usize>,
    /// Everything but a 200.
    failures: Vec<String>,
    total: usize,
}

impl Tally {
    /// Counts a reply (a `/whoami` must name the client 127.0.0.2); returns the total.
    fn record(&mut self, (i, path, got): Reply) -> usize {
        self.total += 1;
        match got {
            Ok((200, body)) if path == "/whoami" => {
                let (client, pid) = whoami(&body);
                assert_eq!(client, "127.0.0.2", "{body}");
                *self.served_by.entry(pid).or_default() += 1;
            }
            Ok((200, _)) => {}
            other => self.failures.push(format!("client {i} {path}: {other:?}")),
        }
        self.total
    }

    fn served(&self, pid: u32) -> usize {
        self.served_by.get(&pid).copied().unwrap_or(0)
    }
}

/// HAProxy's configuration: frontend `fd@v2` relays to the servers at `backend` with
/// `send-proxy-v2`, frontend `fd@v1` with `send-proxy`. Each request goes on a connection
/// of its own to the servers (`http-server-close`), so the kernel spreads them over both
/// processes; a request a closing process leaves unanswered is sent again.
fn config(v2_fd: i32, v1_fd: i32, backend: SocketAddr) -> String {
    format!(
        "global
    log stderr format raw local0 info
    nbthread 1

defaults
    mode http
    log global
    option httplog
    option http-server-close
    timeout connect 2s
    timeout client 15s
    timeout server 15s
    retries 3
    retry-on all-retryable-errors
    option redispatch

frontend v2
    bind fd@{v2_fd}
    default_backend proxy_v2

frontend v1
    bind fd@{v1_fd}
    default_backend proxy_v1

backend proxy_v2
    server both {backend} send-proxy-v2 check inter 500ms

backend proxy_v1
    server both {backend} send-proxy
"
    )
}

/// Two `http_server` processes on one port behind HAProxy: both serve, the client's
/// address arrives (v2 and v1), and SIGTERM to one while four clients keep requesting
/// loses no request: every one gets a 200, and the slow requests the drained process
/// had in flight are answered by it, not sent again to the other.
#[test]
fn two_servers_behind_haproxy_serve_see_the_client_and_drain_losing_nothing() {
    let Some(program) = haproxy() else { return };
    // Two processes on one port: the first picks it, the second joins (SO_REUSEPORT).
    let args = ["--reuse-port", "--proxy-protocol", "--drain-timeout", "10"];
    let (a, backend) = http_server(&[&["--port", "0"][..], &args].concat());
    let port = backend.port().to_string();
    let (b, backend_b) = http_server(&[&["--port", &port][..], &args].concat());
    assert_eq!(backend, backend_b);

    // Without a header the servers close the connection unanswered.
    let direct = get([127, 0, 0, 1], backend, "/whoami");
    assert!(direct.is_err(), "{direct:?}");

    let v2 = TcpListener::bind("127.0.0.1:0").unwrap();
    let v1 = TcpListener::bind("127.0.0.1:0").unwrap();
    let (front_v2, front_v1) = (v2.local_addr().unwrap(), v1.local_addr().unwrap());
    let dir = std::env::temp_dir().join(format!("ropewalk-haproxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("haproxy.cfg");
    let log = dir.join("haproxy.log");
    {
        use std::os::fd::AsRawFd;
        std::fs::write(&cfg, config(v2.as_raw_fd(), v1.as_raw_fd(), backend)).unwrap();
    }
    let proxy = start_haproxy(&program, &cfg, &log, &[&v2, &v1]);
    let haproxy_log = || std::fs::read_to_string(log.with_extension("err")).unwrap_or_default();

    // v1: the client address arrives.
    let (status, body) = get([127, 0, 0, 2], front_v1, "/whoami")
        .unwrap_or_else(|e| panic!("{e}\nhaproxy:\n{}", haproxy_log()));
    assert_eq!(status, 200, "{body}");
    assert_eq!(whoami(&body).0, "127.0.0.2", "{body}");

    // v2, from four clients at once, one of them always in a slow request, until the
    // drained process has exited and 80 requests have been answered since.
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Reply>();
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (stop, tx) = (stop.clone(), tx.clone());
            std::thread::spawn(move || {
                let path = if i == 0 { "/delay?ms=50" } else { "/whoami" };
                while !stop.load(Ordering::Relaxed) {
                    let got = get([127, 0, 0, 2], front_v2, path);
                    if tx.send((i, path, got)).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let (pid_a, pid_b) = (a.pid(), b.pid());
    let mut tally = Tally::default();
    let next = |rx: &mpsc::Receiver<Reply>| {
        rx.recv_timeout(BOUND)
            .unwrap_or_else(|_| panic!("no response within {BOUND:?}\nhaproxy:\n{}", haproxy_log()))
    };

    // Both processes serve.
    while tally.record(next(&rx)) < 60 {}
    let started = Instant::now();
    while !(tally.served(pid_a) > 0 && tally.served(pid_b) > 0) && started.elapsed() < BOUND {
        tally.record(next(&rx));
    }
    assert!(
        tally.served(pid_a) > 0 && tally.served(pid_b) > 0,
        "both processes serve: {:?} (a {pid_a}, b {pid_b})",
        tally.served_by
    );

    // Drain one, with slow requests in flight on both (sixteen, spread by the kernel),
    // while the stream goes on. Those on the drained process are answered by it.
    let slow: Vec<TcpStream> = (0..16)
        .map(|_| send([127, 0, 0, 2], front_v2, "/whoami?ms=500").unwrap())
        .collect();
    // Once a request sent after them is answered, HAProxy has passed them on.
    let probe = get([127, 0, 0, 2], front_v2, "/whoami");
    assert!(matches!(probe, Ok((200, _))), "{probe:?}");
    a.signal_term();
    let mut slow_by = std::collections::HashMap::<u32, usize>::new();
    for s in slow {
        match response(s) {
            Ok((200, body)) => {
                let (client, pid) = whoami(&body);
                assert_eq!(client, "127.0.0.2", "{body}");
                *slow_by.entry(pid).or_default() += 1;
            }
            other => tally.failures.push(format!("slow request: {other:?}")),
        }
    }
    let status = a.wait();
    assert!(status.success(), "the drained server exits 0: {status}");
    assert!(
        slow_by.contains_key(&pid_a),
        "the draining process answered its requests in flight: {slow_by:?} (a {pid_a})"
    );
    // What the clients had done by now; then 80 requests more, after the exit.
    while let Ok(r) = rx.try_recv() {
        tally.record(r);
    }
    let at_exit = tally.total;
    let (a_at_exit, b_at_exit) = (tally.served(pid_a), tally.served(pid_b));
    while tally.record(next(&rx)) < at_exit + 80 {}
    stop.store(true, Ordering::Relaxed);
    for r in rx.iter() {
        tally.record(r);
    }
    for c in clients {
        c.join().unwrap();
    }
    assert!(
        tally.served(pid_a) == a_at_exit && tally.served(pid_b) > b_at_exit,
        "the other process serves on alone: {:?}",
        tally.served_by
    );
    assert!(
        tally.failures.is_empty(),
        "{} of {} requests failed:\n{}\nhaproxy:\n{}",
        tally.failures.len(),
        tally.total,
        tally.failures.join("\n"),
        haproxy_log()
    );

    drop(proxy);
    assert!(b.terminate().success());
    let _ = std::fs::remove_dir_all(&dir);
}
