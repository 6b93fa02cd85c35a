//! The architecture experiment's requests: what a job costs (service-time distributions,
//! drawn from a seeded generator), and the 16-byte request and reply on the wire.
//!
//! The load generator draws each request's service time and writes it into the request,
//! so every server design gets the very same sequence of jobs for a given seed, and the
//! simulator ([`crate::sim`]) draws from the same distributions.
//!
//! Request and reply, 16 bytes, little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | when the load generator scheduled the request, ns since its start (echoed) |
//! | 8..12 | the job's length, ns |
//! | 12 | the job's kind: 0 spins the CPU ([`crate::work::cpu_job`]), 1 sleeps (a blocking call) |
//! | 13 | reserved, 0 |
//! | 14..16 | in the reply: the index of the worker (reactor or thread) that ran the job |

use std::fmt;
use std::str::FromStr;

/// Bytes in a request and in a reply.
pub const WIRE_LEN: usize = 16;

/// What a job does for its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Runs [`crate::work::cpu_job`] for about its length: CPU work.
    Spin,
    /// Sleeps its length, like a call to a database: the thread is blocked, not busy.
    Sleep,
}

/// One request as it travels.
///
/// # Examples
///
/// ```
/// use ropewalk_bench::jobs::{JobKind, Request};
///
/// let r = Request { sched_ns: 7, job_ns: 50_000, kind: JobKind::Spin, worker: 0 };
/// assert_eq!(Request::decode(&r.encode()), r);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// When it was scheduled to be sent, ns since the load generator started.
    pub sched_ns: u64,
    /// The job's length, ns.
    pub job_ns: u32,
    /// What the job does.
    pub kind: JobKind,
    /// The worker that ran it (set by the server in the reply).
    pub worker: u16,
}

impl Request {
    /// The 16 bytes of the wire format.
    pub fn encode(&self) -> [u8; WIRE_LEN] {
        let mut b = [0u8; WIRE_LEN];
        b[0..8].copy_from_slice(&self.sched_ns.to_le_bytes());
        b[8..12].copy_from_slice(&self.job_ns.to_le_bytes());
        b[12] = match self.kind {
            JobKind::Spin => 0,
            JobKind::Sleep => 1,
        };
        b[14..16].copy_from_slice(&self.worker.to_le_bytes());
        b
    }

    /// Reads the 16 bytes of the wire format (an unknown kind spins).
    pub fn decode(b: &[u8; WIRE_LEN]) -> Request {
        let mut u8s = [0u8; 8];
        u8s.copy_from_slice(&b[0..8]);
        let mut u4 = [0u8; 4];
        u4.copy_from_slice(&b[8..12]);
        Request {
            sched_ns: u64::from_le_bytes(u8s),
            job_ns: u32::from_le_bytes(u4),
            kind: if b[12] == 1 {
                JobKind::Sleep
            } else {
                JobKind::Spin
            },
            worker: u16::from_le_bytes([b[14], b[15]]),
        }
    }
}

/// Runs the job of `req` on this thread: spins `job_ns × rounds_per_us / 1000` rounds of
/// [`crate::work::cpu_job`], or sleeps `job_ns`. Returns the reply, stamped with `worker`.
pub fn run_job(req: &[u8; WIRE_LEN], rounds_per_us: f64, worker: u16) -> [u8; WIRE_LEN] {
    let mut r = Request::decode(req);
    match r.kind {
        JobKind::Spin => {
            let rounds = (f64::from(r.job_ns) * rounds_per_us / 1000.0).round() as u32;
            crate::work::cpu_job(&[b'x'; 64], rounds);
        }
        JobKind::Sleep => std::thread::sleep(std::time::Duration::from_nanos(u64::from(r.job_ns))),
    }
    r.worker = worker;
    r.encode()
}

/// A small, fast, seeded generator (SplitMix64): the same seed gives the same jobs.
///
/// # Examples
///
/// ```
/// use ropewalk_bench::jobs::Rng;
///
/// let (mut a, mut b) = (Rng::new(1), Rng::new(1));
/// assert_eq!(a.next_u64(), b.next_u64());
/// let u = a.uniform();
/// assert!(u > 0.0 && u <= 1.0);
/// ```
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Exponential with mean `mean`.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -self.uniform().ln() * mean
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
}

/// A service-time distribution, in µs, with the kind of job it stands for.
///
/// Written and parsed as `exp:MEAN`, `fixed:US`, `bimodal:SHORT:LONG:P_LONG` (a fixed
/// short job, and with probability `P_LONG` a fixed long one), `sleep:US` (a blocking
/// call of fixed length).
///
/// # Examples
///
/// ```
/// use ropewalk_bench::jobs::Dist;
///
/// let d: Dist = "bimodal:25:2500:0.01".parse().unwrap();
/// assert!((d.mean() - 49.75).abs() < 1e-9);
/// assert_eq!(d.to_string(), "bimodal:25:2500:0.01");
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    /// Exponential CPU job with this mean.
    Exp(f64),
    /// A CPU job of fixed length.
    Fixed(f64),
    /// A short CPU job, or with probability `p_long` a long one.
    Bimodal {
        /// The short job, µs.
        short: f64,
        /// The long job, µs.
        long: f64,
        /// The probability of the long one.
        p_long: f64,
    },
    /// A blocking call (sleep) of fixed length.
    Sleep(f64),
}

impl Dist {
    /// One service time, µs.
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        match *self {
            Dist::Exp(m) => rng.exp(m),
            Dist::Fixed(x) | Dist::Sleep(x) => x,
            Dist::Bimodal {
                short,
                long,
                p_long,
            } => {
                if rng.uniform() <= p_long {
                    long
                } else {
                    short
                }
            }
        }
    }

    /// The mean, µs.
    pub fn mean(&self) -> f64 {
        match *self {
            Dist::Exp(m) => m,
            Dist::Fixed(x) | Dist::Sleep(x) => x,
            Dist::Bimodal {
                short,
                long,
                p_long,
            } => short * (1.0 - p_long) + long * p_long,
        }
    }

    /// The squared coefficient of variation (variance / mean²): 1 for the exponential,
    /// 0 for a fixed length.
    pub fn scv(&self) -> f64 {
        match *self {
            Dist::Exp(_) => 1.0,
            Dist::Fixed(_) | Dist::Sleep(_) => 0.0,
            Dist::Bimodal {
                short,
                long,
                p_long,
            } => {
                let m = self.mean();
                let m2 = short * short * (1.0 - p_long) + long * long * p_long;
                (m2 - m * m) / (m * m)
            }
        }
    }

    /// What the job does on a server.
    pub fn kind(&self) -> JobKind {
        match self {
            Dist::Sleep(_) => JobKind::Sleep,
            _ => JobKind::Spin,
        }
    }
}

impl fmt::Display for Dist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dist::Exp(m) => write!(f, "exp:{m}"),
            Dist::Fixed(x) => write!(f, "fixed:{x}"),
            Dist::Sleep(x) => write!(f, "sleep:{x}"),
            Dist::Bimodal {
                short,
                long,
                p_long,
            } => write!(f, "bimodal:{short}:{long}:{p_long}"),
        }
    }
}

impl FromStr for Dist {
    type Err = String;

    fn from_str(s: &str) -> Result<Dist, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |i: usize| -> Result<f64, String> {
            let v = parts.get(i).ok_or_else(|| format!("{s}: too few fields"))?;
            let x: f64 = v.parse().map_err(|e| format!("{s}: {v}: {e}"))?;
            if x.is_finite() && x >= 0.0 {
                Ok(x)
            } else {
                Err(format!("{s}: {v} is not a length"))
            }
        };
        let d = match parts[0] {
            "exp" => Dist::Exp(num(1)?),
            "fixed" => Dist::Fixed(num(1)?),
            "sleep" => Dist::Sleep(num(1)?),
            "bimodal" => Dist::Bimodal {
                short: num(1)?,
                long: num(2)?,
                p_long: num(3)?.min(1.0),
            },
            other => {
                return Err(format!(
                    "unknown distribution {other} (exp, fixed, bimodal, sleep)"
                ))
            }
        };
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_means_match() {
        let mut rng = Rng::new(3);
        for d in [
            Dist::Exp(50.0),
            Dist::Bimodal {
                short: 25.0,
                long: 2500.0,
                p_long: 0.01,
            },
        ] {
            let n = 400_000;
            let m: f64 = (0..n).map(|_| d.sample(&mut rng)).sum::<f64>() / f64::from(n);
            assert!((m / d.mean() - 1.0).abs() < 0.03, "{d}: {m}");
        }
    }

    #[test]
    fn parses_and_prints() {
        for s in ["exp:50", "fixed:3.5", "sleep:1000", "bimodal:25:2500:0.01"] {
            assert_eq!(s.parse::<Dist>().unwrap().to_string(), s);
        }
        assert!("exp".parse::<Dist>().is_err());
        assert!("gamma:1".parse::<Dist>().is_err());
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = Rng::new(9);
        let mut seen = [0u32; 3];
        for _ in 0..3000 {
            seen[rng.below(3)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    }
}
