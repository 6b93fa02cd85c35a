//! The multicore benchmark's driver: the article's multi-core designs side by side, under
//! the same echo load, in one run.
//!
//! ```sh
//! cd bench && ./run-multicore.sh        # builds, then runs this
//! target/release/multicore --help
//! ```
//!
//! Servers (`multicore_server --impl NAME`, see its docs): `one` reactor; `own` (N
//! reactors, an accept queue each, `SO_REUSEPORT`); `shared` (N reactors, one accept
//! queue); `dispatch-rr` and `dispatch-ll` (N reactors, each with its own queue fed by
//! one of them, round-robin or to the least loaded); `two-stage` (one reactor, the job on an N-thread worker pool); `threads`
//! (thread per connection, blocking `std::net`); `tokio-mt` (tokio's multi-thread runtime,
//! N workers): the peer.
//!
//! For each workload (plain echo; echo plus a CPU job of `--work-us` per message), each
//! connection count and each server, on a fresh server process: `echo_load`
//! (`echo/load.rs`, 64-byte ping-pong) connects, warms up, then counts round trips for
//! `--duration-ms`; the server's CPU time (utime + stime, `/proc/PID/stat`) is read at
//! the start and the end of that window. Then, unless `--herd 0`, the accept table:
//! `--herd` connections opened one at a time against `one`, `own`, `shared` and
//! `dispatch-rr`, with the
//! server's `accept4` and `epoll_wait` calls counted by `perf stat` (the thundering herd
//! of a shared queue shows as failed accepts).
//!
//! Only 127.0.0.1 is used; every step is bounded in time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use ropewalk_bench::load::{throughput, Load, Throughput};
use ropewalk_bench::procs::{perf_works, signal, Server};
use ropewalk_bench::report::{self, Table};
use ropewalk_bench::syscalls;
use ropewalk_bench::work;

const ALL: &[&str] = &[
    "one",
    "own",
    "shared",
    "dispatch-rr",
    "dispatch-ll",
    "two-stage",
    "threads",
    "tokio-mt",
];

const USAGE: &str = "\
usage: multicore [options]

  --servers LIST      comma-separated, from: one,own,shared,dispatch-rr,dispatch-ll,
                      two-stage,threads,tokio-mt
                      (default: all)
  --threads N         reactors / pool threads / tokio workers (default 2)
  --scenarios LIST    connection counts (default 64,256)
  --work-us US        the CPU job per message of the second workload, in µs
                      (default 10; 0 runs the plain echo only)
  --duration-ms MS    measured load per case (default 2000)
  --warmup-ms MS      load before measuring (default 300)
  --herd N            connections of the accept-queue table (default 2000; 0 skips it)
  -h, --help          this text
The binaries multicore_server and echo_load must sit next to this one.";

struct Args {
    servers: Vec<String>,
    threads: usize,
    scenarios: Vec<usize>,
    work_us: f64,
    duration: Duration,
    warmup: Duration,
    herd: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        servers: ALL.iter().map(|s| s.to_string()).collect(),
        threads: 2,
        scenarios: vec![64, 256],
        work_us: 10.0,
        duration: Duration::from_millis(2000),
        warmup: Duration::from_millis(300),
        herd: 2000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{v}: {e}"));
        match arg.as_str() {
            "--servers" => a.servers = value()?.split(',').map(str::to_string).collect(),
            "--threads" => a.threads = (num(value()?)? as usize).max(1),
            "--scenarios" => {
                a.scenarios = value()?
                    .split(',')
                    .map(|s| s.parse().map_err(|e| format!("{s}: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--work-us" => {
                let v = value()?;
                a.work_us = v.parse().map_err(|e| format!("{v}: {e}"))?;
            }
            "--duration-ms" => a.duration = Duration::from_millis(num(value()?)?),
            "--warmup-ms" => a.warmup = Duration::from_millis(num(value()?)?),
            "--herd" => a.herd = num(value()?)? as usize,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    for s in &a.servers {
        if !ALL.contains(&s.as_str()) {
            return Err(format!("unknown server {s}"));
        }
    }
    Ok(a)
}

struct Paths {
    server: PathBuf,
    load: PathBuf,
}

fn start_server(paths: &Paths, name: &str, threads: usize, rounds: u32) -> Result<Server, String> {
    let mut cmd = Command::new(&paths.server);
    cmd.args(["--impl", name])
        .args(["--threads", &threads.to_string()])
        .args(["--work-rounds", &rounds.to_string()]);
    Server::start(name, cmd)
}

/// Accept-path system calls over a burst of new connections.
#[derive(Debug, Clone, Default)]
struct Accepts {
    conns: f64,
    accept: f64,
    accept_fail: f64,
    waits: f64,
    switches: f64,
    cpu_us: f64,
}

fn accepts(paths: &Paths, server: &Server, n: usize) -> Result<Accepts, String> {
    let out = std::env::temp_dir().join(format!("ropewalk-herd-{}.txt", std::process::id()));
    let mut perf_args = syscalls::perf_args(server.pid(), &out);
    perf_args.extend(
        [
            "-e",
            "syscalls:sys_exit_accept4",
            "--filter",
            "ret < 0",
            "-e",
            "context-switches",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let mut perf = Command::new("perf")
        .args(&perf_args)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start perf: {e}"))?;
    std::thread::sleep(Duration::from_millis(300));
    let cpu0 = ropewalk_bench::procs::cpu_seconds(server.pid());
    // One at a time: every reactor is idle when a connection arrives (the herd's worst case).
    let args = vec![
        "--connections".to_string(),
        n.to_string(),
        "--connect-parallel".into(),
        "1".into(),
        "--idle".into(),
    ];
    let mut load = Load::start(&paths.load, &server.addr, &args, Duration::from_secs(60))?;
    let ready = load.expect("idle_ready");
    let cpu1 = ropewalk_bench::procs::cpu_seconds(server.pid());
    std::thread::sleep(Duration::from_millis(100));
    signal(perf.id(), libc::SIGINT);
    let _ = perf.wait();
    drop(load);
    ready?;
    let text = std::fs::read_to_string(&out).map_err(|e| format!("no perf output: {e}"))?;
    let _ = std::fs::remove_file(&out);
    let s = syscalls::parse_perf(&text);
    let get = |k: &str| s.calls.get(k).copied().unwrap_or(0.0);
    Ok(Accepts {
        conns: n as f64,
        accept: get("accept4"),
        accept_fail: get("accept4!fail"),
        waits: get("epoll_wait") + get("epoll_pwait") + get("epoll_pwait2"),
        // A reactor woken for a connection another one took shows here, and nowhere else:
        // its epoll_wait finds the socket no longer readable and sleeps again in the kernel.
        switches: text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f.len() > 2 && f[2].starts_with("context-switches"))
                    .then(|| f[0].parse::<f64>().ok())?
            })
            .sum(),
        cpu_us: match (cpu0, cpu1) {
            (Some(a), Some(b)) => (b - a) * 1e6,
            _ => f64::NAN,
        },
    })
}

fn main() -> ExitCode {
    let args = match ropewalk_bench::cli::or_usage("multicore", USAGE, parse_args()) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let Some([server, load]) = ropewalk_bench::procs::sibling_bins(
        "multicore",
        "run-multicore.sh",
        ["multicore_server", "echo_load"],
    ) else {
        return ExitCode::FAILURE;
    };
    let paths = Paths { server, load };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rounds = work::rounds_for(args.work_us);
    let mut workloads = vec![("plain echo".to_string(), 0u32)];
    if rounds > 0 {
        workloads.push((format!("echo + {} µs job", args.work_us), rounds));
    }

    let mut notes = Vec::new();
    let mut results: BTreeMap<(usize, usize, String), Throughput> = BTreeMap::new();
    for (w, (wname, r)) in workloads.iter().enumerate() {
        for &conns in &args.scenarios {
            for name in &args.servers {
                eprintln!("multicore: {wname}, {conns} connections, {name}");
                let run = start_server(&paths, name, args.threads, *r).and_then(|srv| {
                    throughput(&paths.load, &srv, conns, args.duration, args.warmup)
                });
                match run {
                    Ok(t) => {
                        results.insert((w, conns, name.clone()), t);
                    }
                    Err(e) => notes.push(format!("{name}, {wname}, {conns} connections: {e}")),
                }
            }
        }
    }

    let vs = |x: f64, base: Option<f64>| match base {
        Some(b) if b > 0.0 && x.is_finite() => report::ratio2(x / b),
        _ => "-".into(),
    };
    let mut t = Table::new([
        "workload",
        "connections",
        "server",
        "round trips/s",
        "vs one reactor",
        "vs tokio-mt",
        "server CPU µs/rt",
        "p50 µs",
        "p99 µs",
        "load gen CPU µs/rt",
    ]);
    for (w, (wname, _)) in workloads.iter().enumerate() {
        for &conns in &args.scenarios {
            let base = |n: &str| results.get(&(w, conns, n.to_string())).map(|t| t.rps);
            for name in &args.servers {
                let th = results
                    .get(&(w, conns, name.clone()))
                    .cloned()
                    .unwrap_or_else(Throughput::missing);
                t.row([
                    wname.clone(),
                    conns.to_string(),
                    name.clone(),
                    report::num(th.rps, 0),
                    vs(th.rps, base("one")),
                    vs(th.rps, base("tokio-mt")),
                    report::num(th.cpu_us_per_rt, 2),
                    report::num(th.p50_us, 0),
                    report::num(th.p99_us, 0),
                    report::num(th.client_cpu_us_per_rt, 2),
                ]);
            }
        }
    }
    println!("{t}");

    if args.herd > 0 {
        if perf_works() {
            let mut h = Table::new([
                "server",
                "new connections",
                "accept4/conn",
                "failed accept4/conn",
                "epoll_wait/conn",
                "context switches/conn",
                "server CPU µs/conn",
            ]);
            for name in ["one", "own", "shared", "dispatch-rr"] {
                eprintln!(
                    "multicore: accept burst of {} connections, {name}",
                    args.herd
                );
                let run = start_server(&paths, name, args.threads, 0)
                    .and_then(|srv| accepts(&paths, &srv, args.herd));
                match run {
                    Ok(a) => h.row([
                        name.to_string(),
                        report::group(a.conns as u64),
                        report::num(a.accept / a.conns, 2),
                        report::num(a.accept_fail / a.conns, 2),
                        report::num(a.waits / a.conns, 2),
                        report::num(a.switches / a.conns, 2),
                        report::num(a.cpu_us / a.conns, 1),
                    ]),
                    Err(e) => notes.push(format!("{name}, accept burst: {e}")),
                }
            }
            println!(
                "Accept path: {} connections opened one at a time (each makes one round trip \
                 before the next connects), the server's syscalls and context switches counted \
                 by perf stat; CPU from /proc in 10 ms ticks:\n\n{h}",
                args.herd
            );
        } else {
            notes.push("perf cannot count syscalls here: no accept table".into());
        }
    }

    println!(
        "N = {} (reactors, pool threads, tokio workers). This machine has {cores} CPU(s); the \
         load generator (echo_load, one tokio current_thread) runs on the same machine and \
         needs about one of them, so N = 2 servers compete with it for the cores: the table \
         shows what each design does with what is left, not how it scales.",
        args.threads
    );
    if rounds > 0 {
        println!(
            "CPU job: {rounds} rounds of FNV-1a over each 64-byte message (~{} µs here), run \
             inline by every server except two-stage, which runs it on the worker pool.",
            args.work_us
        );
    }
    println!(
        "Load: 64 B ping-pong, {} ms warm-up + {} ms measured per case, a fresh server each.",
        args.warmup.as_millis(),
        args.duration.as_millis()
    );
    for n in &notes {
        println!("note: {n}");
    }
    ExitCode::SUCCESS
}
