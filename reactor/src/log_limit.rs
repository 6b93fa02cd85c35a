//! [`LogLimiter`]: at most one log line per interval for a condition that can repeat
//! thousands of times a second (descriptors ran out, the worker pool is full), with a count
//! of the lines left out.

use std::cell::Cell;
use std::fmt;
use std::time::Duration;

/// Lets one log line through per `interval` and counts the ones it holds back, so that a
/// condition that repeats on every event (an `accept` that fails with `EMFILE`, a request
/// refused because the worker pool is full) costs one line a second, not one per event,
/// and still says how often it happened.
///
/// Time is passed in (a [`Clock`](crate::Clock)'s `now`), so a `ManualClock` drives it in
/// tests. It lives on one thread (it is not `Sync`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ropewalk_reactor::LogLimiter;
///
/// let limiter = LogLimiter::new(Duration::from_secs(1));
/// let s = Duration::from_secs;
/// assert_eq!(limiter.allow(s(10)), Some(0)); // the first line goes out
/// assert_eq!(limiter.allow(s(10)), None); // held back…
/// assert_eq!(limiter.allow(s(10)), None);
/// assert_eq!(limiter.allow(s(11)), Some(2)); // …and counted in the next one
/// ```
pub struct LogLimiter {
    interval: Duration,
    /// When the next line may go out; `None` before the first.
    next: Cell<Option<Duration>>,
    suppressed: Cell<u64>,
}

impl LogLimiter {
    /// A limiter that lets one line through per `interval`.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = ropewalk_reactor::LogLimiter::new(std::time::Duration::from_secs(1));
    /// assert_eq!(l.suppressed(), 0);
    /// ```
    pub const fn new(interval: Duration) -> LogLimiter {
        LogLimiter {
            interval,
            next: Cell::new(None),
            suppressed: Cell::new(0),
        }
    }

    /// Whether a line may be logged at `now`: `Some(n)` with the number of lines held back
    /// since the last one that went out (then reset), or `None` (counted as held back).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let l = ropewalk_reactor::LogLimiter::new(Duration::from_secs(1));
    /// if let Some(held) = l.allow(Duration::ZERO) {
    ///     log::warn!("the pool is full{}", ropewalk_reactor::LogLimiter::suffix(held));
    /// }
    /// ```
    pub fn allow(&self, now: Duration) -> Option<u64> {
        match self.next.get() {
            Some(next) if now < next => {
                self.suppressed.set(self.suppressed.get().saturating_add(1));
                None
            }
            _ => {
                self.next.set(Some(now.saturating_add(self.interval)));
                Some(self.suppressed.replace(0))
            }
        }
    }

    /// Lines held back since the last one that went out.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let l = ropewalk_reactor::LogLimiter::new(Duration::from_secs(1));
    /// l.allow(Duration::ZERO);
    /// l.allow(Duration::ZERO);
    /// assert_eq!(l.suppressed(), 1);
    /// ```
    pub fn suppressed(&self) -> u64 {
        self.suppressed.get()
    }

    /// The end of a line that says how many were held back: empty for none, else
    /// ` (N similar lines suppressed)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::LogLimiter;
    /// assert_eq!(LogLimiter::suffix(0), "");
    /// assert_eq!(LogLimiter::suffix(3), " (3 similar lines suppressed)");
    /// ```
    pub fn suffix(held: u64) -> String {
        if held == 0 {
            String::new()
        } else {
            format!(" ({held} similar lines suppressed)")
        }
    }
}

impl fmt::Debug for LogLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLimiter")
            .field("interval", &self.interval)
            .field("suppressed", &self.suppressed.get())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let l = LogLimiter::new(Duration::from_secs(1));
        let ms = Duration::from_millis;
        assert_eq!(l.allow(ms(0)), Some(0));
        // Ten a second, as the accept back-off produced: one line a second, nine counted.
        for t in 1..10 {
            assert_eq!(l.allow(ms(t * 100)), None);
        }
        assert_eq!(l.allow(ms(1000)), Some(9));
        assert_eq!(l.allow(ms(1999)), None);
        // A quiet spell: the next line goes out at once.
        assert_eq!(l.allow(ms(60_000)), Some(1));
        assert_eq!(l.allow(ms(60_001)), None);
    }
}
