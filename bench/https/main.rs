//! The HTTPS benchmark's driver: ropewalk's `HttpServer` over its TLS and hyper over
//! tokio-rustls, both one thread and one rustls `ServerConfig` (`https_server`), under the
//! same load from this process, one after the other in the same run.
//!
//! ```sh
//! cd bench && cargo build --release --bins && target/release/https
//! target/release/https --help
//! ```
//!
//! wrk is not used: it is not installed everywhere, and its TLS (OpenSSL, sessions
//! resumed) is not a full handshake per connection. The load is a rustls client here, on
//! blocking sockets, one thread per connection:
//!
//! 1. **keep-alive**: `--connections` TLS connections, each sending `GET /` and reading
//!    the answer in a loop; after `--warmup` seconds the server's CPU time (utime + stime
//!    from `/proc/PID/stat`) is read, then again after `--duration` seconds → requests
//!    per second and server CPU µs per request;
//! 2. **handshakes**: `--handshake-threads` threads, each opening a new connection per
//!    request (TCP connect, a full TLS 1.3 handshake: the client resumes nothing,
//!    `GET /` with `Connection: close`, read to the end) → handshakes (= requests) per
//!    second and server CPU µs per handshake;
//! 3. **memory per idle TLS connection**: `--idle` connections, each answered one `GET /`
//!    and held open: (VmRSS after − VmRSS before) / N.
//!
//! With `--syscall S` (default 2; 0 skips it), each scenario also runs once more per round
//! on a fresh server, with `perf stat -p PID` on the syscall tracepoints around an `S`
//! second window after the warm-up (as the HTTP benchmark does) → syscalls per request,
//! by call.
//!
//! The certificate is an ECDSA P-256 leaf of a CA made at start (`ropewalk_testkit::pki`).
//! Every step is bounded in time; only 127.0.0.1 is used. See `bench/README.md`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ropewalk_bench::procs::{
    cpu_split, idle_memory_table, perf_works, rss_kib, signal, IdleMemory, Server,
};
use ropewalk_bench::report::{self, median_of as median, Table};
use ropewalk_bench::syscalls::{self, Syscalls};
use ropewalk_reactor::tls::rustls::client::Resumption;
use ropewalk_reactor::tls::rustls::pki_types::ServerName;
use ropewalk_reactor::tls::rustls::{ClientConfig, ClientConnection, StreamOwned};
use ropewalk_reactor::tls::TlsClientBuilder;
use ropewalk_testkit::pki::TestCa;

const USAGE: &str = "\
usage: https [options]

  --servers LIST          comma-separated: ropewalk,hyper (default both)
  --scenarios LIST        comma-separated: keepalive,handshakes (default both)
  --connections N         keep-alive connections, one client thread each (default 16)
  --handshake-threads N   client threads opening a connection per request (default 4)
  --duration S            measured run per scenario, seconds (default 4)
  --warmup S              load before it, seconds (default 1)
  --repeat N              run everything N times, servers alternating; report medians
                          (default 1)
  --idle N                idle TLS connections for the memory table (default 1000; 0
                          skips it)
  --syscall S             count the server's syscalls with perf in another S-second run
                          per scenario and round (default 2; 0 skips it)
  -h, --help              this text
The binary https_server must sit next to this one.";

struct Args {
    servers: Vec<String>,
    scenarios: Vec<Scenario>,
    connections: usize,
    handshake_threads: usize,
    duration: u64,
    warmup: u64,
    repeat: usize,
    idle: usize,
    syscall: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        servers: vec!["ropewalk".into(), "hyper".into()],
        scenarios: vec![Scenario::KeepAlive, Scenario::Handshakes],
        connections: 16,
        handshake_threads: 4,
        duration: 4,
        warmup: 1,
        repeat: 1,
        idle: 1000,
        syscall: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{v}: {e}"));
        match arg.as_str() {
            "--servers" => a.servers = value()?.split(',').map(str::to_string).collect(),
            "--scenarios" => {
                a.scenarios = value()?
                    .split(',')
                    .map(|v| match v {
                        "keepalive" => Ok(Scenario::KeepAlive),
                        "handshakes" => Ok(Scenario::Handshakes),
                        other => Err(format!("unknown scenario {other}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--connections" => a.connections = (num(value()?)? as usize).max(1),
            "--handshake-threads" => a.handshake_threads = (num(value()?)? as usize).max(1),
            "--duration" => a.duration = num(value()?)?.max(1),
            "--warmup" => a.warmup = num(value()?)?,
            "--repeat" => a.repeat = (num(value()?)? as usize).max(1),
            "--idle" => a.idle = num(value()?)? as usize,
            "--syscall" => a.syscall = num(value()?)?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    for s in &a.servers {
        if !["ropewalk", "hyper"].contains(&s.as_str()) {
            return Err(format!("unknown server {s}"));
        }
    }
    Ok(a)
}

/// The server binary and the certificate files it serves.
struct Setup {
    server: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    /// Trusts the test CA; resumes nothing, so every connection is a full handshake.
    client: Arc<ClientConfig>,
}

fn start_server(name: &str, setup: &Setup) -> Result<Server, String> {
    let mut cmd = Command::new(&setup.server);
    cmd.args(["--impl", name]).arg("--cert").arg(&setup.cert);
    cmd.arg("--key").arg(&setup.key);
    Server::start(name, cmd)
}

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
const CLOSE_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
const BODY: &[u8] = b"Hello, World!";

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection to `addr`, its handshake done.
fn connect(setup: &Setup, addr: &str) -> Result<Tls, String> {
    let sock = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").expect("a DNS name");
    let conn = ClientConnection::new(setup.client.clone(), name).map_err(|e| e.to_string())?;
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    Ok(tls)
}

/// Sends `GET /` on `tls` and reads the answer (every answer ends with the body).
fn get(tls: &mut Tls, buf: &mut [u8]) -> Result<(), String> {
    tls.write_all(REQUEST).map_err(|e| format!("write: {e}"))?;
    let mut tail: Vec<u8> = Vec::with_capacity(256);
    while !tail.ends_with(BODY) {
        let k = tls.read(buf).map_err(|e| format!("read: {e}"))?;
        if k == 0 {
            return Err("closed before the answer".into());
        }
        tail.extend_from_slice(&buf[..k]);
    }
    Ok(())
}

/// One connection per request: connect, handshake, `GET /` with `Connection: close`,
/// read to the end.
fn one_shot(setup: &Setup, addr: &str, buf: &mut [u8]) -> Result<(), String> {
    let mut tls = connect(setup, addr)?;
    tls.write_all(CLOSE_REQUEST)
        .map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::with_capacity(256);
    loop {
        match tls.read(buf) {
            Ok(0) => break,
            Ok(k) => got.extend_from_slice(&buf[..k]),
            // A server that closes without close_notify after the whole answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    if got.ends_with(BODY) {
        Ok(())
    } else {
        Err("incomplete answer".into())
    }
}

/// One measurement: requests per second and the server's CPU per request.
#[derive(Debug, Clone, Copy)]
struct Run {
    rps: f64,
    cpu_us: f64,
    user_us: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scenario {
    KeepAlive,
    Handshakes,
}

impl Scenario {
    fn name(self, args: &Args) -> String {
        match self {
            Scenario::KeepAlive => format!("keep-alive GET /, {} conns", args.connections),
            Scenario::Handshakes => format!(
                "full handshake per request, {} client threads",
                args.handshake_threads
            ),
        }
    }
}

/// What a run measures in its window: the server's CPU time, or its syscalls (with perf,
/// whose tracing slows the server: never both in one run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    Cpu,
    Syscalls,
}

/// What one run gave: its CPU figures, or its syscall counts.
enum Measured {
    Cpu(Run),
    Syscalls(Syscalls),
}

/// Runs `sc` against a fresh server: `threads` client threads loop until told to stop;
/// requests are counted between the end of the warm-up and the end of the run.
fn measure(
    name: &str,
    setup: &Arc<Setup>,
    sc: Scenario,
    args: &Args,
    window: Window,
) -> Result<Measured, String> {
    let server = start_server(name, setup)?;
    let threads = match sc {
        Scenario::KeepAlive => args.connections,
        Scenario::Handshakes => args.handshake_threads,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let paused = Arc::new(AtomicBool::new(false));
    let counting = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..threads {
        let (setup, addr) = (setup.clone(), server.addr.clone());
        let (stop, counting, done) = (stop.clone(), counting.clone(), done.clone());
        let paused = paused.clone();
        workers.push(std::thread::spawn(move || -> Result<(), String> {
            let mut buf = vec![0u8; 16 * 1024];
            let mut tls = match sc {
                Scenario::KeepAlive => Some(connect(&setup, &addr)?),
                Scenario::Handshakes => None,
            };
            while !stop.load(Ordering::Relaxed) {
                if paused.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                match tls.as_mut() {
                    Some(t) => get(t, &mut buf)?,
                    None => one_shot(&setup, &addr, &mut buf)?,
                }
                if counting.load(Ordering::Relaxed) {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        }));
    }
    std::thread::sleep(Duration::from_secs(args.warmup));
    let out = std::env::temp_dir().join(format!("ropewalk-https-{}.txt", std::process::id()));
    let mut tracer = None;
    if window == Window::Syscalls {
        // No load while perf attaches: it counts the window's requests and little else.
        paused.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(100));
        tracer = Some(
            Command::new("perf")
                .args(syscalls::perf_args(server.pid(), &out))
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start perf: {e}"))?,
        );
        std::thread::sleep(Duration::from_millis(500));
        paused.store(false, Ordering::Relaxed);
    }
    let seconds = match window {
        Window::Cpu => args.duration,
        Window::Syscalls => args.syscall,
    };
    let (u0, s0) = cpu_split(server.pid()).ok_or("cannot read the server's CPU time")?;
    let t0 = Instant::now();
    counting.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(seconds));
    counting.store(false, Ordering::Relaxed);
    let (u1, s1) = cpu_split(server.pid()).ok_or("cannot read the server's CPU time")?;
    let wall = t0.elapsed().as_secs_f64();
    if let Some(mut t) = tracer {
        // The requests in flight finish uncounted (≤ one per client thread).
        paused.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(100));
        signal(t.id(), libc::SIGINT);
        let _ = t.wait();
    }
    stop.store(true, Ordering::Relaxed);
    let mut failure = None;
    for w in workers {
        match w.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some("a client thread panicked".into()),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let n = done.load(Ordering::Relaxed) as f64;
    if n <= 0.0 {
        return Err("no request completed".into());
    }
    if window == Window::Syscalls {
        let text = std::fs::read_to_string(&out).map_err(|e| format!("no syscall counts: {e}"))?;
        let _ = std::fs::remove_file(&out);
        let mut s = syscalls::parse_perf(&text);
        s.served = n;
        if s.total <= 0.0 {
            return Err("no syscalls counted (perf)".into());
        }
        return Ok(Measured::Syscalls(s));
    }
    Ok(Measured::Cpu(Run {
        rps: n / wall,
        cpu_us: (u1 + s1 - u0 - s0) * 1e6 / n,
        user_us: (u1 - u0) * 1e6 / n,
    }))
}

/// `n` TLS connections to a fresh server, each answered one `GET /` and held open; the
/// server's VmRSS before and after.
fn memory(server: &Server, setup: &Setup, n: usize) -> Result<IdleMemory, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib(server.pid()).ok_or("cannot read VmRSS")?;
    let mut open = Vec::with_capacity(n);
    let mut buf = vec![0u8; 16 * 1024];
    for i in 0..n {
        if Instant::now() > deadline {
            return Err(format!("only {i} of {n} connections answered in 60 s"));
        }
        let mut tls = connect(setup, &server.addr).map_err(|e| format!("connection {i}: {e}"))?;
        get(&mut tls, &mut buf).map_err(|e| format!("connection {i}: {e}"))?;
        open.push(tls);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(server.pid()).ok_or("cannot read VmRSS")?;
    drop(open);
    Ok(IdleMemory::new(before, after, n))
}

/// The verdict of a row against the targets: keep-alive ≥ 1.0× hyper's req/s at ≤ 0.9×
/// its CPU per request; handshakes ≥ 1.0× hyper's per second.
fn verdict(sc: Scenario, rps_ratio: f64, cpu_ratio: f64) -> &'static str {
    let met = match sc {
        Scenario::KeepAlive => rps_ratio >= 1.0 && cpu_ratio <= 0.9,
        Scenario::Handshakes => rps_ratio >= 1.0,
    };
    if met {
        "met"
    } else {
        "missed"
    }
}

fn setup() -> Result<Setup, String> {
    let Some([server]) =
        ropewalk_bench::procs::sibling_bins("https", "run-all.sh", ["https_server"])
    else {
        return Err("https_server is missing".into());
    };
    let ca = TestCa::new();
    let leaf = ca.leaf(&["localhost"]);
    let dir = std::env::temp_dir().join(format!("ropewalk-https-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (cert, key) = leaf.write_to(&dir).map_err(|e| e.to_string())?;
    let built = TlsClientBuilder::new()
        .without_default_roots()
        .add_root_pem(ca.pem().as_bytes())
        .and_then(TlsClientBuilder::build)
        .map_err(|e| e.to_string())?;
    let mut client = ClientConfig::clone(&built);
    client.resumption = Resumption::disabled();
    Ok(Setup {
        server,
        cert,
        key,
        client: Arc::new(client),
    })
}

fn main() -> ExitCode {
    let args = match ropewalk_bench::cli::or_usage("https", USAGE, parse_args()) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let setup = match setup() {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("https: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut notes: Vec<String> = Vec::new();
    let count_syscalls = args.syscall > 0 && perf_works();
    if args.syscall > 0 && !count_syscalls {
        notes.push("perf cannot count syscall tracepoints here: no syscall columns".into());
    }
    let scenarios = args.scenarios.clone();
    // By scenario and server: each round's run.
    let mut runs: BTreeMap<(Scenario, String), BTreeMap<usize, Run>> = BTreeMap::new();
    let mut sys: BTreeMap<(Scenario, String), Vec<Syscalls>> = BTreeMap::new();
    for round in 1..=args.repeat {
        for &sc in &scenarios {
            // The servers take turns going first, so that neither always runs second.
            let mut order = args.servers.clone();
            let n = order.len();
            order.rotate_left((round - 1) % n);
            for name in &order {
                let label = sc.name(&args);
                eprintln!("https: [{round}/{}] {name}, {label}", args.repeat);
                match measure(name, &setup, sc, &args, Window::Cpu) {
                    Ok(Measured::Cpu(r)) => {
                        runs.entry((sc, name.clone())).or_default().insert(round, r);
                    }
                    Ok(Measured::Syscalls(_)) => {}
                    Err(e) => notes.push(format!("{name}, {label}, round {round}: {e}")),
                }
                if !count_syscalls {
                    continue;
                }
                eprintln!("https: [{round}/{}] {name}, {label}: syscalls", args.repeat);
                match measure(name, &setup, sc, &args, Window::Syscalls) {
                    Ok(Measured::Syscalls(s)) => sys.entry((sc, name.clone())).or_default().push(s),
                    Ok(Measured::Cpu(_)) => {}
                    Err(e) => notes.push(format!("{name}, {label}, syscalls, round {round}: {e}")),
                }
            }
        }
    }

    let med = |sc: Scenario, name: &str, f: fn(&Run) -> f64| -> f64 {
        runs.get(&(sc, name.to_string()))
            .map_or(f64::NAN, |v| median(v.values().map(f).collect()))
    };
    // The median of the rounds' ratios to hyper (the two runs of a round are seconds apart).
    let ratio = |sc: Scenario, name: &str, f: fn(&Run) -> f64| -> f64 {
        let (Some(ours), Some(base)) = (
            runs.get(&(sc, name.to_string())),
            runs.get(&(sc, "hyper".to_string())),
        ) else {
            return f64::NAN;
        };
        let per_round: Vec<f64> = ours
            .iter()
            .filter_map(|(round, r)| base.get(round).map(|b| f(r) / f(b)))
            .collect();
        if per_round.is_empty() {
            f64::NAN
        } else {
            median(per_round)
        }
    };
    // The run with the median total: its calls are one run's, consistent with each other.
    let sys_of = |sc: Scenario, name: &str| -> Option<Syscalls> {
        let mut v = sys.get(&(sc, name.to_string()))?.clone();
        v.sort_by(|a, b| a.total_per_op().total_cmp(&b.total_per_op()));
        v.get(v.len() / 2).cloned()
    };
    println!("## HTTPS: ropewalk vs hyper + tokio-rustls (one thread each, rustls 0.23, ring)\n");
    let mut t = Table::new([
        "scenario",
        "server",
        "req/s",
        "server CPU µs/req",
        "of which user µs",
        "syscalls/req",
        "req/s vs hyper",
        "CPU vs hyper",
        "syscalls vs hyper",
        "target",
    ]);
    for &sc in &scenarios {
        let base_sys = sys_of(sc, "hyper").map(|s| s.total_per_op());
        for name in &args.servers {
            let (rps, cpu) = (med(sc, name, |r| r.rps), med(sc, name, |r| r.cpu_us));
            if !rps.is_finite() {
                continue;
            }
            let (rps_ratio, cpu_ratio) =
                (ratio(sc, name, |r| r.rps), ratio(sc, name, |r| r.cpu_us));
            let calls = sys_of(sc, name).map(|s| s.total_per_op());
            t.row([
                sc.name(&args),
                name.clone(),
                report::group(rps.round() as u64),
                report::num(cpu, 1),
                report::num(med(sc, name, |r| r.user_us), 1),
                calls.map_or("-".to_string(), |c| report::num(c, 2)),
                report::ratio2(rps_ratio),
                report::ratio2(cpu_ratio),
                match (calls, base_sys) {
                    (Some(c), Some(b)) => report::ratio2(c / b),
                    _ => "-".to_string(),
                },
                if name == "hyper" || !rps_ratio.is_finite() {
                    "-".to_string()
                } else {
                    verdict(sc, rps_ratio, cpu_ratio).to_string()
                },
            ]);
        }
    }
    println!("{t}");
    println!(
        "Targets: keep-alive ≥ 1.00× hyper's req/s at ≤ 0.90× its CPU per request; full \
         handshakes ≥ 1.00× hyper's per second. Figures are medians of {} round(s); the \
         ratios, medians of the rounds' ratios (the servers take turns going first). The \
         load client runs in this process, on the same machine.\n",
        args.repeat
    );
    if !sys.is_empty() {
        const CALLS: &[&str] = &[
            "epoll_ctl",
            "recvfrom",
            "recvfrom!fail",
            "sendto",
            "writev",
            "read",
            "write",
            "accept4",
            "close",
            "timerfd_settime",
        ];
        let mut b = Table::new(
            ["server".to_string(), "scenario".to_string()]
                .into_iter()
                .chain(syscalls::breakdown_headers("req", CALLS)),
        );
        for &sc in &scenarios {
            for name in &args.servers {
                if let Some(s) = sys_of(sc, name) {
                    b.row(
                        [name.clone(), sc.name(&args)]
                            .into_iter()
                            .chain(syscalls::breakdown_row(&s, CALLS)),
                    );
                }
            }
        }
        println!("## Syscalls per request, by call\n\n{b}");
        println!(
            "Counted by perf stat on the syscall tracepoints in a separate {} s window per \
             scenario and round (after the warm-up, on a fresh server), ÷ the requests \
             completed in it; the run with the median total.\n",
            args.syscall
        );
    }

    if args.idle > 0 {
        let mut mem: BTreeMap<String, IdleMemory> = BTreeMap::new();
        for name in &args.servers {
            eprintln!("https: {name}: {} idle TLS connections", args.idle);
            match start_server(name, &setup).and_then(|srv| memory(&srv, &setup, args.idle)) {
                Ok(m) => {
                    mem.insert(name.clone(), m);
                }
                Err(e) => notes.push(format!("{name}, idle memory: {e}")),
            }
        }
        println!("## Memory per idle TLS connection (server VmRSS)\n");
        println!(
            "{}",
            idle_memory_table(&mem, &args.servers, args.idle, "hyper")
        );
    }
    for n in &notes {
        println!("- {n}");
    }
    let _ = std::fs::remove_dir_all(setup.cert.parent().unwrap_or(Path::new("/nonexistent")));
    if notes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
