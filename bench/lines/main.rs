//! The LineReceiver benchmark: Twisted's own line-parsing benchmarks
//! (`benchmarks/test_linereceiver.py` in Twisted's repository), run on ropewalk's
//! `LineReceiver` and `LineOnlyReceiver` here and on Twisted's by
//! `twisted/line_bench.py` in the same run, side by side.
//!
//! ```sh
//! cd bench && cargo run --release --bin lines
//! cargo run --release --bin lines -- --help
//! ```
//!
//! One op delivers `((b"abcde" * 10) + b"\r\n") * 1000` (1000 lines of 50 bytes, 52,000
//! bytes) to one connected receiver, in `data_received` calls of CHUNK bytes each (the
//! last one shorter), as a connection hands it what each read returned. The receiver is
//! made and connected to a `StringTransport` once per scenario, as in Twisted's benchmark,
//! and its handler does nothing with a line.

use std::hint::black_box;
use std::process::ExitCode;

use ropewalk_bench::alloc::{self, CountingAlloc};
use ropewalk_bench::cli;
use ropewalk_bench::report::{self, Table};
use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::testing::StringTransport;
use ropewalk_reactor::Protocol;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// The line of Twisted's benchmark, without its delimiter.
const LINE: &[u8] = b"abcdeabcdeabcdeabcdeabcdeabcdeabcdeabcdeabcdeabcde";
/// Lines per op.
const LINES: usize = 1000;

/// `((b"abcde" * 10) + b"\r\n") * 1000`.
fn payload() -> Vec<u8> {
    let mut line = LINE.to_vec();
    line.extend_from_slice(b"\r\n");
    line.repeat(LINES)
}

/// Twisted's `deliverData`: `data` in `data_received` calls of `chunk` bytes.
fn deliver(p: &mut impl Protocol, data: &[u8], chunk: usize) {
    for c in data.chunks(chunk) {
        if let Err(f) = p.data_received(black_box(c)) {
            panic!("data_received failed: {f}");
        }
    }
}

/// The timed handler: `lineReceived` that does nothing.
struct Nothing;

impl LineHandler for Nothing {
    fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> {
        Ok(())
    }
}

impl LineOnlyHandler for Nothing {
    fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) -> Result<(), Failure> {
        Ok(())
    }
}

/// The checking handler: counts the lines and the ones that are not [`LINE`].
#[derive(Debug, Default, Clone, Copy)]
struct Check {
    lines: usize,
    wrong: usize,
}

impl Check {
    fn line(&mut self, line: &[u8]) {
        self.lines += 1;
        if line != LINE {
            self.wrong += 1;
        }
    }

    fn verdict(&self, ops: usize) -> Result<(), String> {
        if self.lines == ops * LINES && self.wrong == 0 {
            Ok(())
        } else {
            Err(format!(
                "{} lines ({} wrong) after {ops} ops, expected {}",
                self.lines,
                self.wrong,
                ops * LINES
            ))
        }
    }
}

impl LineHandler for Check {
    fn line_received(&mut self, line: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> {
        self.line(line);
        Ok(())
    }
}

impl LineOnlyHandler for Check {
    fn line_received(&mut self, line: &[u8], _: &mut LineOnlyControl<'_>) -> Result<(), Failure> {
        self.line(line);
        Ok(())
    }
}

/// Which receiver a scenario drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Line,
    LineOnly,
}

/// One scenario: a receiver and a chunk size.
#[derive(Debug, Clone)]
struct Scenario {
    name: String,
    kind: Kind,
    chunk: usize,
}

/// Chunk sizes of Twisted's benchmark, then 1 byte (not in Twisted's file).
const CHUNKS: [usize; 5] = [16, 64, 256, 1024, 1];

fn scenarios() -> Vec<Scenario> {
    let mut out = Vec::new();
    for (kind, prefix) in [(Kind::Line, "line_receiver"), (Kind::LineOnly, "line_only")] {
        for chunk in CHUNKS {
            out.push(Scenario {
                name: format!("{prefix}_{chunk}"),
                kind,
                chunk,
            });
        }
    }
    out
}

impl Scenario {
    /// The op: a connected receiver with a do-nothing handler, fed the payload.
    fn op(&self) -> Box<dyn FnMut()> {
        let data = payload();
        let chunk = self.chunk;
        match self.kind {
            Kind::Line => {
                let mut p = LineReceiver::new(Nothing);
                let _t = StringTransport::connect(&mut p);
                Box::new(move || deliver(&mut p, &data, chunk))
            }
            Kind::LineOnly => {
                let mut p = LineOnlyReceiver::new(Nothing);
                let _t = StringTransport::connect(&mut p);
                Box::new(move || deliver(&mut p, &data, chunk))
            }
        }
    }

    /// Three ops on a fresh receiver with a counting handler: 3000 lines, each the right
    /// one, nothing left over, nothing written, still connected.
    fn check(&self) -> Result<(), String> {
        let data = payload();
        let ops = 3;
        let (check, t, rest) = match self.kind {
            Kind::Line => {
                let mut p = LineReceiver::new(Check::default());
                let t = StringTransport::connect(&mut p);
                for _ in 0..ops {
                    deliver(&mut p, &data, self.chunk);
                }
                let rest = p.clear_line_buffer().len();
                let h = p.handler();
                (*h, t, rest)
            }
            Kind::LineOnly => {
                let mut p = LineOnlyReceiver::new(Check::default());
                let t = StringTransport::connect(&mut p);
                for _ in 0..ops {
                    deliver(&mut p, &data, self.chunk);
                }
                let h = p.handler();
                (*h, t, 0)
            }
        };
        check.verdict(ops)?;
        if rest != 0 || !t.value().is_empty() || t.is_disconnecting() {
            return Err(format!(
                "{rest} bytes left over, {} written, disconnecting {}",
                t.value().len(),
                t.is_disconnecting()
            ));
        }
        Ok(())
    }
}

const USAGE: &str = "\
usage: lines [OPTIONS] [SCENARIO...]

Runs Twisted's LineReceiver benchmark scenarios on ropewalk, then on Twisted (through
twisted/line_bench.py), and prints ns/op side by side. One op delivers 1000 lines of
50 bytes (52,000 bytes) in chunks of the size in the scenario's name. SCENARIO filters
by substring (line_only, line_receiver_16, _1024, ...).

options:
  --rounds N        rounds, each timing every scenario on ropewalk and then on Twisted;
                    the table gives medians over the rounds (default 3)
  --runs N          timed runs per scenario in a round; their median counts (default 7)
  --run-ms MS       length of one timed run (default 100)
  --warmup-ms MS    warm-up per scenario (default 100)
  --no-twisted      measure ropewalk only
  --list            list the scenarios and exit
  --exact N         run each selected scenario exactly N times, untimed, and exit: for
                    counting instructions per op under a profiler, e.g.
                    valgrind --tool=callgrind target/release/lines --exact 200 line_only_16
  -h, --help        this text

environment: PYTHON, the interpreter for the Twisted side (default python3)";

/// A scenario is selected by a filter that is its name, or a substring of it; a filter
/// ending in a chunk size matches that size only (`_1` is not `_16`).
fn selected(s: &Scenario, filters: &[String]) -> bool {
    filters.is_empty()
        || filters.iter().any(|f| {
            if f.ends_with(|c: char| c.is_ascii_digit()) {
                s.name.ends_with(f.as_str())
            } else {
                s.name.contains(f.as_str())
            }
        })
}

fn main() -> ExitCode {
    let args = match cli::parse_or_usage("lines", USAGE) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let selected = match cli::select(
        scenarios,
        args.list,
        |s| s.name.as_str(),
        |s| selected(s, &args.filters),
    ) {
        Ok(selected) => selected,
        Err(code) => return code,
    };
    assert!(
        alloc::installed(),
        "the counting allocator is not installed"
    );

    if let Some(n) = args.exact {
        for s in &selected {
            let mut op = s.op();
            for _ in 0..n {
                op();
            }
        }
        return ExitCode::SUCCESS;
    }

    for s in &selected {
        if let Err(e) = s.check() {
            eprintln!("lines: scenario {} gave a wrong result: {e}", s.name);
            return ExitCode::FAILURE;
        }
    }
    // Counted on a receiver that has already run once (its buffers grown), as a timed
    // run's receiver is after warm-up.
    let allocs: Vec<alloc::AllocStats> = selected
        .iter()
        .map(|s| {
            let mut op = s.op();
            op();
            alloc::count(100, op)
        })
        .collect();
    let names: Vec<&str> = selected.iter().map(|s| s.name.as_str()).collect();
    let rounds = cli::alternate(&args, "line_bench.py", &names, |round| {
        selected
            .iter()
            .map(|s| cli::time_scenario(&args, round, &s.name, s.op()))
            .collect()
    });

    let mut table = Table::new([
        "scenario",
        "ropewalk ns/op",
        "Twisted ns/op",
        "ratio (Twisted/ropewalk)",
        "rounds' ratios",
        "ratio of fastest runs",
        "ropewalk ns/line",
        "ropewalk MB/s",
        "ropewalk allocs/op",
    ]);
    for (i, (s, allocs)) in selected.iter().zip(&allocs).enumerate() {
        let sum = rounds.summary(i, &s.name);
        let bytes = ((LINE.len() + 2) * LINES) as f64;
        table.row([
            s.name.clone(),
            report::ns(sum.ours_ns),
            sum.theirs_ns.map_or_else(|| "-".to_string(), report::ns),
            report::ratio(sum.ratio),
            sum.ratio_range_text(),
            report::ratio(sum.best_ratio),
            report::ns(sum.ours_ns / LINES as f64),
            format!("{:.0}", bytes / sum.ours_ns * 1e3),
            format!("{}", allocs.allocs_per_op),
        ]);
    }
    let twisted = rounds.twisted.as_ref().and_then(|t| t.first());

    println!();
    println!("{table}");
    cli::print_footer(&args, twisted);
    ExitCode::SUCCESS
}
