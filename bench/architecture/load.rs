//! The architecture experiment's load generator: open-loop Poisson arrivals at a target
//! rate over K connections, each request's latency measured from the time it was
//! *scheduled* to be sent (so a server that falls behind is charged for the requests it
//! delays, not only the ones it answers: no coordinated omission, as in wrk2).
//!
//! ```sh
//! architecture_load --addr 127.0.0.1:PORT --connections 64 --rate 10000 --dist exp:50
//! architecture_load --addr 127.0.0.1:PORT --rate 0    # closed loop: the server's capacity
//! ```
//!
//! Two threads. The sender draws the arrivals (exponential gaps at `--rate`), sleeps
//! until each one's time (timer slack set to 1 ns), and writes a request to a connection
//! picked at random; the request carries its scheduled time and its job, drawn from
//! `--dist` (see `ropewalk_bench::jobs`). The receiver waits on all connections with
//! `epoll` and takes the latency of each reply from the scheduled time it carries. With
//! `--rate 0` the load is closed instead: one request in flight per connection, the next
//! sent as soon as the reply arrives (this measures capacity, not latency).
//!
//! Requests scheduled within the measured window (after `--warmup-ms`, for
//! `--duration-ms`) count; after the window the receiver waits up to `--drain-ms` for
//! their replies, and a request still unanswered then counts as slower than any answered
//! one. JSON lines on stdout: `connected`, `start` and `end` (the window, so the driver
//! can read the server's CPU time), then `result`.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ropewalk_bench::jobs::{Dist, Request, Rng, WIRE_LEN};

const USAGE: &str = "\
usage: architecture_load --addr IP:PORT [options]

  --connections K    connections (default 64)
  --rate R           requests per second, Poisson arrivals (default 1000);
                     0: closed loop, one request in flight per connection
  --dist D           job per request: exp:MEAN_US, fixed:US, bimodal:SHORT:LONG:P,
                     sleep:US (default exp:50)
  --duration-ms MS   measured window (default 2000)
  --warmup-ms MS     load before the window (default 500)
  --drain-ms MS      longest wait for the window's replies after it (default 2000)
  --seed S           seed of arrivals, connections and jobs (default 1)
Prints JSON lines (connected, start, end, result).";

struct Args {
    addr: SocketAddr,
    connections: usize,
    rate: f64,
    dist: Dist,
    duration: Duration,
    warmup: Duration,
    drain: Duration,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut addr = None;
    let mut a = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        connections: 64,
        rate: 1000.0,
        dist: Dist::Exp(50.0),
        duration: Duration::from_millis(2000),
        warmup: Duration::from_millis(500),
        drain: Duration::from_millis(2000),
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        let ms = |v: String| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|e| format!("{v}: {e}"))
        };
        match arg.as_str() {
            "--addr" => {
                let v = value()?;
                addr = Some(v.parse().map_err(|e| format!("--addr {v}: {e}"))?);
            }
            "--connections" => {
                let v = value()?;
                a.connections = v.parse().map_err(|e| format!("{v}: {e}"))?;
            }
            "--rate" => {
                let v = value()?;
                a.rate = v.parse().map_err(|e| format!("{v}: {e}"))?;
            }
            "--dist" => a.dist = value()?.parse()?,
            "--duration-ms" => a.duration = ms(value()?)?,
            "--warmup-ms" => a.warmup = ms(value()?)?,
            "--drain-ms" => a.drain = ms(value()?)?,
            "--seed" => {
                let v = value()?;
                a.seed = v.parse().map_err(|e| format!("{v}: {e}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    a.addr = addr.ok_or("--addr is required")?;
    if a.connections == 0 || a.rate.is_nan() || a.rate < 0.0 {
        return Err("--connections must be at least 1 and --rate not negative".into());
    }
    Ok(a)
}

/// Writes all of `buf` to a non-blocking socket, waiting (up to 10 s) while it is full.
fn write_fully(s: &TcpStream, mut buf: &[u8]) -> std::io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !buf.is_empty() {
        match (&*s).write(buf) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err(ErrorKind::TimedOut.into());
                }
                let mut p = libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one live pollfd.
                unsafe { libc::poll(&mut p, 1, 100) };
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What the sender and the receiver share.
struct Shared {
    t0: Instant,
    /// The window, ns since `t0`.
    win: (u64, u64),
    /// Requests of the window sent so far (final once `sent_all`).
    sent_in_window: AtomicU64,
    /// Requests sent in all.
    sent: AtomicU64,
    sent_all: AtomicBool,
    /// Closed loop: stop sending new requests.
    stop: AtomicBool,
    /// Replies received while the window was open (by arrival time).
    received_in_window: AtomicU64,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    fn in_window(&self, ns: u64) -> bool {
        ns >= self.win.0 && ns < self.win.1
    }
}

/// The receiver's findings.
#[derive(Default)]
struct Received {
    /// Latencies of the window's requests, ns.
    lat: Vec<u64>,
    /// Window requests answered, by worker index.
    workers: BTreeMap<u16, u64>,
    error: Option<String>,
}

fn receive(
    streams: Vec<Arc<TcpStream>>,
    shared: Arc<Shared>,
    closed: Option<(Dist, u64)>,
    drain: Duration,
) -> Received {
    let mut out = Received::default();
    // SAFETY: epoll_create1 with a valid flag.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    for (i, s) in streams.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: a live epoll descriptor, socket and event.
        unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) };
    }
    let mut rng = closed.map(|(_, seed)| Rng::new(seed ^ 0x00c1_05ed));
    let mut partial: Vec<Vec<u8>> = vec![Vec::new(); streams.len()];
    let mut buf = vec![0u8; 64 << 10];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut received = 0u64;
    let mut drain_until: Option<Instant> = None;
    loop {
        if shared.sent_all.load(Ordering::Acquire) {
            if received >= shared.sent.load(Ordering::Acquire) {
                break;
            }
            let until = *drain_until.get_or_insert_with(|| Instant::now() + drain);
            if Instant::now() >= until {
                break;
            }
        }
        // SAFETY: a buffer of `events.len()` events.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 10) };
        for ev in events.iter().take(n.max(0) as usize) {
            let i = ev.u64 as usize;
            let s = &streams[i];
            loop {
                match (&**s).read(&mut buf) {
                    Ok(0) => {
                        out.error
                            .get_or_insert_with(|| "the server closed a connection".into());
                        // SAFETY: removes a registered descriptor.
                        unsafe {
                            libc::epoll_ctl(
                                ep,
                                libc::EPOLL_CTL_DEL,
                                s.as_raw_fd(),
                                std::ptr::null_mut(),
                            )
                        };
                        break;
                    }
                    Ok(k) => {
                        let now = shared.now_ns();
                        let p = &mut partial[i];
                        p.extend_from_slice(&buf[..k]);
                        let whole = p.len() / WIRE_LEN * WIRE_LEN;
                        for c in p[..whole].chunks_exact(WIRE_LEN) {
                            let r = Request::decode(c.try_into().expect("16 bytes"));
                            received += 1;
                            if shared.in_window(now) {
                                shared.received_in_window.fetch_add(1, Ordering::Relaxed);
                            }
                            if shared.in_window(r.sched_ns) {
                                out.lat.push(now.saturating_sub(r.sched_ns));
                                *out.workers.entry(r.worker).or_default() += 1;
                            }
                            if let (Some((dist, _)), Some(rng)) = (closed, rng.as_mut()) {
                                if !shared.stop.load(Ordering::Relaxed) {
                                    let sched = shared.now_ns();
                                    let req = Request {
                                        sched_ns: sched,
                                        job_ns: (dist.sample(rng) * 1000.0) as u32,
                                        kind: dist.kind(),
                                        worker: 0,
                                    };
                                    if shared.in_window(sched) {
                                        shared.sent_in_window.fetch_add(1, Ordering::Relaxed);
                                    }
                                    shared.sent.fetch_add(1, Ordering::Release);
                                    if let Err(e) = write_fully(s, &req.encode()) {
                                        out.error.get_or_insert(e.to_string());
                                    }
                                }
                            }
                        }
                        p.drain(..whole);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        out.error.get_or_insert(e.to_string());
                        // SAFETY: removes a registered descriptor.
                        unsafe {
                            libc::epoll_ctl(
                                ep,
                                libc::EPOLL_CTL_DEL,
                                s.as_raw_fd(),
                                std::ptr::null_mut(),
                            )
                        };
                        break;
                    }
                }
            }
        }
    }
    // SAFETY: closes the descriptor made above.
    unsafe { libc::close(ep) };
    out
}

/// This process's CPU time, seconds.
fn own_cpu() -> f64 {
    ropewalk_bench::procs::cpu_seconds(std::process::id()).unwrap_or(f64::NAN)
}

fn sleep_until(t0: Instant, ns: u64) {
    let target = t0 + Duration::from_nanos(ns);
    let now = Instant::now();
    if target > now {
        std::thread::sleep(target - now);
    }
}

fn run(args: Args) -> Result<(), String> {
    // Sleep as exactly as the kernel can: the default slack is 50 µs.
    // SAFETY: prctl with an integer argument.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let mut streams = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let s = TcpStream::connect_timeout(&args.addr, Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        streams.push(Arc::new(s));
    }
    println!(
        "{{\"kind\": \"connected\", \"connections\": {}}}",
        streams.len()
    );
    let warm = args.warmup.as_nanos() as u64;
    let end = warm + args.duration.as_nanos() as u64;
    let shared = Arc::new(Shared {
        t0: Instant::now(),
        win: (warm, end),
        sent_in_window: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        sent_all: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        received_in_window: AtomicU64::new(0),
    });
    let closed = (args.rate == 0.0).then_some((args.dist, args.seed));
    let receiver = {
        let (streams, shared, drain) = (streams.clone(), shared.clone(), args.drain);
        std::thread::spawn(move || receive(streams, shared, closed, drain))
    };
    let mut rng = Rng::new(args.seed);
    let mut late: Vec<u64> = Vec::new();
    let mut cpu = (f64::NAN, f64::NAN);
    let mut started = false;
    let mut send_error = None;
    let send = |s: &TcpStream, sched: u64, rng: &mut Rng| {
        let req = Request {
            sched_ns: sched,
            job_ns: (args.dist.sample(rng) * 1000.0).min(f64::from(u32::MAX)) as u32,
            kind: args.dist.kind(),
            worker: 0,
        };
        if shared.in_window(sched) {
            shared.sent_in_window.fetch_add(1, Ordering::Relaxed);
        }
        shared.sent.fetch_add(1, Ordering::Release);
        write_fully(s, &req.encode())
    };
    if closed.is_some() {
        for s in &streams {
            send(s, shared.now_ns(), &mut rng).map_err(|e| format!("send: {e}"))?;
        }
        sleep_until(shared.t0, warm);
        println!("{{\"kind\": \"start\"}}");
        cpu.0 = own_cpu();
        sleep_until(shared.t0, end);
        shared.stop.store(true, Ordering::Relaxed);
        cpu.1 = own_cpu();
        println!("{{\"kind\": \"end\"}}");
    } else {
        let gap_ns = 1e9 / args.rate;
        let mut t = 0.0f64;
        loop {
            t += rng.exp(gap_ns);
            let sched = t as u64;
            if !started && sched >= warm {
                started = true;
                println!("{{\"kind\": \"start\"}}");
                cpu.0 = own_cpu();
            }
            if sched >= end {
                break;
            }
            sleep_until(shared.t0, sched);
            let conn = rng.below(streams.len());
            if let Err(e) = send(&streams[conn], sched, &mut rng) {
                send_error = Some(e.to_string());
                break;
            }
            if shared.in_window(sched) {
                late.push(shared.now_ns().saturating_sub(sched));
            }
        }
        sleep_until(shared.t0, end);
        cpu.1 = own_cpu();
        if !started {
            println!("{{\"kind\": \"start\"}}");
        }
        println!("{{\"kind\": \"end\"}}");
    }
    shared.sent_all.store(true, Ordering::Release);
    let mut got = receiver.join().map_err(|_| "the receiver panicked")?;
    if let Some(e) = send_error.or(got.error.take()) {
        return Err(e);
    }
    let window_s = args.duration.as_secs_f64();
    let sent = shared.sent_in_window.load(Ordering::Relaxed);
    let answered = got.lat.len() as u64;
    got.lat.sort_unstable();
    late.sort_unstable();
    // Unanswered requests count as slower than any answer: -1 marks a percentile among them.
    let pct = |v: &[u64], total: u64, p: f64| -> f64 {
        if total == 0 {
            return f64::NAN;
        }
        let i = ((total as f64 - 1.0) * p).round() as usize;
        v.get(i).map_or(-1.0, |&ns| ns as f64 / 1000.0)
    };
    let workers: Vec<String> = got
        .workers
        .iter()
        .map(|(w, n)| format!("{w}:{n}"))
        .collect();
    // JSON has no NaN: a figure that does not exist is the string "nan".
    let j = |x: f64| {
        if x.is_finite() {
            format!("{x:.1}")
        } else {
            "\"nan\"".to_string()
        }
    };
    println!(
        "{{\"kind\": \"result\", \"connections\": {}, \"offered_rps\": {}, \"sent\": {sent}, \
         \"answered\": {answered}, \"unanswered\": {}, \"rps\": {}, \"p50_us\": {}, \
         \"p99_us\": {}, \"p999_us\": {}, \"max_us\": {}, \"mean_us\": {}, \
         \"late_p50_us\": {}, \"late_p99_us\": {}, \"client_cpu_s\": {}, \
         \"workers\": \"{}\"}}",
        args.connections,
        j(args.rate),
        sent.saturating_sub(answered),
        j(shared.received_in_window.load(Ordering::Relaxed) as f64 / window_s),
        j(pct(&got.lat, sent, 0.5)),
        j(pct(&got.lat, sent, 0.99)),
        j(pct(&got.lat, sent, 0.999)),
        j(got.lat.last().map_or(f64::NAN, |&x| x as f64 / 1000.0)),
        j(got.lat.iter().sum::<u64>() as f64 / answered.max(1) as f64 / 1000.0),
        j(pct(&late, late.len() as u64, 0.5)),
        j(pct(&late, late.len() as u64, 0.99)),
        j(cpu.1 - cpu.0),
        workers.join(","),
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("architecture_load: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!(
                "{{\"kind\": \"error\", \"error\": \"{}\"}}",
                e.replace('"', "'")
            );
            eprintln!("architecture_load: {e}");
            ExitCode::FAILURE
        }
    }
}
