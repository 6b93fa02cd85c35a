//! The architecture experiment: the multi-core designs of the article side by side under
//! the same open-loop load, and a discrete-event model (`ropewalk_bench::sim`) that is
//! checked against those measurements and then carries the question to more cores.
//!
//! ```sh
//! cd bench && ./run-architecture.sh            # builds, runs, writes results/…-architecture.md
//! target/release/architecture --quick          # a smoke run, under a minute
//! target/release/architecture --sim-only       # the model alone, no sockets
//! target/release/architecture --help
//! ```
//!
//! Steps, each printed as a Markdown table:
//!
//! 1. **Calibration**: the rounds of `cpu_job` per µs (the fastest of several probes, so
//!    that a preempted probe does not shorten every job), given to every server; and a
//!    zero-work run against `one` for the path's own latency (client, kernel, loopback).
//! 2. **Capacity** per workload: a closed loop (one request in flight per connection, 64
//!    connections) against `--capacity-from` (default `tokio-mt`); the sweep's rates are
//!    `--loads` times it, the same rates for every design.
//! 3. **Sweep**: for each workload, connection count, load and design (designs
//!    interleaved within a load), a fresh server and `architecture_load`: req/s, p50,
//!    p99, p99.9 from the scheduled send time, server CPU per request (utime + stime of
//!    `/proc/PID/stat` over the window), and how the requests fell on the workers.
//! 4. **Model check**: each measured p99 against the model's, with the design's own
//!    measured CPU per request as the overhead and, for the designs whose queues are per
//!    reactor, the measured split of requests over the reactors.
//! 5. **Simulation**: p99 for c = 2…64 and ρ = 0.5…0.95, shared queue against dispatch
//!    policies, fed with the measured costs.
//!
//! Only 127.0.0.1 is used; every step is bounded in time.

mod chart;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use ropewalk_bench::jobs::Dist;
use ropewalk_bench::load::{num_of, str_of, Load};
use ropewalk_bench::procs::{cpu_split, Server};
use ropewalk_bench::report::{self, Table};
use ropewalk_bench::sim::{simulate, Model, Policy};

use chart::{Panel, Series, COLOURS};

/// Every design, in table order.
const DESIGNS: &[&str] = &[
    "one",
    "own",
    "shared",
    "dispatcher",
    "dispatcher-ll",
    "two-stage",
    "threads",
    "pool",
    "tokio-mt",
];

const USAGE: &str = "\
usage: architecture [options]

  --designs LIST      from one,own,shared,dispatcher,dispatcher-ll,two-stage,threads,
                      pool,tokio-mt (default: all)
  --threads N         reactors / pool threads / tokio workers (default 2)
  --workloads LIST    NAME=DIST pairs (default exp=exp:50,tail=bimodal:25:2500:0.01,
                      sleep=sleep:1000; DIST as architecture_load --dist)
  --conns LIST        connection counts (default 64,1000)
  --loads LIST        fractions of the measured capacity (default 0.5,0.7,0.9)
  --duration-ms MS    measured window per case (default 1500)
  --warmup-ms MS      load before the window (default 400)
  --drain-ms MS       longest wait for the window's replies (default 1500)
  --capacity-from D   the design whose closed-loop throughput sets the rates
                      (default tokio-mt)
  --sim-jobs N        jobs per simulated point (default 300000)
  --sim-only          the simulation alone (overhead --overhead-us, default 5)
  --overhead-us US    the server's cost per request for --sim-only
  --svg PATH          also write the chart there
  --quick             a smoke run: exp and tail at 64 connections, loads 0.5,0.9,
                      short windows, fewer simulated jobs and cores (under a minute)
  --seed S            the load's seed (default 1)
  -h, --help          this text
The binaries architecture_server and architecture_load must sit next to this one.";

#[derive(Debug, Clone)]
struct Args {
    designs: Vec<String>,
    threads: usize,
    workloads: Vec<(String, Dist)>,
    conns: Vec<usize>,
    loads: Vec<f64>,
    duration: Duration,
    warmup: Duration,
    drain: Duration,
    capacity_from: String,
    sim_jobs: usize,
    sim_only: bool,
    overhead_us: f64,
    svg: Option<PathBuf>,
    quick: bool,
    seed: u64,
    sim_cores: Vec<usize>,
    sim_loads: Vec<f64>,
}

fn list<T: std::str::FromStr>(v: &str) -> Result<Vec<T>, String>
where
    T::Err: std::fmt::Display,
{
    v.split(',')
        .map(|s| s.trim().parse::<T>().map_err(|e| format!("{s}: {e}")))
        .collect()
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        designs: DESIGNS.iter().map(|s| s.to_string()).collect(),
        threads: 2,
        workloads: vec![
            ("exp".into(), Dist::Exp(50.0)),
            (
                "tail".into(),
                Dist::Bimodal {
                    short: 25.0,
                    long: 2500.0,
                    p_long: 0.01,
                },
            ),
            ("sleep".into(), Dist::Sleep(1000.0)),
        ],
        conns: vec![64, 1000],
        loads: vec![0.5, 0.7, 0.9],
        duration: Duration::from_millis(1500),
        warmup: Duration::from_millis(400),
        drain: Duration::from_millis(1500),
        capacity_from: "tokio-mt".into(),
        sim_jobs: 300_000,
        sim_only: false,
        overhead_us: 5.0,
        svg: None,
        quick: false,
        seed: 1,
        sim_cores: vec![2, 4, 8, 16, 64],
        sim_loads: vec![0.5, 0.7, 0.8, 0.9, 0.95],
    };
    let mut explicit = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        let ms = |v: String| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|e| format!("{v}: {e}"))
        };
        match arg.as_str() {
            "--designs" => a.designs = list(&value()?)?,
            "--threads" => a.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--workloads" => {
                a.workloads = value()?
                    .split(',')
                    .map(|w| {
                        let (name, dist) = w.split_once('=').ok_or(format!("{w}: NAME=DIST"))?;
                        Ok((name.to_string(), dist.parse()?))
                    })
                    .collect::<Result<_, String>>()?
            }
            "--conns" => a.conns = list(&value()?)?,
            "--loads" => a.loads = list(&value()?)?,
            "--duration-ms" => a.duration = ms(value()?)?,
            "--warmup-ms" => a.warmup = ms(value()?)?,
            "--drain-ms" => a.drain = ms(value()?)?,
            "--capacity-from" => a.capacity_from = value()?,
            "--sim-jobs" => {
                a.sim_jobs = value()?.parse().map_err(|e| format!("--sim-jobs: {e}"))?
            }
            "--sim-only" => a.sim_only = true,
            "--overhead-us" => {
                a.overhead_us = value()?
                    .parse()
                    .map_err(|e| format!("--overhead-us: {e}"))?
            }
            "--svg" => a.svg = Some(value()?.into()),
            "--quick" => a.quick = true,
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
        explicit.push(arg);
    }
    if a.quick {
        let given = |f: &str| explicit.iter().any(|e| e == f);
        if !given("--workloads") {
            a.workloads.truncate(2);
        }
        if !given("--conns") {
            a.conns = vec![64];
        }
        if !given("--loads") {
            a.loads = vec![0.5, 0.9];
        }
        if !given("--duration-ms") {
            a.duration = Duration::from_millis(600);
        }
        if !given("--warmup-ms") {
            a.warmup = Duration::from_millis(200);
        }
        if !given("--drain-ms") {
            a.drain = Duration::from_millis(500);
        }
        if !given("--sim-jobs") {
            a.sim_jobs = 60_000;
        }
        a.sim_cores = vec![2, 16];
        a.sim_loads = vec![0.5, 0.9];
    }
    for d in &a.designs {
        if !DESIGNS.contains(&d.as_str()) {
            return Err(format!("unknown design {d}"));
        }
    }
    if a.threads == 0 || a.workloads.is_empty() || a.conns.is_empty() || a.loads.is_empty() {
        return Err("--threads, --workloads, --conns and --loads may not be empty".into());
    }
    Ok(a)
}

struct Paths {
    server: PathBuf,
    load: PathBuf,
}

/// One measured case.
#[derive(Debug, Clone, Default)]
struct Measured {
    offered: f64,
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    unanswered: f64,
    cpu_us_per_req: f64,
    late_p99: f64,
    /// Requests per worker index, as the replies said.
    workers: Vec<(u16, f64)>,
}

impl Measured {
    fn split(&self) -> Vec<f64> {
        let total: f64 = self.workers.iter().map(|w| w.1).sum();
        self.workers.iter().map(|w| w.1 / total.max(1.0)).collect()
    }
}

#[allow(clippy::too_many_arguments)]
fn measure(
    paths: &Paths,
    args: &Args,
    design: &str,
    rpu: f64,
    dist: Dist,
    conns: usize,
    rate: f64,
    window: (Duration, Duration),
) -> Result<Measured, String> {
    let mut cmd = Command::new(&paths.server);
    cmd.args(["--impl", design])
        .args(["--threads", &args.threads.to_string()])
        .args(["--rounds-per-us", &format!("{rpu:.4}")]);
    let server = Server::start(design, cmd)?;
    let load_args = vec![
        "--connections".to_string(),
        conns.to_string(),
        "--rate".into(),
        format!("{rate:.1}"),
        "--dist".into(),
        dist.to_string(),
        "--warmup-ms".into(),
        window.0.as_millis().to_string(),
        "--duration-ms".into(),
        window.1.as_millis().to_string(),
        "--drain-ms".into(),
        args.drain.as_millis().to_string(),
        "--seed".into(),
        args.seed.to_string(),
    ];
    let deadline = window.0 + window.1 + args.drain + Duration::from_secs(30);
    let mut gen = Load::start(&paths.load, &server.addr, &load_args, deadline)?;
    gen.expect("connected")?;
    gen.expect("start")?;
    let c0 = cpu_split(server.pid()).ok_or("cannot read the server's CPU time")?;
    gen.expect("end")?;
    let c1 = cpu_split(server.pid()).ok_or("cannot read the server's CPU time")?;
    let rec = gen.expect("result")?;
    let rps = num_of(&rec, "rps");
    let served = rps * window.1.as_secs_f64();
    let workers = str_of(&rec, "workers")
        .split(',')
        .filter_map(|w| {
            let (i, n) = w.split_once(':')?;
            Some((i.parse().ok()?, n.parse().ok()?))
        })
        .collect();
    Ok(Measured {
        offered: num_of(&rec, "offered_rps"),
        rps,
        p50: num_of(&rec, "p50_us"),
        p99: num_of(&rec, "p99_us"),
        p999: num_of(&rec, "p999_us"),
        unanswered: num_of(&rec, "unanswered"),
        cpu_us_per_req: (c1.0 + c1.1 - c0.0 - c0.1) * 1e6 / served.max(1.0),
        late_p99: num_of(&rec, "late_p99_us"),
        workers,
    })
}

/// The fastest of several timings of `cpu_job`, as rounds per µs.
fn calibrate() -> f64 {
    let data = [b'x'; 64];
    let probe = 20_000u32;
    let best = (0..9)
        .map(|_| {
            let t0 = std::time::Instant::now();
            ropewalk_bench::work::cpu_job(&data, probe);
            t0.elapsed().as_secs_f64() * 1e6
        })
        .fold(f64::INFINITY, f64::min);
    f64::from(probe) / best
}

/// A latency for a table: `-1` (a percentile among unanswered requests) shows as `> drain`.
fn lat(x: f64, drain: Duration) -> String {
    if x < 0.0 {
        format!("> {} ms", drain.as_millis())
    } else {
        report::num(x, 0)
    }
}

/// The model of `design` at N = `c`: its policy and server count.
fn design_policy(
    design: &str,
    c: usize,
    conns: usize,
    dist: Dist,
    split: Vec<f64>,
) -> (Policy, usize) {
    match design {
        "one" => (Policy::Shared, 1),
        // Every connection stays on the reactor that took it: each reactor is its own queue.
        "own" | "shared" | "dispatcher" | "dispatcher-ll" if split.len() == 1 => {
            (Policy::Shared, 1)
        }
        "own" | "shared" | "dispatcher" | "dispatcher-ll" if split.len() > 1 => {
            (Policy::Split(split), c)
        }
        "own" => (Policy::ConnHash { conns }, c),
        "shared" | "dispatcher" | "dispatcher-ll" => (Policy::RoundRobin, c),
        // A thread per connection: while jobs sleep they need no core, so each connection
        // is its own server; spinning, the threads share the c cores.
        "threads" if matches!(dist, Dist::Sleep(_)) => (Policy::Random, conns),
        "threads" => (Policy::ProcessorSharing, c),
        _ => (Policy::Shared, c),
    }
}

fn main() -> ExitCode {
    let args = match ropewalk_bench::cli::or_usage("architecture", USAGE, parse_args()) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut notes: Vec<String> = Vec::new();
    let mut panels = Vec::new();
    let c = args.threads;

    // Per workload: the overhead per request fed to the simulation.
    let mut sim_overhead: BTreeMap<String, f64> = BTreeMap::new();
    if args.sim_only {
        for (w, _) in &args.workloads {
            sim_overhead.insert(w.clone(), args.overhead_us);
        }
        println!(
            "Simulation only: overhead {} µs per request added to every job.\n",
            args.overhead_us
        );
    } else {
        let Some([server, load]) = ropewalk_bench::procs::sibling_bins(
            "architecture",
            "run-architecture.sh",
            ["architecture_server", "architecture_load"],
        ) else {
            return ExitCode::FAILURE;
        };
        let paths = Paths { server, load };
        if let Err(e) = experiment(&args, &paths, &mut sim_overhead, &mut panels, &mut notes) {
            eprintln!("architecture: {e}");
            return ExitCode::FAILURE;
        }
    }

    // The simulation, fed with the measured costs.
    simulation(&args, &sim_overhead, &mut panels);

    println!(
        "N = {c} (reactors, pool threads, tokio workers); this machine has {cores} CPU(s), and \
         the load generator (two threads) runs on it too, so the servers have less than N \
         cores. Latencies are from each request's scheduled send time (open loop, Poisson)."
    );
    for n in &notes {
        println!("note: {n}");
    }
    if let Some(path) = &args.svg {
        let cols = if panels.len() % 3 == 0 { 3 } else { 2 };
        let svg = chart::svg(
            "Architecture experiment: p99 response time",
            &format!(
                "measured (solid, dots) and modelled (dashed) at N = {c}; simulated shared queue vs dispatch at more cores"
            ),
            &panels,
            cols,
        );
        if let Err(e) = std::fs::write(path, svg) {
            eprintln!("architecture: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn experiment(
    args: &Args,
    paths: &Paths,
    sim_overhead: &mut BTreeMap<String, f64>,
    panels: &mut Vec<Panel>,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let c = args.threads;
    let rpu = calibrate();
    let designs: Vec<&str> = args.designs.iter().map(String::as_str).collect();
    let short = (
        args.warmup.min(Duration::from_millis(300)),
        args.duration.min(Duration::from_millis(1000)),
    );

    // The path's own latency: no work, light load, one reactor.
    eprintln!("architecture: calibration");
    let zero = measure(paths, args, "one", rpu, Dist::Fixed(0.0), 64, 2000.0, short)?;
    let path_us = (zero.p50 - zero.cpu_us_per_req).max(0.0);
    let mut t = Table::new(["calibration", "value"]);
    t.row([
        "cpu_job rounds per µs (fastest of 9 probes)".to_string(),
        format!("{rpu:.3}"),
    ]);
    t.row([
        "no-work p50 at 2,000 req/s, one reactor, µs".to_string(),
        report::num(zero.p50, 1),
    ]);
    t.row([
        "no-work server CPU per request, µs".to_string(),
        report::num(zero.cpu_us_per_req, 1),
    ]);
    t.row([
        "path latency (p50 − server CPU), added to the model, µs".to_string(),
        report::num(path_us, 1),
    ]);
    println!("{t}");

    // Capacity per workload.
    let mut capacity = BTreeMap::new();
    let mut t = Table::new([
        "workload",
        "job",
        "mean µs",
        "SCV",
        "capacity req/s",
        "from",
        "server CPU µs/req",
    ]);
    for (w, dist) in &args.workloads {
        eprintln!("architecture: capacity, {w}");
        let m = measure(paths, args, &args.capacity_from, rpu, *dist, 64, 0.0, short)?;
        capacity.insert(w.clone(), m.rps);
        t.row([
            w.clone(),
            dist.to_string(),
            report::num(dist.mean(), 1),
            report::num(dist.scv(), 1),
            report::num(m.rps, 0),
            format!("{}, closed loop, 64 conns", args.capacity_from),
            report::num(m.cpu_us_per_req, 1),
        ]);
    }
    println!(
        "Capacity (the sweep's loads are fractions of it, the same rates for every design):\n\n{t}"
    );

    // The sweep.
    let mut results: BTreeMap<(usize, usize, usize, String), Measured> = BTreeMap::new();
    for (wi, (w, dist)) in args.workloads.iter().enumerate() {
        for (ci, &conns) in args.conns.iter().enumerate() {
            for (li, &f) in args.loads.iter().enumerate() {
                let rate = f * capacity[w];
                for d in &designs {
                    eprintln!("architecture: {w}, {conns} conns, load {f}, {d}");
                    match measure(
                        paths,
                        args,
                        d,
                        rpu,
                        *dist,
                        conns,
                        rate,
                        (args.warmup, args.duration),
                    ) {
                        Ok(m) => {
                            results.insert((wi, ci, li, d.to_string()), m);
                        }
                        Err(e) => notes.push(format!("{w}, {conns} conns, load {f}, {d}: {e}")),
                    }
                }
            }
        }
    }
    let mut t = Table::new([
        "workload",
        "conns",
        "load",
        "design",
        "offered req/s",
        "req/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "unanswered",
        "server CPU µs/req",
        "split over workers",
        "sender late p99 µs",
    ]);
    for (wi, (w, _)) in args.workloads.iter().enumerate() {
        for (ci, &conns) in args.conns.iter().enumerate() {
            for (li, &f) in args.loads.iter().enumerate() {
                for d in &designs {
                    let Some(m) = results.get(&(wi, ci, li, d.to_string())) else {
                        continue;
                    };
                    let split: Vec<String> = m
                        .split()
                        .iter()
                        .map(|p| format!("{:.0}", p * 100.0))
                        .collect();
                    let split = if split.len() > 4 {
                        format!("{} workers", split.len())
                    } else {
                        split.join("/")
                    };
                    t.row([
                        w.clone(),
                        conns.to_string(),
                        format!("{f:.2}"),
                        d.to_string(),
                        report::num(m.offered, 0),
                        report::num(m.rps, 0),
                        lat(m.p50, args.drain),
                        lat(m.p99, args.drain),
                        lat(m.p999, args.drain),
                        report::num(m.unanswered, 0),
                        report::num(m.cpu_us_per_req, 1),
                        split,
                        report::num(m.late_p99, 0),
                    ]);
                }
            }
        }
    }
    println!(
        "Measurements (load: the offered rate as a fraction of the capacity above; \
         latencies from the scheduled send time; `> D ms`: that percentile fell among \
         requests not answered within the drain; split: % of requests per worker):\n\n{t}"
    );

    // The model check.
    let mut t = Table::new([
        "workload",
        "conns",
        "load",
        "design",
        "model",
        "overhead µs",
        "measured p99 µs",
        "model p99 µs",
        "model ÷ measured",
        "capacity-scaled model p99 µs",
        "scaled ÷ measured",
    ]);
    let mut errors: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let palette: BTreeMap<&str, &'static str> = DESIGNS
        .iter()
        .enumerate()
        .map(|(i, d)| (*d, COLOURS[i % COLOURS.len()]))
        .collect();
    for (wi, (w, dist)) in args.workloads.iter().enumerate() {
        let job_cpu = if matches!(dist, Dist::Sleep(_)) {
            0.0
        } else {
            dist.mean()
        };
        let mut overheads = Vec::new();
        for (ci, &conns) in args.conns.iter().enumerate() {
            let mut series = Vec::new();
            for d in &designs {
                // The design's own cost per request, from its lightest load.
                let Some(first) = results.get(&(wi, ci, 0, d.to_string())) else {
                    continue;
                };
                let overhead = (first.cpu_us_per_req - job_cpu).max(0.0);
                overheads.push(overhead);
                let (mut meas, mut pred) = (Vec::new(), Vec::new());
                for (li, &f) in args.loads.iter().enumerate() {
                    let Some(m) = results.get(&(wi, ci, li, d.to_string())) else {
                        continue;
                    };
                    let (policy, servers) = design_policy(d, c, conns, *dist, m.split());
                    let label = if servers == 1 {
                        "one queue, one server (M/G/1)".to_string()
                    } else if policy == Policy::Shared {
                        format!("shared queue (M/G/{servers})")
                    } else {
                        policy.to_string()
                    };
                    let mut model = Model {
                        servers,
                        rate: m.offered / 1e6,
                        service: *dist,
                        overhead,
                        scale: 1.0,
                        policy,
                        jobs: args.sim_jobs,
                        seed: 1,
                    };
                    // An overloaded model has no steady state: its figure would only say
                    // how long the simulation ran.
                    // The busiest server's utilisation (a measured split can overload one).
                    let busiest = |m: &Model| match &m.policy {
                        Policy::Split(p) => {
                            m.load() * m.servers as f64 * p.iter().copied().fold(0.0, f64::max)
                        }
                        _ => m.load(),
                    };
                    let raw = if busiest(&model) < 1.0 {
                        simulate(&model).p99 + path_us
                    } else {
                        f64::INFINITY
                    };
                    // Scaled so the model's capacity at N is the measured one (the load
                    // generator and the machine's other tenants take part of the cores).
                    let cap_model = c as f64 / (dist.mean() + overhead);
                    model.scale = (cap_model * 1e6 / capacity[w]).max(1.0);
                    let scaled = if busiest(&model) < 1.0 {
                        simulate(&model).p99 + path_us
                    } else {
                        f64::INFINITY
                    };
                    let show = |x: f64| {
                        if x.is_finite() && x < 1e9 {
                            report::num(x, 0)
                        } else {
                            "overload".into()
                        }
                    };
                    let ratio = |x: f64| {
                        if m.p99 > 0.0 && x.is_finite() {
                            report::ratio2(x / m.p99)
                        } else {
                            "-".into()
                        }
                    };
                    if m.p99 > 0.0 && scaled.is_finite() {
                        errors
                            .entry(d.to_string())
                            .or_default()
                            .push((scaled / m.p99).ln().abs());
                    }
                    t.row([
                        w.clone(),
                        conns.to_string(),
                        format!("{f:.2}"),
                        d.to_string(),
                        label,
                        report::num(overhead, 1),
                        lat(m.p99, args.drain),
                        show(raw),
                        ratio(raw),
                        show(scaled),
                        ratio(scaled),
                    ]);
                    meas.push((f, if m.p99 > 0.0 { m.p99 } else { f64::NAN }));
                    pred.push((f, if scaled < 1e9 { scaled } else { f64::NAN }));
                }
                series.push(Series {
                    label: d.to_string(),
                    colour: palette[d],
                    dashed: false,
                    points: meas,
                });
                series.push(Series {
                    label: d.to_string(),
                    colour: palette[d],
                    dashed: true,
                    points: pred,
                });
            }
            panels.push(Panel {
                title: format!("{w}, {conns} conns, N = {c}: measured vs model"),
                x_label: "offered load (fraction of measured capacity)".into(),
                y_label: "p99 response".into(),
                y_is_time: true,
                series,
            });
        }
        overheads.sort_by(f64::total_cmp);
        sim_overhead.insert(
            w.clone(),
            overheads.get(overheads.len() / 2).copied().unwrap_or(5.0),
        );
    }
    println!(
        "Model check at N = {c}: each measured p99 against the model of the design (`split`: \
         the reactors' measured shares of the requests, each reactor its own FIFO queue; \
         `shared queue`: M/G/c; `processor sharing`: threads on c cores), with the design's \
         server CPU per request at the lightest load as the overhead added to every job and \
         the path latency added to every response. The capacity-scaled model stretches \
         every service time so that its capacity equals the measured one (the load \
         generator shares the cores).\n\n{t}"
    );
    let mut t = Table::new([
        "design",
        "cases",
        "median |ln(scaled ÷ measured)|",
        "typical factor",
    ]);
    for (d, e) in &errors {
        let med = report::median_of(e.clone());
        t.row([
            d.clone(),
            e.len().to_string(),
            format!("{med:.2}"),
            report::ratio2(med.exp()),
        ]);
    }
    println!("How far the capacity-scaled model is from the measurement, per design (1.00× is exact):\n\n{t}");
    Ok(())
}

fn simulation(args: &Args, overhead: &BTreeMap<String, f64>, panels: &mut Vec<Panel>) {
    let policies = |dist: Dist| {
        let mut p = vec![
            Policy::Shared,
            Policy::LeastLoaded,
            Policy::RoundRobin,
            Policy::Random,
            Policy::ConnHash { conns: 64 },
            Policy::ConnHash { conns: 1000 },
        ];
        if !matches!(dist, Dist::Sleep(_)) {
            p.push(Policy::ProcessorSharing);
        }
        p
    };
    for (w, dist) in &args.workloads {
        let o = overhead.get(w).copied().unwrap_or(args.overhead_us);
        let mean = dist.mean() + o;
        let mut headers = vec!["c".to_string(), "policy".to_string()];
        headers.extend(args.sim_loads.iter().map(|r| format!("p99 µs at ρ {r}")));
        headers.push(format!(
            "÷ shared at ρ {}",
            args.sim_loads[args.sim_loads.len() - 1]
        ));
        let mut t = Table::new(headers);
        let pol = policies(*dist);
        let mut curves: BTreeMap<(usize, usize), Vec<(f64, f64)>> = BTreeMap::new();
        for &c in &args.sim_cores {
            eprintln!("architecture: simulating {w}, c = {c}");
            let mut shared_last = f64::NAN;
            for (pi, p) in pol.iter().enumerate() {
                let mut row = vec![c.to_string(), p.to_string()];
                let mut last = f64::NAN;
                for &rho in &args.sim_loads {
                    let mut m = Model::at_load(c, rho, *dist, p.clone()).jobs(args.sim_jobs);
                    m.overhead = o;
                    m.rate = rho * c as f64 / mean;
                    let out = simulate(&m);
                    row.push(report::num(out.p99, 0));
                    curves
                        .entry((c, pi))
                        .or_default()
                        .push((rho, out.p99 / mean));
                    last = out.p99;
                }
                if pi == 0 {
                    shared_last = last;
                }
                row.push(report::ratio2(last / shared_last));
                t.row(row);
            }
        }
        println!(
            "Simulation, {w} ({dist}, plus {o:.1} µs per request: E[S] = {mean:.1} µs; \
             {} jobs per point, seed 1). p99 response time in µs; `hash of K conns`: K \
             connections placed at random on the c servers, requests spread evenly over \
             the connections (SO_REUSEPORT; a shared accept queue places them unevenly \
             too):\n\n{t}",
            args.sim_jobs
        );
        for &c in args
            .sim_cores
            .iter()
            .filter(|&&c| c == 2 || c == 16 || c == 64)
        {
            let series = pol
                .iter()
                .enumerate()
                .map(|(pi, p)| Series {
                    label: p.to_string(),
                    colour: COLOURS[pi % COLOURS.len()],
                    dashed: true,
                    points: curves.get(&(c, pi)).cloned().unwrap_or_default(),
                })
                .collect();
            panels.push(Panel {
                title: format!("simulated: {w}, c = {c}"),
                x_label: "utilisation ρ".into(),
                y_label: "p99 ÷ mean service time".into(),
                y_is_time: false,
                series,
            });
        }
    }
}
