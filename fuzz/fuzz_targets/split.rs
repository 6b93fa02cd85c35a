//! How every target cuts its input: the first bytes steer, the rest is the stream, cut
//! into chunks at points the fuzzer chooses (through the steering bytes).

/// The steering bytes and the stream.
pub fn steer(data: &[u8], n: usize) -> ([u8; 8], &[u8]) {
    let mut ctl = [0u8; 8];
    let n = n.min(8).min(data.len());
    ctl[..n].copy_from_slice(&data[..n]);
    (ctl, &data[n..])
}

/// `input` cut into chunks: one byte each when `seed & 7 == 0`, else chunks of 1 to
/// `(seed >> 3) % 64 + 1` bytes at pseudo-random points derived from `seed`.
pub fn cut(input: &[u8], seed: u32) -> Vec<&[u8]> {
    let mut chunks = Vec::new();
    let max = (seed >> 3) as usize % 64 + 1;
    let mut x = u64::from(seed) | 1 << 40;
    let mut pos = 0;
    while pos < input.len() {
        let len = if seed & 7 == 0 {
            1
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            1 + (x % max as u64) as usize
        };
        let end = (pos + len).min(input.len());
        chunks.push(&input[pos..end]);
        pos = end;
    }
    chunks
}
