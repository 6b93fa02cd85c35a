//! A discrete-event model of the multi-core server designs: one shared queue (M/G/c)
//! against c queues of one server each (c × M/G/1) behind a dispatcher or a kernel hash,
//! and c cores shared by every job (processor sharing, as thread-per-connection is).
//!
//! Jobs arrive as a Poisson process; a job's service time is drawn from a [`Dist`] plus a
//! fixed overhead (the server's own cost per request), times a scale. Everything is
//! seeded, so a model gives the same figures on every run.
//!
//! # Implementation
//!
//! First come, first served policies need no event list: with one queue, job *n* starts
//! when it arrives or when the first server frees up, whichever is later (servers are
//! taken in arrival order), so a scan over the c "free at" times is exact. With a queue
//! per server, the job goes to one server by the policy and waits for that one.
//! [`Policy::LeastLoaded`] keeps each server's departure times to count the jobs in it
//! when a job arrives. [`Policy::ProcessorSharing`] runs on virtual time: with n jobs in
//! the system each receives `min(1, c/n)` of a core, so all of them gain attained service
//! at the same rate, and a job leaves when the virtual clock reaches its arrival's
//! virtual time plus its service time (a heap of those).
//!
//! The first tenth of the jobs warm the system up and are not counted.
//!
//! # Examples
//!
//! M/M/1 at load 0.5 has a mean wait of ρ/(μ − λ) = 1 service time:
//!
//! ```
//! use ropewalk_bench::jobs::Dist;
//! use ropewalk_bench::sim::{simulate, Model, Policy};
//!
//! let m = Model::at_load(1, 0.5, Dist::Exp(1.0), Policy::Shared).jobs(400_000);
//! let out = simulate(&m);
//! assert!((out.mean_wait - 1.0).abs() < 0.05, "{}", out.mean_wait);
//! ```

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;

use crate::jobs::{Dist, Rng};

/// How jobs reach the c servers.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// One queue for all: any free server takes the next job (M/G/c; a shared request
    /// queue, a thread pool, work stealing).
    Shared,
    /// Each job to a server picked at random (c × M/G/1 with Poisson splitting).
    Random,
    /// Jobs to the servers in turn (a round-robin dispatcher, per job).
    RoundRobin,
    /// Each job to the server with the fewest jobs in it, ties at random (a least-loaded
    /// dispatcher; "join the shortest queue").
    LeastLoaded,
    /// `conns` connections placed on the servers at random when they open (`SO_REUSEPORT`'s
    /// hash), each job on a connection picked at random: a server's share of the load is
    /// its share of the connections, which need not be even.
    ConnHash {
        /// Connections.
        conns: usize,
    },
    /// Server i takes each job with probability `p[i]` (a measured split); c is `p.len()`.
    Split(Vec<f64>),
    /// c cores shared equally by every job in the system (threads scheduled by the OS).
    ProcessorSharing,
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Shared => f.write_str("shared queue (M/G/c)"),
            Policy::Random => f.write_str("random"),
            Policy::RoundRobin => f.write_str("round-robin"),
            Policy::LeastLoaded => f.write_str("least-loaded (JSQ)"),
            Policy::ConnHash { conns } => write!(f, "hash of {conns} conns"),
            Policy::Split(p) => {
                let parts: Vec<String> = p.iter().map(|x| format!("{:.0}%", x * 100.0)).collect();
                write!(f, "split {}", parts.join("/"))
            }
            Policy::ProcessorSharing => f.write_str("processor sharing"),
        }
    }
}

/// One model: servers, arrivals, service times, policy. Times in µs.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Servers (c).
    pub servers: usize,
    /// Arrivals per µs (λ).
    pub rate: f64,
    /// The job's own service time.
    pub service: Dist,
    /// Added to every service time, µs (the server's cost per request).
    pub overhead: f64,
    /// Every service time (job + overhead) is multiplied by this (1: as measured).
    pub scale: f64,
    /// How jobs reach the servers.
    pub policy: Policy,
    /// Jobs simulated (the first tenth not counted).
    pub jobs: usize,
    /// The generator's seed.
    pub seed: u64,
}

impl Model {
    /// c servers at utilisation `rho` (λ = ρ·c / E\[S\]), no overhead, 1,000,000 jobs,
    /// seed 1. For [`Policy::Split`], c is taken from the split.
    pub fn at_load(servers: usize, rho: f64, service: Dist, policy: Policy) -> Model {
        let servers = match &policy {
            Policy::Split(p) => p.len(),
            _ => servers,
        }
        .max(1);
        Model {
            servers,
            rate: rho * servers as f64 / service.mean(),
            service,
            overhead: 0.0,
            scale: 1.0,
            policy,
            jobs: 1_000_000,
            seed: 1,
        }
    }

    /// The same model with `n` jobs.
    pub fn jobs(mut self, n: usize) -> Model {
        self.jobs = n;
        self
    }

    /// The mean service time, overhead and scale included, µs.
    pub fn mean_service(&self) -> f64 {
        (self.service.mean() + self.overhead) * self.scale
    }

    /// Utilisation: λ·E\[S\] / c.
    pub fn load(&self) -> f64 {
        self.rate * self.mean_service() / self.servers as f64
    }
}

/// What a model predicts: waiting and response (sojourn) times of the counted jobs, µs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Mean time in the queue before service starts (for processor sharing: sojourn
    /// minus service).
    pub mean_wait: f64,
    /// Mean response time (wait + service).
    pub mean: f64,
    /// Median response time.
    pub p50: f64,
    /// 99th percentile of the response time.
    pub p99: f64,
    /// 99.9th percentile of the response time.
    pub p999: f64,
    /// Jobs counted.
    pub jobs: usize,
}

/// Runs `model`.
///
/// # Panics
///
/// If `model.servers` is 0 or a split has no servers.
pub fn simulate(model: &Model) -> Outcome {
    assert!(model.servers > 0, "a model needs a server");
    let mut rng = Rng::new(model.seed);
    let warm = model.jobs / 10;
    let mut resp = Vec::with_capacity(model.jobs - warm);
    let mut wait_sum = 0.0;
    let mut push = |i: usize, wait: f64, sojourn: f64| {
        if i >= warm {
            wait_sum += wait;
            resp.push(sojourn);
        }
    };
    let c = model.servers;
    let mut t = 0.0;
    let mut arrivals = (0..model.jobs).map(|_| {
        t += rng.exp(1.0 / model.rate);
        t
    });
    // A second generator for service times and choices, so that the arrivals are the
    // same whatever the policy draws.
    let mut rng2 = Rng::new(model.seed.wrapping_mul(31).wrapping_add(7));
    let service = |r: &mut Rng| (model.service.sample(r) + model.overhead) * model.scale;
    match &model.policy {
        Policy::ProcessorSharing => {
            processor_sharing(c, &mut arrivals, &mut || service(&mut rng2), &mut push);
        }
        Policy::LeastLoaded => {
            let mut in_server: Vec<VecDeque<f64>> = vec![VecDeque::new(); c];
            for (i, a) in arrivals.enumerate() {
                let s = service(&mut rng2);
                let mut best = usize::MAX;
                let mut ties = 0;
                let mut pick = 0;
                for (k, q) in in_server.iter_mut().enumerate() {
                    while q.front().is_some_and(|&d| d <= a) {
                        q.pop_front();
                    }
                    match q.len().cmp(&best) {
                        Ordering::Less => {
                            best = q.len();
                            ties = 1;
                            pick = k;
                        }
                        Ordering::Equal => {
                            ties += 1;
                            if rng2.below(ties) == 0 {
                                pick = k;
                            }
                        }
                        Ordering::Greater => {}
                    }
                }
                let q = &mut in_server[pick];
                let start = q.back().map_or(a, |&d| d.max(a));
                q.push_back(start + s);
                push(i, start - a, start + s - a);
            }
        }
        Policy::Shared => {
            let mut free = vec![0.0f64; c];
            for (i, a) in arrivals.enumerate() {
                let s = service(&mut rng2);
                let (k, _) = free
                    .iter()
                    .enumerate()
                    .min_by(|x, y| x.1.total_cmp(y.1))
                    .expect("a server");
                let start = free[k].max(a);
                free[k] = start + s;
                push(i, start - a, start + s - a);
            }
        }
        policy => {
            // One queue per server; the policy only picks the server.
            let mut place = Rng::new(model.seed ^ 0x00c0_ffee);
            let conn_server: Vec<usize> = match policy {
                Policy::ConnHash { conns } => {
                    (0..(*conns).max(1)).map(|_| place.below(c)).collect()
                }
                _ => Vec::new(),
            };
            let cumulative: Vec<f64> = match policy {
                Policy::Split(p) => {
                    let total: f64 = p.iter().sum();
                    p.iter()
                        .scan(0.0, |acc, x| {
                            *acc += x / total;
                            Some(*acc)
                        })
                        .collect()
                }
                _ => Vec::new(),
            };
            let mut free = vec![0.0f64; c];
            for (i, a) in arrivals.enumerate() {
                let s = service(&mut rng2);
                let k = match policy {
                    Policy::RoundRobin => i % c,
                    Policy::ConnHash { .. } => conn_server[rng2.below(conn_server.len())],
                    Policy::Split(_) => {
                        let u = rng2.uniform();
                        cumulative.iter().position(|&x| u <= x).unwrap_or(c - 1)
                    }
                    _ => rng2.below(c),
                };
                let start = free[k].max(a);
                free[k] = start + s;
                push(i, start - a, start + s - a);
            }
        }
    }
    resp.sort_unstable_by(f64::total_cmp);
    let n = resp.len().max(1) as f64;
    let pct = |p: f64| {
        resp.get(((resp.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Outcome {
        mean_wait: wait_sum / n,
        mean: resp.iter().sum::<f64>() / n,
        p50: pct(0.5),
        p99: pct(0.99),
        p999: pct(0.999),
        jobs: resp.len(),
    }
}

/// An f64 ordered for a heap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Key(f64, f64, f64, usize);

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// c cores shared equally by the jobs in the system. `push(index, wait, sojourn)`.
fn processor_sharing(
    c: usize,
    arrivals: &mut dyn Iterator<Item = f64>,
    service: &mut dyn FnMut() -> f64,
    push: &mut dyn FnMut(usize, f64, f64),
) {
    // Key(finish in virtual time, arrival, service, index)
    let mut heap: BinaryHeap<Reverse<Key>> = BinaryHeap::new();
    let (mut t, mut v) = (0.0f64, 0.0f64);
    let rate = |n: usize| {
        if n == 0 {
            0.0
        } else {
            (c as f64 / n as f64).min(1.0)
        }
    };
    let mut depart_until =
        |limit: f64, heap: &mut BinaryHeap<Reverse<Key>>, t: &mut f64, v: &mut f64| {
            while let Some(&Reverse(Key(f, a, s, i))) = heap.peek() {
                let r = rate(heap.len());
                let at = *t + (f - *v) / r;
                if at > limit {
                    *v += (limit - *t) * r;
                    *t = limit;
                    return;
                }
                heap.pop();
                *t = at;
                *v = f;
                push(i, at - a - s, at - a);
            }
            *t = limit;
        };
    for (i, a) in arrivals.enumerate() {
        depart_until(a, &mut heap, &mut t, &mut v);
        let s = service();
        heap.push(Reverse(Key(v + s, a, s, i)));
    }
    depart_until(f64::INFINITY, &mut heap, &mut t, &mut v);
}

/// Erlang's C formula: the probability that a job waits in M/M/c with offered load
/// `a = λ/μ` (a < c).
///
/// # Examples
///
/// ```
/// // M/M/1: a job waits with probability ρ.
/// assert!((ropewalk_bench::sim::erlang_c(1, 0.7) - 0.7).abs() < 1e-12);
/// ```
pub fn erlang_c(c: usize, a: f64) -> f64 {
    // Erlang B by its recurrence, then C from B.
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (k as f64 + a * b);
    }
    let rho = a / c as f64;
    b / (1.0 - rho + rho * b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, tol: f64) {
        assert!(
            (got / want - 1.0).abs() < tol,
            "got {got}, want {want} (±{}%)",
            tol * 100.0
        );
    }

    #[test]
    fn mm1_mean_wait_is_rho_over_mu_minus_lambda() {
        // μ = 1 per µs-unit, λ = 0.7: Wq = ρ/(μ − λ) = 0.7/0.3.
        let out = simulate(&Model::at_load(1, 0.7, Dist::Exp(1.0), Policy::Shared).jobs(2_000_000));
        close(out.mean_wait, 0.7 / 0.3, 0.04);
        // The response time of M/M/1 is exponential with rate μ − λ.
        close(out.p99, 100f64.ln() / 0.3, 0.06);
    }

    #[test]
    fn mmc_mean_wait_is_erlang_c() {
        for (c, rho) in [(2usize, 0.9), (4, 0.8), (16, 0.9)] {
            let mu = 1.0 / 10.0;
            let lambda = rho * c as f64 * mu;
            let out =
                simulate(&Model::at_load(c, rho, Dist::Exp(10.0), Policy::Shared).jobs(2_000_000));
            let want = erlang_c(c, lambda / mu) / (c as f64 * mu - lambda);
            close(out.mean_wait, want, 0.06);
        }
    }

    #[test]
    fn md1_mean_wait_is_pollaczek_khinchine() {
        let rho = 0.8;
        let out =
            simulate(&Model::at_load(1, rho, Dist::Fixed(2.0), Policy::Shared).jobs(1_000_000));
        close(out.mean_wait, rho * 2.0 / (2.0 * (1.0 - rho)), 0.04);
    }

    #[test]
    fn processor_sharing_mean_is_insensitive() {
        // M/G/1-PS: E[T] = E[S]/(1 − ρ) whatever the distribution.
        for d in [Dist::Fixed(1.0), Dist::Exp(1.0)] {
            let out =
                simulate(&Model::at_load(1, 0.6, d, Policy::ProcessorSharing).jobs(1_000_000));
            close(out.mean, 1.0 / 0.4, 0.04);
        }
        // With c cores and few jobs, nobody shares: the response is the service time.
        let out = simulate(
            &Model::at_load(64, 0.05, Dist::Fixed(1.0), Policy::ProcessorSharing).jobs(200_000),
        );
        close(out.p99, 1.0, 0.01);
    }

    #[test]
    fn random_split_is_mm1_per_server() {
        let out = simulate(&Model::at_load(4, 0.7, Dist::Exp(1.0), Policy::Random).jobs(2_000_000));
        close(out.mean_wait, 0.7 / 0.3, 0.05);
        // An even split behaves the same.
        let split = Policy::Split(vec![0.25; 4]);
        let s = simulate(&Model::at_load(4, 0.7, Dist::Exp(1.0), split).jobs(2_000_000));
        close(s.mean_wait, 0.7 / 0.3, 0.05);
    }

    #[test]
    fn shared_queue_beats_dispatchers_at_high_load() {
        let d = Dist::Exp(50.0);
        let p99 = |p: Policy| simulate(&Model::at_load(8, 0.9, d, p).jobs(500_000)).p99;
        let (shared, jsq, rr, random) = (
            p99(Policy::Shared),
            p99(Policy::LeastLoaded),
            p99(Policy::RoundRobin),
            p99(Policy::Random),
        );
        assert!(
            shared < jsq && jsq < rr && rr < random,
            "{shared} {jsq} {rr} {random}"
        );
    }

    #[test]
    fn same_seed_same_outcome() {
        let m = Model::at_load(3, 0.8, Dist::Exp(5.0), Policy::ConnHash { conns: 10 }).jobs(50_000);
        assert_eq!(simulate(&m), simulate(&m));
        let mut other = m.clone();
        other.seed = 2;
        assert_ne!(simulate(&m), simulate(&other));
    }

    #[test]
    fn erlang_c_matches_its_closed_form_for_two_servers() {
        // For c = 2: C = 2ρ²/(1 + ρ).
        let rho = 0.6;
        close(erlang_c(2, 2.0 * rho), 2.0 * rho * rho / (1.0 + rho), 1e-12);
    }
}
