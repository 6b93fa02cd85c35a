//! The command line the microbenchmarks share (`deferred`, `lines`): timing options, the
//! Twisted switch, `--list`, `--exact N` and scenario filters.

use std::process::ExitCode;
use std::time::Duration;

use crate::harness::{Config, Timing};

/// What the command line asked for.
#[derive(Debug)]
pub struct Args {
    /// Warm-up, run length and number of runs.
    pub config: Config,
    /// Run the Twisted side too (`--no-twisted` turns it off).
    pub twisted: bool,
    /// `--rounds N`: rounds that each time ropewalk, then Twisted (default 3).
    pub rounds: usize,
    /// `--list`: print the scenario names and exit.
    pub list: bool,
    /// `--exact N`: run each selected scenario N times, untimed, and exit.
    pub exact: Option<u64>,
    /// Scenario filters (the free arguments).
    pub filters: Vec<String>,
}

/// Parses the command line; `Err` with an empty message for `--help`.
///
/// # Errors
///
/// What is wrong with the command line.
pub fn parse(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut out = Args {
        config: Config::default(),
        twisted: true,
        rounds: 3,
        list: false,
        exact: None,
        filters: Vec::new(),
    };
    let mut it = args;
    let num = |it: &mut dyn Iterator<Item = String>, flag: &str| -> Result<u64, String> {
        it.next()
            .and_then(|v| v.parse().ok())
            .ok_or(format!("{flag} needs a number"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => out.config.runs = num(&mut it, &a)? as usize,
            "--run-ms" => out.config.run = Duration::from_millis(num(&mut it, &a)?),
            "--warmup-ms" => out.config.warmup = Duration::from_millis(num(&mut it, &a)?),
            "--no-twisted" => out.twisted = false,
            "--rounds" => out.rounds = (num(&mut it, &a)? as usize).max(1),
            "--list" => out.list = true,
            "--exact" => out.exact = Some(num(&mut it, &a)?),
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => out.filters.push(s.to_string()),
        }
    }
    Ok(out)
}

/// Parses this process's arguments; on `--help` or a mistake prints `usage` (and the
/// mistake, prefixed with `name`) and gives the exit code to return.
///
/// # Errors
///
/// The exit code: success for `--help`, 2 for a mistake.
pub fn parse_or_usage(name: &str, usage: &str) -> Result<Args, ExitCode> {
    or_usage(name, usage, parse(std::env::args().skip(1)))
}

/// A driver's parsed arguments, or (for `Err`) its usage printed and the exit code to
/// return: success for `--help` (an empty message), 2 for a mistake (the message is
/// printed first, prefixed with `name`).
///
/// # Errors
///
/// The exit code, as above.
pub fn or_usage<A>(name: &str, usage: &str, parsed: Result<A, String>) -> Result<A, ExitCode> {
    parsed.map_err(|e| {
        if !e.is_empty() {
            eprintln!("{name}: {e}");
        }
        println!("{usage}");
        if e.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        }
    })
}

/// Whether a scenario called `name` is picked by `filters` (any of them is a substring of
/// it; no filter picks every scenario).
pub fn picked(name: &str, filters: &[String]) -> bool {
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}

/// The scenarios of `all` that `keep` picks; with `list`, or when `keep` picks none,
/// every scenario's name is printed instead and `Err` gives the exit code to return:
/// success for `--list`, 2 for filters that matched nothing.
///
/// # Errors
///
/// The exit code, as above.
pub fn select<S>(
    all: impl Fn() -> Vec<S>,
    list: bool,
    name: fn(&S) -> &str,
    keep: impl Fn(&S) -> bool,
) -> Result<Vec<S>, ExitCode> {
    let chosen: Vec<S> = all().into_iter().filter(|s| keep(s)).collect();
    if !list && !chosen.is_empty() {
        return Ok(chosen);
    }
    for s in all() {
        println!("{}", name(&s));
    }
    Err(if list {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Runs the Twisted side of a microbenchmark (`bench/twisted/SCRIPT`) on the selected
/// scenarios with the same timing options; `None` (and a note on stderr) when Twisted is
/// off or unavailable.
pub fn run_twisted(args: &Args, script: &str, names: &[&str]) -> Option<crate::peer::PeerOutput> {
    if !args.twisted {
        return None;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("twisted")
        .join(script);
    let peer_args = vec![
        "--runs".to_string(),
        args.config.runs.to_string(),
        "--run-ms".to_string(),
        args.config.run.as_millis().to_string(),
        "--warmup-ms".to_string(),
        args.config.warmup.as_millis().to_string(),
        "--only".to_string(),
        names.join(","),
    ];
    match crate::peer::run(&crate::peer::python(), &script, &peer_args) {
        Ok(out) => Some(out),
        Err(e) => {
            eprintln!("Twisted unavailable: {e}");
            eprintln!("(install it with `pip install twisted`, or set PYTHON)");
            None
        }
    }
}

/// Both sides' timings, round by round: `ours[round][scenario]`, and Twisted's output of
/// each round (`None` when Twisted is off, or failed in any round).
#[derive(Debug)]
pub struct Rounds {
    /// ropewalk's timing of each scenario, in each round.
    pub ours: Vec<Vec<Timing>>,
    /// Twisted's output in each round.
    pub twisted: Option<Vec<crate::peer::PeerOutput>>,
}

/// Runs `args.rounds` rounds, each timing every scenario on ropewalk (`ours`, given the
/// round) and then on Twisted: never both at once, and each round's two sides close in
/// time, so that a change in the machine's other load weighs on both.
pub fn alternate(
    args: &Args,
    script: &str,
    names: &[&str],
    mut ours: impl FnMut(usize) -> Vec<Timing>,
) -> Rounds {
    let mut rounds = Rounds {
        ours: Vec::new(),
        twisted: args.twisted.then(Vec::new),
    };
    for round in 0..args.rounds {
        rounds.ours.push(ours(round));
        if let Some(outputs) = &mut rounds.twisted {
            match run_twisted(args, script, names) {
                Some(out) => outputs.push(out),
                None => rounds.twisted = None,
            }
        }
    }
    rounds
}

/// Times `op` with `args`' settings as scenario `name` of round `round` (counted from
/// 0), and prints the result on stderr.
pub fn time_scenario(args: &Args, round: usize, name: &str, op: impl FnMut()) -> Timing {
    eprint!("round {} ropewalk {name:<24}", round + 1);
    let timing = crate::harness::time(&args.config, op);
    eprintln!(
        " {:>10} ns/op (min {}, max {}; {} runs × {} iterations)",
        crate::report::ns(timing.median_ns),
        crate::report::ns(timing.min_ns),
        crate::report::ns(timing.max_ns),
        timing.runs,
        timing.iters,
    );
    timing
}

/// One scenario over the rounds.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// ropewalk: the median of the rounds' medians.
    pub ours_ns: f64,
    /// Twisted: the median of the rounds' medians.
    pub theirs_ns: Option<f64>,
    /// The median of the rounds' ratios (Twisted / ropewalk); NaN without Twisted.
    pub ratio: f64,
    /// The lowest and highest of the rounds' ratios.
    pub ratio_range: (f64, f64),
    /// Twisted's fastest run over ropewalk's fastest run, over all rounds.
    pub best_ratio: f64,
}

impl Summary {
    /// The rounds' ratios as `lowest–highest`, or `-` without Twisted.
    pub fn ratio_range_text(&self) -> String {
        if self.theirs_ns.is_some() {
            format!(
                "{}–{}",
                crate::report::ratio(self.ratio_range.0),
                crate::report::ratio(self.ratio_range.1)
            )
        } else {
            "-".to_string()
        }
    }
}

impl Rounds {
    /// Scenario `index` (named `name` on the Twisted side), over the rounds.
    pub fn summary(&self, index: usize, name: &str) -> Summary {
        let ours: Vec<&Timing> = self.ours.iter().map(|r| &r[index]).collect();
        let ours_ns = crate::report::median_of(ours.iter().map(|t| t.median_ns).collect());
        let ours_min = ours.iter().map(|t| t.min_ns).fold(f64::INFINITY, f64::min);
        let mut summary = Summary {
            ours_ns,
            theirs_ns: None,
            ratio: f64::NAN,
            ratio_range: (f64::NAN, f64::NAN),
            best_ratio: f64::NAN,
        };
        let Some(twisted) = &self.twisted else {
            return summary;
        };
        let theirs: Option<Vec<f64>> = twisted
            .iter()
            .map(|t| t.ns_per_op.get(name).copied())
            .collect();
        let Some(theirs) = theirs else {
            return summary;
        };
        let ratios: Vec<f64> = theirs
            .iter()
            .zip(&ours)
            .map(|(t, o)| t / o.median_ns)
            .collect();
        summary.theirs_ns = Some(crate::report::median_of(theirs));
        summary.ratio_range = (
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        summary.ratio = crate::report::median_of(ratios);
        let theirs_min = twisted
            .iter()
            .filter_map(|t| match t.results.get(name)?.get("min_ns_per_op") {
                Some(crate::peer::Value::Num(n)) => Some(*n),
                _ => None,
            })
            .fold(f64::INFINITY, f64::min);
        summary.best_ratio = theirs_min / ours_min;
        summary
    }
}

/// The lines under a results table: how ropewalk was timed, and Twisted's versions.
pub fn print_footer(args: &Args, twisted: Option<&crate::peer::PeerOutput>) {
    println!(
        "ropewalk: Rust, {} threads available; {} rounds, each timing ropewalk then Twisted; \
         per round, the median of {} runs of ~{} ms after {} ms warm-up; the table gives the \
         median over the rounds (a ratio: of the rounds' ratios)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.rounds,
        args.config.runs,
        args.config.run.as_millis(),
        args.config.warmup.as_millis()
    );
    match twisted {
        Some(t) => {
            let meta: Vec<String> = t
                .meta
                .iter()
                .filter(|(k, _)| k.as_str() != "kind")
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            println!("Twisted: {}", meta.join(", "));
        }
        None => println!("Twisted: not measured"),
    }
}
