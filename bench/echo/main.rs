//! The echo benchmark's driver: ropewalk, tokio and Twisted echo servers under the same
//! load generator, one after the other in the same run, and the memory each holds per
//! idle connection.
//!
//! ```sh
//! cd bench && ./run-echo.sh            # builds, then runs this
//! target/release/echo --help
//! ```
//!
//! For each server and scenario (64 and 1000 connections), on a fresh server process:
//!
//! 1. **throughput**: `echo_load` connects, warms up, then counts round trips for
//!    `--duration-ms`; the server's CPU time (utime + stime of `/proc/PID/stat`) is read at
//!    the start and at the end of that window → server CPU µs per round trip;
//! 2. **syscalls**: a second, shorter run with the server's system calls counted by
//!    `perf stat` on the kernel's syscall tracepoints (in-kernel counters: the server runs
//!    at almost full speed, so its batching per `epoll_wait` is the real one), or by
//!    `strace -c -f` (`--strace`, or when perf cannot count) → syscalls per round trip,
//!    and their breakdown.
//!
//! Then, per server, 10,000 idle connections (from one `echo_load --idle` child) and
//! (VmRSS after − VmRSS before) / 10,000.
//!
//! Every step is bounded in time; only 127.0.0.1 is used. See `bench/README.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use ropewalk_bench::load::{throughput, Load, Throughput};
use ropewalk_bench::procs::{idle_memory_table, perf_works, rss_kib, signal, IdleMemory, Server};
use ropewalk_bench::report::{self, Table};
use ropewalk_bench::syscalls::{self, Syscalls};

const USAGE: &str = "\
usage: echo [options]

  --servers LIST      comma-separated: ropewalk,tokio,twisted (default: all three)
  --no-twisted        same as --servers ropewalk,tokio
  --scenarios LIST    connection counts (default 64,1000)
  --duration-ms MS    measured load per scenario (default 3000)
  --warmup-ms MS      load before measuring (default 500)
  --syscall-ms MS     length of the syscall-counting run (default 1500; 0 skips it)
  --strace            count syscalls with strace -c -f instead of perf stat
  --repeat N          run every scenario N times, servers interleaved; report medians
                      (default 1)
  --idle N            idle connections for the memory table (default 10000; 0 skips it)
  -h, --help          this text
The binaries echo_server and echo_load must sit next to this one (cargo build --release).";

struct Args {
    servers: Vec<String>,
    scenarios: Vec<usize>,
    duration: Duration,
    warmup: Duration,
    syscall: Duration,
    strace: bool,
    idle: usize,
    repeat: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        servers: vec!["ropewalk".into(), "tokio".into(), "twisted".into()],
        scenarios: vec![64, 1000],
        duration: Duration::from_millis(3000),
        warmup: Duration::from_millis(500),
        syscall: Duration::from_millis(1500),
        strace: false,
        idle: 10_000,
        repeat: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{v}: {e}"));
        match arg.as_str() {
            "--servers" => a.servers = value()?.split(',').map(str::to_string).collect(),
            "--no-twisted" => a.servers.retain(|s| s != "twisted"),
            "--scenarios" => {
                a.scenarios = value()?
                    .split(',')
                    .map(|s| s.parse().map_err(|e| format!("{s}: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--duration-ms" => a.duration = Duration::from_millis(num(value()?)?),
            "--warmup-ms" => a.warmup = Duration::from_millis(num(value()?)?),
            "--syscall-ms" => a.syscall = Duration::from_millis(num(value()?)?),
            "--strace" => a.strace = true,
            "--idle" => a.idle = num(value()?)? as usize,
            "--repeat" => a.repeat = (num(value()?)? as usize).max(1),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    for s in &a.servers {
        if !["ropewalk", "tokio", "twisted"].contains(&s.as_str()) {
            return Err(format!("unknown server {s}"));
        }
    }
    Ok(a)
}

/// Where `echo_server`, `echo_load` and the Twisted script are.
struct Paths {
    server: PathBuf,
    load: PathBuf,
    twisted: PathBuf,
}

/// Starts server `name` and waits until it listens.
fn start_server(name: &str, paths: &Paths) -> Result<Server, String> {
    Server::start_named(name, &paths.server, &paths.twisted)
}

/// Reads `strace -c` output: `% time seconds usecs/call calls [errors] syscall`.
fn parse_strace(text: &str) -> Syscalls {
    let mut s = Syscalls {
        tool: "strace",
        ..Syscalls::default()
    };
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || f[0].parse::<f64>().is_err() {
            continue;
        }
        let Ok(calls) = f[3].parse::<f64>() else {
            continue;
        };
        let name = f[f.len() - 1];
        let errors = if f.len() >= 6 {
            f[4].parse::<f64>().unwrap_or(0.0)
        } else {
            0.0
        };
        if name == "total" {
            s.total = calls;
        } else {
            s.calls.insert(name.to_string(), calls);
            if errors > 0.0 {
                s.calls.insert(format!("{name}!fail"), errors);
            }
        }
    }
    s
}

fn syscalls(
    paths: &Paths,
    server: &Server,
    conns: usize,
    args: &Args,
    use_strace: bool,
) -> Result<Syscalls, String> {
    let load_args = vec![
        "--connections".to_string(),
        conns.to_string(),
        "--duration-ms".into(),
        args.syscall.as_millis().to_string(),
        "--warmup-ms".into(),
        "0".into(),
        "--wait-go".into(),
    ];
    let deadline = args.syscall + Duration::from_secs(60);
    let mut load = Load::start(&paths.load, &server.addr, &load_args, deadline)?;
    load.expect("connected")?;
    // Count from before the first ping of the run to after the last one.
    let out = std::env::temp_dir().join(format!("ropewalk-echo-{}.txt", std::process::id()));
    let mut tracer = if use_strace {
        Command::new("strace")
            .args(["-c", "-f", "-q", "-o"])
            .arg(&out)
            .args(["-p", &server.pid().to_string()])
            .stderr(Stdio::null())
            .spawn()
    } else {
        Command::new("perf")
            .args(syscalls::perf_args(server.pid(), &out))
            .stderr(Stdio::null())
            .spawn()
    }
    .map_err(|e| format!("cannot start the syscall counter: {e}"))?;
    std::thread::sleep(Duration::from_millis(500));
    load.go();
    let rec = load.expect("start").and_then(|_| load.expect("result"));
    std::thread::sleep(Duration::from_millis(100));
    signal(tracer.id(), libc::SIGINT);
    let _ = tracer.wait();
    let rec = rec?;
    let text = std::fs::read_to_string(&out).map_err(|e| format!("no syscall counts: {e}"))?;
    let _ = std::fs::remove_file(&out);
    let mut s = if use_strace {
        parse_strace(&text)
    } else {
        syscalls::parse_perf(&text)
    };
    s.served = ropewalk_bench::load::num_of(&rec, "round_trips_total");
    if s.total <= 0.0 || s.served.is_nan() || s.served <= 0.0 {
        return Err(format!("no syscalls counted ({})", s.tool));
    }
    Ok(s)
}

fn memory(paths: &Paths, server: &Server, n: usize) -> Result<IdleMemory, String> {
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib(server.pid()).ok_or("cannot read VmRSS")?;
    let load_args = vec!["--connections".to_string(), n.to_string(), "--idle".into()];
    let mut load = Load::start(
        &paths.load,
        &server.addr,
        &load_args,
        Duration::from_secs(120),
    )?;
    load.expect("idle_ready")?;
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(server.pid()).ok_or("cannot read VmRSS")?;
    drop(load);
    Ok(IdleMemory::new(before, after, n))
}

fn main() -> ExitCode {
    let args = match ropewalk_bench::cli::or_usage("echo", USAGE, parse_args()) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let Some([server, load]) =
        ropewalk_bench::procs::sibling_bins("echo", "run-echo.sh", ["echo_server", "echo_load"])
    else {
        return ExitCode::FAILURE;
    };
    let paths = Paths {
        server,
        load,
        twisted: Path::new(env!("CARGO_MANIFEST_DIR")).join("twisted/echo_server.py"),
    };
    let use_strace = args.strace || !perf_works();
    if !args.strace && use_strace {
        eprintln!("echo: perf cannot count syscall tracepoints here: using strace -c");
    }

    let mut notes = Vec::new();
    let mut tput: BTreeMap<(String, usize), Throughput> = BTreeMap::new();
    let mut sys: BTreeMap<(String, usize), Syscalls> = BTreeMap::new();
    let mut mem: BTreeMap<String, IdleMemory> = BTreeMap::new();
    let mut available = Vec::new();

    for name in &args.servers {
        match start_server(name, &paths) {
            Ok(_) => available.push(name.clone()),
            Err(e) => {
                notes.push(format!("{name}: not measured: {e}"));
                eprintln!("echo: {name}: {e}");
            }
        }
    }
    let mut tput_runs: BTreeMap<(String, usize), Vec<Throughput>> = BTreeMap::new();
    let mut sys_runs: BTreeMap<(String, usize), Vec<Syscalls>> = BTreeMap::new();
    for round in 1..=args.repeat {
        for &conns in &args.scenarios {
            for name in &available {
                eprintln!(
                    "echo: [{round}/{}] {name}, {conns} connections: throughput",
                    args.repeat
                );
                let run = start_server(name, &paths).and_then(|srv| {
                    throughput(&paths.load, &srv, conns, args.duration, args.warmup)
                });
                match run {
                    Ok(t) => tput_runs.entry((name.clone(), conns)).or_default().push(t),
                    Err(e) => notes.push(format!("{name}, {conns} connections: {e}")),
                }
                if args.syscall.is_zero() {
                    continue;
                }
                eprintln!(
                    "echo: [{round}/{}] {name}, {conns} connections: syscalls",
                    args.repeat
                );
                let run = start_server(name, &paths)
                    .and_then(|srv| syscalls(&paths, &srv, conns, &args, use_strace));
                match run {
                    Ok(s) => sys_runs.entry((name.clone(), conns)).or_default().push(s),
                    Err(e) => notes.push(format!("{name}, {conns} connections, syscalls: {e}")),
                }
            }
        }
    }
    // Medians over the rounds: of each throughput figure on its own, and the syscall run
    // whose total per round trip is the median (so that its breakdown adds up).
    let median = report::median_of;
    for (key, runs) in &tput_runs {
        let m = |f: fn(&Throughput) -> f64| median(runs.iter().map(f).collect());
        tput.insert(
            key.clone(),
            Throughput {
                rps: m(|t| t.rps),
                p50_us: m(|t| t.p50_us),
                p99_us: m(|t| t.p99_us),
                cpu_us_per_rt: m(|t| t.cpu_us_per_rt),
                user_us_per_rt: m(|t| t.user_us_per_rt),
                client_cpu_us_per_rt: m(|t| t.client_cpu_us_per_rt),
            },
        );
        if runs.len() > 1 {
            let list = |f: fn(&Throughput) -> f64, d: usize| {
                runs.iter()
                    .map(|t| report::num(f(t), d))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            notes.push(format!(
                "{} {}: round trips/s {}; server CPU µs/rt {}",
                key.0,
                key.1,
                list(|t| t.rps, 0),
                list(|t| t.cpu_us_per_rt, 2)
            ));
        }
    }
    for (key, mut runs) in sys_runs {
        runs.sort_by(|a, b| a.total_per_op().total_cmp(&b.total_per_op()));
        if runs.len() > 1 {
            let all: Vec<String> = runs
                .iter()
                .map(|s| report::num(s.total_per_op(), 2))
                .collect();
            notes.push(format!(
                "{} {}: syscalls/rt {}",
                key.0,
                key.1,
                all.join(", ")
            ));
        }
        let mid = runs.len() / 2;
        sys.insert(key, runs.swap_remove(mid));
    }
    if args.idle > 0 {
        for name in &available {
            eprintln!("echo: {name}: {} idle connections", args.idle);
            match start_server(name, &paths).and_then(|srv| memory(&paths, &srv, args.idle)) {
                Ok(m) => {
                    mem.insert(name.clone(), m);
                }
                Err(e) => notes.push(format!("{name}, idle connections: {e}")),
            }
        }
    }

    // Table 1: throughput, CPU and syscalls per round trip.
    let vs = |x: f64, base: Option<f64>| match base {
        Some(b) if b > 0.0 && x.is_finite() => report::ratio2(x / b),
        _ => "-".into(),
    };
    // With --repeat, a throughput ratio is the median of each round's ratio (the two runs
    // of a round are seconds apart, so they share the machine's other load), else the
    // ratio of the medians.
    let paired = |name: &str, conns: usize, f: fn(&Throughput) -> f64| -> Option<String> {
        let a = tput_runs.get(&(name.to_string(), conns))?;
        let b = tput_runs.get(&("tokio".to_string(), conns))?;
        if a.len() < 2 || a.len() != b.len() {
            return None;
        }
        let r = report::paired_ratio(a, b, f);
        r.is_finite().then(|| report::ratio2(r))
    };
    let mut t = Table::new([
        "server",
        "connections",
        "round trips/s",
        "vs tokio",
        "p50 µs",
        "p99 µs",
        "server CPU µs/rt",
        "vs tokio",
        "of it user µs",
        "syscalls/rt",
        "vs tokio",
    ]);
    for &conns in &args.scenarios {
        let base_t = tput.get(&("tokio".to_string(), conns)).cloned();
        let base_s = sys
            .get(&("tokio".to_string(), conns))
            .map(Syscalls::total_per_op);
        for name in &available {
            let key = (name.clone(), conns);
            let th = tput.get(&key).cloned().unwrap_or_else(Throughput::missing);
            let s = sys.get(&key).map_or(f64::NAN, Syscalls::total_per_op);
            t.row([
                name.clone(),
                conns.to_string(),
                report::num(th.rps, 0),
                paired(name, conns, |t| t.rps)
                    .unwrap_or_else(|| vs(th.rps, base_t.as_ref().map(|b| b.rps))),
                report::num(th.p50_us, 0),
                report::num(th.p99_us, 0),
                report::num(th.cpu_us_per_rt, 2),
                paired(name, conns, |t| t.cpu_us_per_rt).unwrap_or_else(|| {
                    vs(th.cpu_us_per_rt, base_t.as_ref().map(|b| b.cpu_us_per_rt))
                }),
                report::num(th.user_us_per_rt, 2),
                report::num(s, 2),
                vs(s, base_s),
            ]);
        }
    }
    println!("{t}");

    // Table 2: where the syscalls go.
    if !sys.is_empty() {
        const CALLS: &[&str] = &[
            "epoll_ctl",
            "recvfrom",
            "recvfrom!fail",
            "sendto",
            "read",
            "read!fail",
            "timerfd_settime",
        ];
        let mut b = Table::new(
            ["server".to_string(), "connections".to_string()]
                .into_iter()
                .chain(syscalls::breakdown_headers("rt", CALLS)),
        );
        for &conns in &args.scenarios {
            for name in &available {
                let Some(s) = sys.get(&(name.clone(), conns)) else {
                    continue;
                };
                b.row(
                    [name.clone(), conns.to_string()]
                        .into_iter()
                        .chain(syscalls::breakdown_row(s, CALLS)),
                );
            }
        }
        println!("Syscalls per round trip, by call:\n\n{b}");
    }

    // Table 3: memory per idle connection.
    if !mem.is_empty() {
        let m = idle_memory_table(&mem, &available, args.idle, "tokio");
        println!("{m}");
    }

    println!(
        "ropewalk and tokio: one thread each (tokio current_thread); Twisted: epoll reactor. \
         Load: echo_load on one tokio current_thread, {} B ping-pong, {} ms warm-up + {} ms \
         measured per scenario.",
        64,
        args.warmup.as_millis(),
        args.duration.as_millis()
    );
    if !sys.is_empty() {
        println!(
            "syscalls counted by {} in a separate {} ms run.",
            if use_strace {
                "strace -c -f (slows the server: more events per epoll_wait than at full speed)"
            } else {
                "perf stat on the syscall tracepoints"
            },
            args.syscall.as_millis()
        );
    }
    for ((name, conns), th) in &tput {
        println!(
            "load generator CPU, {name} {conns}: {:.2} µs/rt",
            th.client_cpu_us_per_rt
        );
    }
    // The issue's targets, and what bounds the CPU ratio here.
    let ratio_of = |conns: usize, f: fn(&Throughput) -> f64| -> f64 {
        match (
            tput_runs.get(&("ropewalk".to_string(), conns)),
            tput_runs.get(&("tokio".to_string(), conns)),
        ) {
            (Some(a), Some(b)) => report::paired_ratio(a, b, f),
            _ => f64::NAN,
        }
    };
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    for &conns in &args.scenarios {
        let rt = ratio_of(conns, |t| t.rps);
        let cpu = ratio_of(conns, |t| t.cpu_us_per_rt);
        if rt.is_finite() {
            println!(
                "target {conns} connections, round trips ≥ 1.0× tokio: {} ({})",
                verdict(rt >= 1.0),
                report::ratio2(rt)
            );
        }
        if cpu.is_finite() {
            println!(
                "target {conns} connections, server CPU/rt ≤ 0.95× tokio: {} ({})",
                verdict(cpu <= 0.95),
                report::ratio2(cpu)
            );
            let bound = ratio_of(conns, |t| t.cpu_us_per_rt - t.user_us_per_rt);
            let ours = tput.get(&("ropewalk".to_string(), conns));
            let theirs = tput.get(&("tokio".to_string(), conns));
            if let (Some(o), Some(t)) = (ours, theirs) {
                println!(
                    "  bound {conns} connections: ropewalk's kernel time is {} of tokio's \
                     (user time: ropewalk {} µs/rt, tokio {} µs/rt); with no user time at all \
                     ropewalk's CPU ratio would be {}",
                    report::ratio2(bound),
                    report::num(o.user_us_per_rt, 2),
                    report::num(t.user_us_per_rt, 2),
                    report::ratio2((o.cpu_us_per_rt - o.user_us_per_rt) / t.cpu_us_per_rt),
                );
            }
        }
        if let Some(s) = sys.get(&("ropewalk".to_string(), conns)) {
            println!(
                "target {conns} connections, ≤ 2.2 syscalls/rt: {} ({})",
                verdict(s.total_per_op() <= 2.2),
                report::num(s.total_per_op(), 2)
            );
        }
    }
    for n in &notes {
        println!("note: {n}");
    }
    ExitCode::SUCCESS
}
