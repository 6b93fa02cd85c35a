//! A plain [`Instant`] timing harness: warm up, calibrate, then several timed runs of `N`
//! iterations each; the result is the median time per iteration.

use std::time::{Duration, Instant};

/// How long to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Warm-up time per scenario; it also calibrates the iteration count.
    pub warmup: Duration,
    /// Target length of one timed run.
    pub run: Duration,
    /// Number of timed runs; the median of them is reported.
    pub runs: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            warmup: Duration::from_millis(100),
            run: Duration::from_millis(100),
            runs: 7,
        }
    }
}

/// The timing of one scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// Median over the runs, in nanoseconds per iteration.
    pub median_ns: f64,
    /// Fastest run, in nanoseconds per iteration.
    pub min_ns: f64,
    /// Slowest run, in nanoseconds per iteration.
    pub max_ns: f64,
    /// Iterations in each timed run.
    pub iters: u64,
    /// Number of timed runs.
    pub runs: usize,
}

fn run_n(n: u64, op: &mut impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        op();
    }
    start.elapsed()
}

/// Times `op` as [`Config`] says. Wrap what `op` computes in [`std::hint::black_box`] so
/// the optimiser cannot drop it.
pub fn time(config: &Config, mut op: impl FnMut()) -> Timing {
    // Warm up, doubling the batch until the warm-up time is spent; the last batch gives
    // the first estimate of the time per iteration.
    let warm_start = Instant::now();
    let mut n = 1u64;
    let mut per_iter = loop {
        let took = run_n(n, &mut op);
        if warm_start.elapsed() >= config.warmup || n >= 1 << 40 {
            break took.as_secs_f64() / n as f64;
        }
        n *= 2;
    };
    if per_iter <= 0.0 {
        per_iter = 1e-9;
    }
    let iters = ((config.run.as_secs_f64() / per_iter) as u64).max(1);
    let runs = config.runs.max(1);
    let mut samples: Vec<f64> = (0..runs)
        .map(|_| run_n(iters, &mut op).as_nanos() as f64 / iters as f64)
        .collect();
    samples.sort_by(f64::total_cmp);
    Timing {
        median_ns: median(&samples),
        min_ns: samples[0],
        max_ns: samples[samples.len() - 1],
        iters,
        runs,
    }
}

/// The median of sorted samples (the mean of the middle two for an even count).
pub fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
    }

    #[test]
    fn times_something() {
        let cfg = Config {
            warmup: Duration::from_millis(1),
            run: Duration::from_millis(1),
            runs: 3,
        };
        let t = time(&cfg, || {
            std::hint::black_box(1 + std::hint::black_box(2));
        });
        assert!(t.min_ns <= t.median_ns && t.median_ns <= t.max_ns);
        assert_eq!(t.runs, 3);
    }
}
