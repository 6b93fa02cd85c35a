//! Dates: the IMF-fixdate of `Date` and `Last-Modified` (RFC 9110 §5.6.7), written
//! ([`http_date`]) and read ([`parse_http_date`]), the Common Log Format date of the
//! access log ([`clf_date`]), and [`DateLines`], the `Date` line every response of a
//! second shares, made once a second.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::head::write_field;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Year, month (1-12) and day of a Unix time (Howard Hinnant's algorithm).
fn civil(secs: u64) -> (i64, usize, i64) {
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as usize, day)
}

/// Formats a Unix time as a Common Log Format date (`27/Nov/2026:18:00:00 +0000`).
pub(crate) fn clf_date(secs: u64) -> String {
    let (year, month, day) = civil(secs);
    let rem = secs % 86_400;
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[month - 1],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Formats a Unix time as an IMF-fixdate (`Fri, 27 Nov 2026 16:17:00 GMT`).
pub(crate) fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil(secs);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days.rem_euclid(7)) as usize],
        day,
        MONTHS[month - 1],
        year,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into Unix seconds.
pub(crate) fn parse_http_date(s: &str) -> Option<u64> {
    let mut parts = s.trim().split(' ');
    let (_day, dd, mon, yyyy, time, gmt) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if parts.next().is_some() || gmt != "GMT" || dd.len() != 2 || yyyy.len() != 4 {
        return None;
    }
    let day: i64 = dd.parse().ok()?;
    let month = MONTHS.iter().position(|m| *m == mon)? as i64 + 1;
    let year: i64 = yyyy.parse().ok()?;
    let mut hms = time.split(':');
    let (h, m, sec): (i64, i64, i64) = (
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
    );
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days since 1970-01-01 from a civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + sec;
    u64::try_from(secs).ok()
}

/// The head lines every response of a second shares.
pub(crate) struct DateLines {
    /// The second they are for: from `start` to `next`.
    start: SystemTime,
    next: SystemTime,
    /// The loop time (`Clock::loop_time`) the wall clock was last read at.
    pub(crate) turn: Option<Duration>,
    /// `Date: …\r\n`, then the `Server` line if there is one.
    lines: Vec<u8>,
    /// The length of the `Date` line.
    date_len: usize,
    /// Counts the times the lines were made: a head built with them is stale once it
    /// moves.
    pub(crate) generation: u64,
}

impl DateLines {
    /// Lines not yet made: the first [`update`](DateLines::update) makes them.
    pub(crate) fn new() -> DateLines {
        DateLines {
            start: UNIX_EPOCH,
            next: UNIX_EPOCH,
            turn: None,
            lines: Vec::new(),
            date_len: 0,
            generation: 0,
        }
    }

    /// The `Date` line, and the `Server` line too unless `has_server`.
    #[inline]
    pub(crate) fn lines(&self, has_server: bool) -> &[u8] {
        if has_server {
            &self.lines[..self.date_len]
        } else {
            &self.lines
        }
    }

    /// Makes the lines again if `now` is outside the second they were made for (a
    /// clock set back too); `server_line` is the whole `Server` line, if any.
    pub(crate) fn update(&mut self, now: SystemTime, server_line: Option<&[u8]>) {
        if now < self.next && now >= self.start {
            return;
        }
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        self.start = UNIX_EPOCH + Duration::from_secs(secs);
        self.next = self.start + Duration::from_secs(1);
        self.lines.clear();
        write_field(&mut self.lines, "Date", &http_date(secs));
        self.date_len = self.lines.len();
        self.generation += 1;
        if let Some(server) = server_line {
            self.lines.extend_from_slice(server);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{clf_date, http_date, parse_http_date};

    #[test]
    fn clf_dates() {
        assert_eq!(clf_date(1_795_802_400), "27/Nov/2026:18:00:00 +0000");
        assert_eq!(clf_date(0), "01/Jan/1970:00:00:00 +0000");
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(1_795_796_220), "Fri, 27 Nov 2026 16:17:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn dates_round_trip() {
        for t in [0, 784_111_777, 951_782_400, 1_795_796_220] {
            assert_eq!(parse_http_date(&http_date(t)), Some(t));
        }
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), None);
        assert_eq!(parse_http_date("garbage"), None);
    }
}
