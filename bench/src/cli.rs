//! The command line the microbenchmarks share (`deferred`, `lines`): timing options, the
//! Twisted switch, `--list`, `--exact N` and scenario filters.

use std::process::ExitCode;
use std::time::Duration;

use crate::harness::Config;

/// What the command line asked for.
#[derive(Debug)]
pub struct Args {
    /// Warm-up, run length and number of runs.
    pub config: Config,
    /// Run the Twisted side too (`--no-twisted` turns it off).
    pub twisted: bool,
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

/// The lines under a results table: how ropewalk was timed, and Twisted's versions.
pub fn print_footer(args: &Args, twisted: Option<&crate::peer::PeerOutput>) {
    println!(
        "ropewalk: Rust, {} threads available; median of {} runs of ~{} ms after {} ms warm-up",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
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
