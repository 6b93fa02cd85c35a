//! Generated bad input: a small deterministic random generator and the mutations applied
//! to valid messages.
//!
//! [`Rng`] is xorshift64*, so a seed gives the same cases on every run and on every
//! machine; a failing case is replayed from its seed. [`mutate`] applies one to four
//! byte-level mutations (replace, insert, delete, duplicate a piece, break a line,
//! stretch a byte, truncate, insert a framing field, flip a case) to a valid message.
//!
//! # Examples
//!
//! ```
//! use ropewalk_testkit::chaos::{mutate, Rng};
//!
//! let mut rng = Rng(0x5eed);
//! let mut input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
//! mutate(&mut rng, &mut input, &[b"Transfer-Encoding: chunked\r\n"]);
//! ```

/// A small deterministic generator (xorshift64*): the same cases on every run.
///
/// The seed must not be zero (xorshift stays at zero).
///
/// # Examples
///
/// ```
/// use ropewalk_testkit::chaos::Rng;
///
/// let (mut a, mut b) = (Rng(7), Rng(7));
/// assert_eq!(a.next(), b.next());
/// assert!(a.below(10) < 10);
/// ```
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut rng = ropewalk_testkit::chaos::Rng(1);
    /// assert_ne!(rng.next(), rng.next());
    /// ```
    // An endless generator, not an iterator: `next` never ends, so no `Iterator`.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    ///
    /// # Panics
    ///
    /// If `n` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut rng = ropewalk_testkit::chaos::Rng(1);
    /// assert!(rng.below(3) < 3);
    /// ```
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True `percent` times in a hundred.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut rng = ropewalk_testkit::chaos::Rng(1);
    /// assert!(rng.chance(100));
    /// assert!(!rng.chance(0));
    /// ```
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Bytes that matter to an HTTP parser, chosen more often than others.
const INTERESTING: &[u8] = b"\r\n :\t\0,;=/?%\x7f\xff0123456789-Hh";

/// Applies one to four random mutations to `input`; `fields` are whole header lines that
/// stress framing, inserted after the first line.
///
/// # Examples
///
/// ```
/// use ropewalk_testkit::chaos::{mutate, Rng};
///
/// let valid = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi".to_vec();
/// let mut rng = Rng(3);
/// let mut input = valid.clone();
/// mutate(&mut rng, &mut input, &[b"Content-Length: -1\r\n"]);
/// // The same seed damages it the same way.
/// let mut again = valid;
/// mutate(&mut Rng(3), &mut again, &[b"Content-Length: -1\r\n"]);
/// assert_eq!(input, again);
/// ```
pub fn mutate(rng: &mut Rng, input: &mut Vec<u8>, fields: &[&[u8]]) {
    let pick = |rng: &mut Rng| -> u8 {
        if rng.chance(60) {
            INTERESTING[rng.below(INTERESTING.len())]
        } else {
            rng.next() as u8
        }
    };
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] = pick(rng);
            }
            1 => {
                let i = rng.below(len + 1);
                let b = pick(rng);
                input.insert(i, b);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                input.remove(i);
            }
            3 if len > 1 => {
                // Duplicate a piece (a repeated header, a doubled length, a second request).
                let a = rng.below(len);
                let b = (a + 1 + rng.below(32)).min(len);
                let piece = input[a..b].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, piece);
            }
            4 if len > 0 => {
                // Break or rejoin lines: CRLF <-> LF, CR, nothing.
                let i = rng.below(len);
                let with: &[u8] = [&b"\r\n"[..], b"\n", b"\r", b"", b"\r\n\r\n"][rng.below(5)];
                input.splice(i..i, with.iter().copied());
            }
            5 if len > 0 => {
                // Stretch something: a long run of one byte.
                let i = rng.below(len);
                let n = 1 + rng.below(3000);
                let b = pick(rng);
                input.splice(i..i, std::iter::repeat_n(b, n));
            }
            6 if len > 0 => {
                let cut = rng.below(len);
                input.truncate(cut);
            }
            7 if !fields.is_empty() => {
                // A field that stresses framing.
                let field = fields[rng.below(fields.len())];
                let at = input
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .map_or(0, |p| p + 2)
                    .min(input.len());
                input.splice(at..at, field.iter().copied());
            }
            _ => {
                // Flip the case of one byte.
                if len > 0 {
                    let i = rng.below(len);
                    input[i] = input[i].to_ascii_uppercase() ^ (input[i] & 0x20);
                }
            }
        }
    }
}
