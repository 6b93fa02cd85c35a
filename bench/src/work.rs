//! The handler's CPU job of the multicore benchmark: a stand-in for real per-message work
//! (parsing, hashing, templating) that the servers run before they answer.

/// `rounds` passes of FNV-1a over `data`: a chain of dependent multiplies, about 4
/// cycles a byte, that the compiler cannot skip. `rounds == 0` costs nothing.
///
/// # Examples
///
/// ```
/// use ropewalk_bench::work::cpu_job;
///
/// assert_eq!(cpu_job(b"ping", 0), 0xcbf2_9ce4_8422_2325);
/// assert_ne!(cpu_job(b"ping", 3), cpu_job(b"pong", 3));
/// ```
pub fn cpu_job(data: &[u8], rounds: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for r in 0..rounds {
        for &b in data {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= u64::from(r);
    }
    std::hint::black_box(h)
}

/// The rounds of [`cpu_job`] on a 64-byte message that take about `us` microseconds on
/// this machine (timed here, over ~20 ms).
pub fn rounds_for(us: f64) -> u32 {
    if us <= 0.0 {
        return 0;
    }
    let data = [b'x'; 64];
    let probe = 10_000u32;
    let t0 = std::time::Instant::now();
    cpu_job(&data, probe);
    let per_round_us = t0.elapsed().as_secs_f64() * 1e6 / f64::from(probe);
    (us / per_round_us).round().max(1.0) as u32
}
