//! The soak test: runs an example server (`http_server` by default, `echo_server` with
//! `--server echo`) for minutes under a hostile mix of clients, and checks that nothing
//! leaks, hangs or answers wrongly. See "The soak test" in `bench/README.md`.
//!
//! ```sh
//! ./run-soak.sh                       # http_server, 60 s, seed 1
//! ./run-soak.sh --server echo --duration 30
//! target/release/soak --help
//! ```
//!
//! Every client kind runs on its own threads (blocking sockets with timeouts: a read or a
//! write that times out is a hang). A sampler reads the server's RSS, descriptors and CPU
//! from `/proc` once a second. The exit code is 0 when every check passes, 1 otherwise.
//!
//! This file starts the server, the sampler and the client threads, waits out the load
//! and prints the report; the rest is one concept per file: [`options`] (the command
//! line), [`server`] (the server process and its `/proc` samples), [`context`] (what
//! the clients share, and the results), [`requests`] (what to send and what must come
//! back), [`response`] (the strict HTTP response reader), [`http_clients`] and
//! [`echo_clients`] (one function per client kind).

mod context;
mod echo_clients;
mod http_clients;
mod options;
mod requests;
mod response;
mod server;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ropewalk_bench::procs;

use crate::context::{Ctx, Stats, StatsInner};
use crate::echo_clients::{echo_abrupt, echo_halfclose, echo_pingpong, echo_udp};
use crate::http_clients::{
    http_abrupt, http_keepalive, http_malformed, http_mutated, http_pipeline, http_slowloris,
    nonreader,
};
use crate::options::{parse_args, Opts, ServerKind, KINDS, USAGE};
use crate::requests::{make_root, Rng};
use crate::server::{fd_kinds, final_check, mean, mib, sample, start_server, Sample};

/// The server's documented defaults (`ServerConfig::default()`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Slack on top of a server timeout before a client calls it a hang.
const MARGIN: Duration = Duration::from_secs(5);
/// The bound on one request/response exchange that no timer delays.
const OP_BOUND: Duration = Duration::from_secs(10);
/// Longest `/delay` or `/thread` the clients ask for, in ms.
const MAX_DELAY_MS: u64 = 50;

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("soak: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: Opts) -> Result<bool, String> {
    let name = match opts.server {
        ServerKind::Http => "http_server",
        ServerKind::Echo => "echo_server",
    };
    let bin = opts.bin.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/release/examples")
            .join(name)
    });
    let (root, files) = make_root().map_err(|e| format!("static files: {e}"))?;
    let mut args = Vec::new();
    if opts.server == ServerKind::Http {
        args = vec!["--root".to_string(), root.display().to_string()];
    }
    // The server's log (its stderr), summed up in the report.
    let log_path = root.join("server.log");
    let mut server = start_server(&bin, &args, &log_path)?;
    let pid = server.child.id();
    let t0 = Instant::now();
    // What the server holds before any client: the reference for descriptors.
    std::thread::sleep(Duration::from_millis(200));
    let base = sample(pid, t0).ok_or("cannot read the server's /proc entries")?;
    let overflows_before = procs::listen_overflows();
    let settle = opts.settle.unwrap_or(match opts.server {
        ServerKind::Http if opts.fetch => Duration::from_secs(40),
        _ => Duration::from_secs(10),
    });

    println!(
        "soak: {} ({}) on {}, pid {pid}, {:.0} s of load ({:.0} s warm-up), seed {}",
        name,
        bin.display(),
        server.addr,
        opts.duration.as_secs_f64(),
        opts.warmup.as_secs_f64(),
        opts.seed
    );
    let mix: Vec<String> = opts
        .mix
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    let total: usize = opts.mix.values().sum();
    println!("client threads ({total}): {}", mix.join(" "));
    println!(
        "at start: {} descriptors ({} sockets), RSS {:.1} MiB",
        base.fds,
        base.sockets,
        mib(base.rss_kib as f64)
    );

    let ctx = Arc::new(Ctx {
        addr: server.addr,
        opts: opts.clone(),
        stop: AtomicBool::new(false),
        load_end: Instant::now() + opts.duration,
        stats: Stats {
            inner: Mutex::new(StatsInner::default()),
            verbose: opts.verbose,
        },
    });
    let files = Arc::new(files);

    // The sampler, once a second until told to stop.
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let samples = samples.clone();
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut next = Instant::now();
            while sampling.load(Ordering::Relaxed) {
                if let Some(s) = sample(pid, t0) {
                    samples.lock().unwrap_or_else(|e| e.into_inner()).push(s);
                }
                next += Duration::from_secs(1);
                while sampling.load(Ordering::Relaxed) && Instant::now() < next {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        })
    };

    let mut threads = Vec::new();
    let mut n = 0u64;
    for (&kind, &count) in &opts.mix {
        for _ in 0..count {
            n += 1;
            let seed = opts.seed.wrapping_mul(1000).wrapping_add(n);
            let ctx = ctx.clone();
            let files = files.clone();
            let server_kind = opts.server;
            let handle = std::thread::Builder::new()
                .name(format!("{kind}-{n}"))
                .spawn(move || {
                    let mut rng = Rng::new(seed);
                    match (server_kind, kind) {
                        (ServerKind::Http, "keepalive") => http_keepalive(&ctx, &mut rng, &files),
                        (ServerKind::Http, "pipeline") => http_pipeline(&ctx, &mut rng, &files),
                        (ServerKind::Http, "malformed") => http_malformed(&ctx, &mut rng),
                        (ServerKind::Http, "mutated") => http_mutated(&ctx, &mut rng),
                        (ServerKind::Http, "slowloris") => http_slowloris(&ctx, &mut rng),
                        (ServerKind::Http, "abrupt") => http_abrupt(&ctx, &mut rng, &files),
                        (ServerKind::Echo, "keepalive") => echo_pingpong(&ctx, &mut rng, false),
                        (ServerKind::Echo, "pipeline") => echo_pingpong(&ctx, &mut rng, true),
                        (ServerKind::Echo, "halfclose") => echo_halfclose(&ctx, &mut rng),
                        (ServerKind::Echo, "udp") => echo_udp(&ctx, &mut rng),
                        (ServerKind::Echo, "abrupt") => echo_abrupt(&ctx, &mut rng),
                        (_, "nonreader") => nonreader(&ctx, &mut rng),
                        _ => {}
                    }
                })
                .map_err(|e| e.to_string())?;
            threads.push((kind, seed, handle));
        }
    }

    // The load, with a line of progress every 10 s.
    while Instant::now() < ctx.load_end {
        std::thread::sleep(
            Duration::from_millis(200).min(ctx.load_end - Instant::now().min(ctx.load_end)),
        );
        let elapsed = t0.elapsed().as_secs();
        if elapsed > 0 && elapsed % 10 == 0 {
            if let Some(s) = samples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .last()
                .copied()
            {
                let st = ctx.stats.lock();
                let reqs: u64 = st.requests.values().sum();
                let fails: u64 = st.failures.values().map(|f| f.0).sum();
                eprintln!(
                    "  t={:>3.0}s  RSS {:>6.1} MiB  fds {:>4}  sockets {:>4}  cpu {:>5.1} s  requests {reqs}  failures {fails}",
                    s.t,
                    mib(s.rss_kib as f64),
                    s.fds,
                    s.sockets,
                    s.cpu_user + s.cpu_sys
                );
            }
            std::thread::sleep(Duration::from_millis(800));
        }
    }
    let load_end_t = t0.elapsed().as_secs_f64();
    ctx.stop.store(true, Ordering::Relaxed);

    // Every client finishes its operation within its own bound.
    let join_bound = REQUEST_TIMEOUT + MARGIN * 2;
    let join_deadline = Instant::now() + join_bound;
    let mut stuck = Vec::new();
    for (kind, seed, h) in threads {
        while !h.is_finished() && Instant::now() < join_deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if h.is_finished() {
            if h.join().is_err() {
                stuck.push(format!("{kind} (seed {seed}) panicked"));
            }
        } else {
            stuck.push(format!(
                "{kind} (seed {seed}) still running {join_bound:?} after the load"
            ));
        }
    }

    // Back to the starting descriptors.
    let settle_start = Instant::now();
    let mut settled = None;
    while settle_start.elapsed() < settle {
        if let Some(s) = sample(pid, t0) {
            if s.fds <= base.fds {
                settled = Some((settle_start.elapsed(), s));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let end = sample(pid, t0).ok_or("the server is gone")?;
    let leftover = if settled.is_none() {
        fd_kinds(pid)
    } else {
        String::new()
    };
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let final_result = final_check(server.addr, opts.server);
    let overflows = procs::listen_overflows()
        .zip(overflows_before)
        .map(|((o, d), (o0, d0))| (o.saturating_sub(o0), d.saturating_sub(d0)));

    // SIGTERM: a clean exit.
    procs::signal(pid, libc::SIGTERM);
    let exit_deadline = Instant::now() + Duration::from_secs(5);
    let exit = loop {
        match server.child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < exit_deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = server.child.kill();
                let _ = server.child.wait();
                break None;
            }
        }
    };
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&root);

    // The report.
    let samples = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let st = ctx.stats.lock();
    let mut pass = true;
    let mut verdict = |ok: bool, line: String| {
        println!("  [{}] {line}", if ok { "ok" } else { "FAIL" });
        pass &= ok;
    };

    println!(
        "\n== soak report: {name}, seed {}, {:.0} s of load ==",
        opts.seed, load_end_t
    );
    println!("operations (ok), requests exchanged, slowest operation, per kind:");
    for kind in KINDS {
        if opts.mix.get(kind).copied().unwrap_or(0) == 0 {
            continue;
        }
        println!(
            "  {kind:<10} {:>9} ops {:>10} requests   slowest {:>8.3} s",
            st.ok.get(kind).copied().unwrap_or(0),
            st.requests.get(kind).copied().unwrap_or(0),
            st.slowest.get(kind).map_or(0.0, |d| d.as_secs_f64()),
        );
    }
    for (what, n) in &st.notes {
        println!("  note: {what}: {n}");
    }
    let total_fail: u64 = st.failures.values().map(|f| f.0).sum();
    println!("failures: {total_fail}");
    // The kernel's side of a hang: handshakes dropped at a full accept queue (on the
    // whole machine, during the run) are waited out by the client's kernel, in seconds.
    match overflows {
        Some((0, 0)) => println!("  kernel: no handshake dropped at a full accept queue"),
        Some((o, d)) => println!(
            "  kernel: {o} accept-queue overflows, {d} listen drops on this machine during the run \
             (TcpExt ListenOverflows/ListenDrops): a client whose handshake was dropped waits \
             for its kernel's SYN retransmissions (1 s, 3 s, 7 s, ...), which can read as a hang"
        ),
        None => {}
    }
    for (what, (n, examples)) in &st.failures {
        println!("  {what}: {n}");
        for e in examples {
            println!("      e.g. {e}");
        }
    }

    // The server's log: not a check (a handler cancelled by a client that left is
    // logged), but worth a look.
    let mut levels = BTreeMap::<&str, (usize, Vec<&str>)>::new();
    for line in log.lines() {
        for level in ["ERROR", "WARN"] {
            if line.contains(&format!(" {level} ")) {
                let e = levels.entry(level).or_default();
                e.0 += 1;
                if e.1.len() < 2 {
                    e.1.push(line);
                }
            }
        }
    }
    println!("server log: {} lines", log.lines().count());
    for (level, (n, first)) in &levels {
        println!("  {level}: {n}");
        for l in first {
            println!("      e.g. {l}");
        }
    }

    let warm = samples
        .iter()
        .find(|s| s.t >= opts.warmup.as_secs_f64())
        .copied();
    let load: Vec<Sample> = samples
        .iter()
        .filter(|s| s.t >= opts.warmup.as_secs_f64() && s.t <= load_end_t)
        .copied()
        .collect();
    let rss: Vec<u64> = samples.iter().map(|s| s.rss_kib).collect();
    let max_fds = samples.iter().map(|s| s.fds).max().unwrap_or(0);
    let max_sockets = samples.iter().map(|s| s.sockets).max().unwrap_or(0);
    println!(
        "server RSS (MiB): start {:.1}, after warm-up {:.1}, min {:.1}, max {:.1}, end {:.1}  ({} samples)",
        mib(base.rss_kib as f64),
        mib(warm.map_or(0, |s| s.rss_kib) as f64),
        mib(rss.iter().copied().min().unwrap_or(0) as f64),
        mib(rss.iter().copied().max().unwrap_or(0) as f64),
        mib(end.rss_kib as f64),
        samples.len()
    );
    println!(
        "server descriptors: start {} ({} sockets), max {max_fds} ({max_sockets} sockets), end {} ({} sockets)",
        base.fds, base.sockets, end.fds, end.sockets
    );
    let cpu = end.cpu_user + end.cpu_sys - base.cpu_user - base.cpu_sys;
    println!(
        "server CPU: {:.1} s user + {:.1} s system = {:.1} s ({:.0}% of one core over the load)",
        end.cpu_user - base.cpu_user,
        end.cpu_sys - base.cpu_sys,
        cpu,
        100.0 * cpu / load_end_t.max(1e-9)
    );

    println!("checks:");
    verdict(
        total_fail == 0,
        format!("no wrong answer, no hang, no malformed response ({total_fail} failures)"),
    );
    if let Some(lost) = st.notes.get("udp: datagram lost (1 s)") {
        let sent = st.requests.get("udp").copied().unwrap_or(0) + lost;
        verdict(
            (*lost as f64) <= 0.01 * sent as f64,
            format!("UDP datagrams lost: {lost} of {sent} (at most 1%)"),
        );
    }
    verdict(
        stuck.is_empty(),
        if stuck.is_empty() {
            format!("every client finished within {join_bound:?} of the load's end")
        } else {
            format!("clients stuck: {}", stuck.join("; "))
        },
    );
    verdict(
        settled.is_some(),
        match settled {
            Some((d, s)) => format!(
                "descriptors back to the start's {} within {:.1} s of the load's end (bound {:.0} s; now {})",
                base.fds,
                d.as_secs_f64(),
                settle.as_secs_f64(),
                s.fds
            ),
            None => format!(
                "descriptors not back to {} within {:.0} s: {} ({} sockets): {leftover}",
                base.fds,
                settle.as_secs_f64(),
                end.fds,
                end.sockets
            ),
        },
    );
    match warm {
        Some(w) => {
            let growth = mib(end.rss_kib as f64 - w.rss_kib as f64);
            verdict(
                growth <= opts.rss_growth_mib,
                format!(
                    "RSS growth after warm-up {growth:+.1} MiB (at most {} MiB)",
                    opts.rss_growth_mib
                ),
            );
            // Against the start: a burst during the warm-up counts too.
            let peak = mib(rss.iter().copied().max().unwrap_or(0) as f64 - base.rss_kib as f64);
            verdict(
                peak <= opts.rss_peak_mib,
                format!(
                    "RSS peak above the start {peak:+.1} MiB (at most {} MiB)",
                    opts.rss_peak_mib
                ),
            );
            let third = load.len() / 3;
            if third >= 1 {
                let trend = mib(mean(&load[load.len() - third..]) - mean(&load[..third]));
                verdict(
                    trend <= opts.rss_trend_mib,
                    format!(
                        "RSS trend: last third's mean minus first third's {trend:+.1} MiB (at most {} MiB)",
                        opts.rss_trend_mib
                    ),
                );
            } else {
                verdict(
                    false,
                    "too few samples for the RSS trend (a longer --duration)".into(),
                );
            }
        }
        None => verdict(false, "no sample after the warm-up".into()),
    }
    verdict(
        final_result.is_ok(),
        match &final_result {
            Ok(()) => "the server still answers a final request".into(),
            Err(e) => format!("final request: {e}"),
        },
    );
    verdict(
        exit.is_some_and(|s| s.success()),
        match exit {
            Some(s) => format!("exit on SIGTERM: {s}"),
            None => "no exit within 5 s of SIGTERM (killed)".into(),
        },
    );
    println!("{}", if pass { "PASS" } else { "FAIL" });
    Ok(pass)
}
