//! The reactor benchmark: timers, calls from other threads and the worker pool, on
//! ropewalk's reactor and on tokio, in the same run, side by side.
//!
//! ```sh
//! cd bench && cargo run --release --bin reactor
//! cargo run --release --bin reactor -- --help
//! ```
//!
//! Each scenario is a batch (a million timers, ten thousand round trips, a hundred
//! thousand jobs) run on a fresh reactor or a fresh runtime; only the batch is timed, not
//! making the reactor or the runtime. Runs alternate (ropewalk, tokio, ropewalk, ...),
//! never both at once; the median of the runs is reported. See `bench/README.md`.

use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use ropewalk_bench::alloc::{self, CountingAlloc};
use ropewalk_bench::cli;
use ropewalk_bench::harness;
use ropewalk_bench::report::{self, Table};
use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::{PoolConfig, Reactor};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Sizes of the batches, and the worker pool.
#[derive(Debug, Clone)]
struct Params {
    timers: usize,
    spread: Duration,
    round_trips: usize,
    jobs: usize,
    pool: usize,
}

/// Times one region of a side's run, or counts its allocations (process-wide, so the
/// other threads of a threaded scenario count too).
#[derive(Debug, Default)]
struct Probe {
    count: bool,
    elapsed: Duration,
    allocs: f64,
}

impl Probe {
    fn region<R>(&mut self, f: impl FnOnce() -> R) -> R {
        if self.count {
            let mut f = Some(f);
            let mut out = None;
            self.allocs =
                alloc::count(1, || out = Some((f.take().expect("runs once"))())).allocs_per_op;
            out.expect("ran")
        } else {
            let start = Instant::now();
            let out = f();
            self.elapsed = start.elapsed();
            out
        }
    }
}

/// The delays of the timer scenarios: fixed pseudo-random (xorshift64*, fixed seed),
/// uniform over `0..=spread` in microseconds; the same list on both sides.
fn delays(n: usize, spread: Duration) -> Vec<Duration> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let span = spread.as_micros() as u64 + 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            Duration::from_micros(x.wrapping_mul(0x2545_F491_4F6C_DD1D) % span)
        })
        .collect()
}

fn tokio_runtime(blocking_threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads)
        .build()
        .expect("a tokio runtime")
}

// ---- 1. timers: schedule + cancel ---------------------------------------------------

/// `call_later(d, || {})` for every delay, then `cancel()` and drop each handle.
fn rw_schedule_cancel(delays: &[Duration], _: &Params, probe: &mut Probe) {
    let reactor = Reactor::new().expect("a reactor");
    let mut calls = Vec::with_capacity(delays.len());
    probe.region(|| {
        for &d in delays {
            calls.push(reactor.call_later(d, || {}));
        }
        for call in calls.drain(..) {
            call.cancel().expect("an active call");
        }
    });
    assert_eq!(reactor.stats().pending_timers, 0);
}

/// `Box::pin(sleep(d))` for every delay, polled once (which puts it in the timer wheel),
/// then every one dropped (which takes it out again).
fn tokio_schedule_cancel(delays: &[Duration], _: &Params, probe: &mut Probe) {
    let rt = tokio_runtime(1);
    let _in_runtime = rt.enter();
    let mut sleeps: Vec<Pin<Box<tokio::time::Sleep>>> = Vec::with_capacity(delays.len());
    let mut cx = Context::from_waker(Waker::noop());
    probe.region(|| {
        for &d in delays {
            let mut s = Box::pin(tokio::time::sleep(d));
            // Polled outside any task, so tokio's cooperative budget never says Pending
            // early: this poll registers the timer.
            assert!(s.as_mut().poll(&mut cx).is_pending() || d.is_zero());
            sleeps.push(s);
        }
        sleeps.clear();
    });
}

// ---- 2. timers: fire ----------------------------------------------------------------

struct Fired {
    count: Cell<usize>,
    n: usize,
    reactor: Reactor,
}

/// `call_later(d, f)` for every delay, `f` counting and stopping the reactor at the last
/// one, then `run()`; timed from the first `call_later` until `run()` returns.
fn rw_fire(delays: &[Duration], _: &Params, probe: &mut Probe) {
    let reactor = Reactor::new().expect("a reactor");
    let state = Rc::new(Fired {
        count: Cell::new(0),
        n: delays.len(),
        reactor: reactor.clone(),
    });
    probe.region(|| {
        for &d in delays {
            let s = state.clone();
            reactor.call_later(d, move || {
                let c = s.count.get() + 1;
                s.count.set(c);
                if c == s.n {
                    s.reactor.stop().expect("running");
                }
            });
        }
        reactor.run().expect("runs");
    });
    assert_eq!(state.count.get(), delays.len());
}

/// One spawned task per delay, each awaiting a `sleep(d)` made before the spawn (so its
/// deadline counts from the same moment as ropewalk's), then counting; the last one
/// notifies the `block_on` future. Timed from the first spawn until `block_on` returns.
fn tokio_fire(delays: &[Duration], _: &Params, probe: &mut Probe) {
    let rt = tokio_runtime(1);
    let n = delays.len() as u64;
    let count = Arc::new(AtomicU64::new(0));
    probe.region(|| {
        rt.block_on(async {
            let done = Arc::new(tokio::sync::Notify::new());
            for &d in delays {
                let sleep = tokio::time::sleep(d);
                let (count, done) = (count.clone(), done.clone());
                tokio::spawn(async move {
                    sleep.await;
                    if count.fetch_add(1, Ordering::Relaxed) + 1 == n {
                        done.notify_one();
                    }
                });
            }
            done.notified().await;
        });
    });
    assert_eq!(count.load(Ordering::Relaxed), n);
}

// ---- 3. call_from_thread round trips ------------------------------------------------

/// The reactor runs on this thread; another thread makes `n` `blocking_call(|| Ok(i))`
/// in a row (each: queue the call, wake the reactor, run it, send the answer back, wake
/// the caller), timed on that thread, then stops the reactor.
fn rw_round_trips(_: &[Duration], p: &Params, probe: &mut Probe) {
    let reactor = Reactor::new().expect("a reactor");
    let handle = reactor.handle();
    let n = p.round_trips as u64;
    let mut probe_there = std::mem::take(probe);
    let caller = std::thread::spawn(move || {
        probe_there.region(|| {
            for i in 0..n {
                let v: u64 = handle
                    .blocking_call(move || Ok::<u64, Failure>(black_box(i)))
                    .expect("an answer");
                assert_eq!(v, i);
            }
        });
        handle.stop();
        probe_there
    });
    reactor.run().expect("runs");
    *probe = caller.join().expect("the caller thread");
}

/// The runtime runs on this thread, with a spawned task that answers each
/// `(i, oneshot::Sender)` it receives on an unbounded `mpsc` with `i`; another thread
/// sends `n` of them in a row, each time waiting with `blocking_recv` for the answer.
fn tokio_round_trips(_: &[Duration], p: &Params, probe: &mut Probe) {
    let rt = tokio_runtime(1);
    let (tx, mut rx) =
        tokio::sync::mpsc::unbounded_channel::<(u64, tokio::sync::oneshot::Sender<u64>)>();
    let n = p.round_trips as u64;
    let mut probe_there = std::mem::take(probe);
    let caller = std::thread::spawn(move || {
        probe_there.region(|| {
            for i in 0..n {
                let (reply, answer) = tokio::sync::oneshot::channel();
                tx.send((black_box(i), reply)).expect("the task is there");
                assert_eq!(answer.blocking_recv().expect("an answer"), i);
            }
        });
        drop(tx);
        probe_there
    });
    rt.block_on(async {
        tokio::spawn(async move {
            while let Some((x, reply)) = rx.recv().await {
                let _ = reply.send(x);
            }
        })
        .await
        .expect("the answering task");
    });
    *probe = caller.join().expect("the caller thread");
}

// ---- 4. defer_to_thread throughput --------------------------------------------------

/// A job's cheap work.
fn work(i: u64) -> u64 {
    black_box(i).wrapping_mul(3)
}

struct Gathered {
    count: Cell<usize>,
    sum: Cell<u64>,
    n: usize,
    reactor: Reactor,
}

/// `n` × `defer_to_thread(|| Ok(work(i)))`, each with a callback that adds the result and
/// stops the reactor at the last one, then `run()`. Pool of `--pool` threads.
fn rw_defer(_: &[Duration], p: &Params, probe: &mut Probe) {
    let reactor = Reactor::new().expect("a reactor");
    reactor.configure_pool(PoolConfig {
        max_threads: p.pool,
        max_queue: p.jobs.max(PoolConfig::default().max_queue),
        ..PoolConfig::default()
    });
    let state = Rc::new(Gathered {
        count: Cell::new(0),
        sum: Cell::new(0),
        n: p.jobs,
        reactor: reactor.clone(),
    });
    probe.region(|| {
        for i in 0..p.jobs as u64 {
            let s = state.clone();
            drop(
                reactor
                    .defer_to_thread(move || Ok(work(i)))
                    .add_callback(move |v| {
                        s.sum.set(s.sum.get() + v);
                        let c = s.count.get() + 1;
                        s.count.set(c);
                        if c == s.n {
                            s.reactor.stop().expect("running");
                        }
                        Ok::<(), Failure>(())
                    }),
            );
        }
        reactor.run().expect("runs");
    });
    assert_eq!(state.sum.get(), expected_sum(p.jobs));
}

/// `n` × `spawn_blocking(|| work(i))` from the `block_on` future, then every `JoinHandle`
/// awaited in turn and the results added. `max_blocking_threads(--pool)`.
fn tokio_defer(_: &[Duration], p: &Params, probe: &mut Probe) {
    let rt = tokio_runtime(p.pool);
    let sum = probe.region(|| {
        rt.block_on(async {
            let handles: Vec<_> = (0..p.jobs as u64)
                .map(|i| tokio::task::spawn_blocking(move || work(i)))
                .collect();
            let mut sum = 0u64;
            for h in handles {
                sum += h.await.expect("the job");
            }
            sum
        })
    });
    assert_eq!(sum, expected_sum(p.jobs));
}

fn expected_sum(n: usize) -> u64 {
    (0..n as u64).map(|i| i.wrapping_mul(3)).sum()
}

// ---- the driver ---------------------------------------------------------------------

type Side = fn(&[Duration], &Params, &mut Probe);

#[derive(Clone, Copy)]
enum Unit {
    /// Nanoseconds per operation (lower is better).
    Ns(&'static str),
    /// Microseconds per operation (lower is better).
    Us(&'static str),
    /// Operations per second (higher is better).
    PerSec(&'static str),
}

struct Scenario {
    name: &'static str,
    ropewalk: Side,
    tokio: Side,
    ops: fn(&Params) -> usize,
    unit: Unit,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "timers_schedule_cancel",
            ropewalk: rw_schedule_cancel,
            tokio: tokio_schedule_cancel,
            ops: |p| p.timers,
            unit: Unit::Ns("ns/timer"),
        },
        Scenario {
            name: "timers_fire",
            ropewalk: rw_fire,
            tokio: tokio_fire,
            ops: |p| p.timers,
            unit: Unit::Ns("ns/timer"),
        },
        Scenario {
            name: "call_from_thread_round_trip",
            ropewalk: rw_round_trips,
            tokio: tokio_round_trips,
            ops: |p| p.round_trips,
            unit: Unit::Us("µs/round trip"),
        },
        Scenario {
            name: "defer_to_thread",
            ropewalk: rw_defer,
            tokio: tokio_defer,
            ops: |p| p.jobs,
            unit: Unit::PerSec("jobs/s"),
        },
    ]
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Ns(u) | Unit::Us(u) | Unit::PerSec(u) => u,
        }
    }

    /// Formats a time per op in this unit.
    fn show(self, ns_per_op: f64) -> String {
        match self {
            Unit::Ns(_) => report::ns(ns_per_op),
            Unit::Us(_) => format!("{:.1}", ns_per_op / 1e3),
            Unit::PerSec(_) => report::group((1e9 / ns_per_op).round() as u64),
        }
    }
}

/// Timings of one side: nanoseconds per op of each run, sorted.
fn summary(samples: &mut [f64]) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    (
        harness::median(samples),
        samples[0],
        samples[samples.len() - 1],
    )
}

const USAGE: &str = "\
usage: reactor [OPTIONS] [SCENARIO...]

Runs the reactor scenarios on ropewalk and on tokio (current_thread runtime), runs
alternating, and prints the time per op side by side. SCENARIO filters by substring.

options:
  --runs N          timed runs per side and scenario; the median is reported (default 5)
  --timers N        timers in the timer scenarios (default 1000000)
  --spread-ms MS    delays of timers_fire (and timers_schedule_cancel) spread over 0..=MS (default 100)
  --round-trips N   round trips in call_from_thread_round_trip (default 10000)
  --jobs N          jobs in defer_to_thread (default 100000)
  --pool N          worker threads on both sides in defer_to_thread (default 4)
  --no-tokio        measure ropewalk only
  --list            list the scenarios and exit
  -h, --help        this text";

struct Args {
    params: Params,
    runs: usize,
    tokio: bool,
    list: bool,
    filters: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        params: Params {
            timers: 1_000_000,
            spread: Duration::from_millis(100),
            round_trips: 10_000,
            jobs: 100_000,
            pool: 4,
        },
        runs: 5,
        tokio: true,
        list: false,
        filters: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    let num = |it: &mut dyn Iterator<Item = String>, flag: &str| -> Result<usize, String> {
        it.next()
            .and_then(|v| v.parse().ok())
            .filter(|&v: &usize| v > 0)
            .ok_or(format!("{flag} needs a positive number"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => args.runs = num(&mut it, &a)?,
            "--timers" => args.params.timers = num(&mut it, &a)?,
            "--spread-ms" => args.params.spread = Duration::from_millis(num(&mut it, &a)? as u64),
            "--round-trips" => args.params.round_trips = num(&mut it, &a)?,
            "--jobs" => args.params.jobs = num(&mut it, &a)?,
            "--pool" => args.params.pool = num(&mut it, &a)?,
            "--no-tokio" => args.tokio = false,
            "--list" => args.list = true,
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => args.filters.push(s.to_string()),
        }
    }
    Ok(args)
}

/// One run of one side: ns per op.
fn timed(side: Side, delays: &[Duration], p: &Params, ops: usize) -> f64 {
    let mut probe = Probe::default();
    side(delays, p, &mut probe);
    probe.elapsed.as_nanos() as f64 / ops as f64
}

/// Allocations per op of one side, in an untimed run a tenth the size (all threads).
fn counted(side: Side, s: &Scenario, p: &Params) -> f64 {
    let mut small = p.clone();
    small.timers = (p.timers / 10).max(1);
    small.round_trips = (p.round_trips / 10).max(1);
    small.jobs = (p.jobs / 10).max(1);
    let delays = delays(small.timers, small.spread);
    let mut probe = Probe {
        count: true,
        ..Probe::default()
    };
    side(&delays, &small, &mut probe);
    probe.allocs / (s.ops)(&small) as f64
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("reactor: {e}");
            }
            println!("{USAGE}");
            return if e.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    let selected = match cli::select(
        scenarios,
        args.list,
        |s| s.name,
        |s| cli::picked(s.name, &args.filters),
    ) {
        Ok(selected) => selected,
        Err(code) => return code,
    };
    assert!(
        alloc::installed(),
        "the counting allocator is not installed"
    );

    let p = &args.params;
    let delays = delays(p.timers, p.spread);
    let mut table = Table::new([
        "scenario",
        "unit",
        "ropewalk",
        "tokio",
        "ratio (tokio time / ropewalk time)",
        "ratio of fastest runs",
        "ropewalk allocs/op",
        "tokio allocs/op",
    ]);
    for s in &selected {
        let ops = (s.ops)(p);
        // Warm-up: one run of each side at a tenth of the size, not reported.
        let mut small = p.clone();
        small.round_trips = (p.round_trips / 10).max(1);
        small.jobs = (p.jobs / 10).max(1);
        (s.ropewalk)(
            &delays[..(p.timers / 10).max(1)],
            &small,
            &mut Probe::default(),
        );
        if args.tokio {
            (s.tokio)(
                &delays[..(p.timers / 10).max(1)],
                &small,
                &mut Probe::default(),
            );
        }
        // Timed runs, alternating sides.
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..args.runs.max(1) {
            ours.push(timed(s.ropewalk, &delays, p, ops));
            if args.tokio {
                theirs.push(timed(s.tokio, &delays, p, ops));
            }
        }
        let (med, min, max) = summary(&mut ours);
        let our_allocs = counted(s.ropewalk, s, p);
        eprintln!(
            "ropewalk {:<28} {:>10} ns/op (min {}, max {}; {} runs × {} ops), {:.2} allocs/op",
            s.name,
            report::ns(med),
            report::ns(min),
            report::ns(max),
            ours.len(),
            ops,
            our_allocs
        );
        let (their_med, their_min, their_allocs) = if args.tokio {
            let (tmed, tmin, tmax) = summary(&mut theirs);
            let allocs = counted(s.tokio, s, p);
            eprintln!(
                "tokio    {:<28} {:>10} ns/op (min {}, max {}; {} runs × {} ops), {:.2} allocs/op",
                s.name,
                report::ns(tmed),
                report::ns(tmin),
                report::ns(tmax),
                theirs.len(),
                ops,
                allocs
            );
            (tmed, tmin, allocs)
        } else {
            (f64::NAN, f64::NAN, f64::NAN)
        };
        table.row([
            s.name.to_string(),
            s.unit.name().to_string(),
            s.unit.show(med),
            if args.tokio {
                s.unit.show(their_med)
            } else {
                "-".to_string()
            },
            report::ratio(their_med / med),
            report::ratio(their_min / min),
            format!("{our_allocs:.2}"),
            if args.tokio {
                format!("{their_allocs:.2}")
            } else {
                "-".to_string()
            },
        ]);
    }

    println!();
    println!("{table}");
    println!(
        "{} threads available; median of {} alternating runs per side, fresh reactor / runtime per run",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.runs
    );
    println!(
        "timers: {} over 0..={} ms; round trips: {}; jobs: {} on {} worker threads",
        p.timers,
        p.spread.as_millis(),
        p.round_trips,
        p.jobs,
        p.pool
    );
    println!("ratio > 1: ropewalk faster; allocs/op counted in an untimed run a tenth the size, all threads");
    ExitCode::SUCCESS
}
