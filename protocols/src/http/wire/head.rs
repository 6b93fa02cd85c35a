//! Writing heads: the status line (with the reason phrases this crate knows), a field
//! (cleaned of control bytes, or dropped if its name is not a token), `Content-Length`,
//! and the `Connection` field that ends a head. The server's writer and the `Date`
//! line use these; nothing here allocates beyond the output buffer.

use super::token::is_tchar;
use crate::http::Version;

/// The reason phrase of a status code.
///
/// # Examples
///
/// ```
/// assert_eq!(ropewalk_protocols::http::reason(431), "Request Header Fields Too Large");
/// ```
pub fn reason(status: u16) -> &'static str {
    let line = reason_line(status);
    &line[..line.len() - 1]
}

/// The reason phrases this crate knows, and the lines made of them.
macro_rules! statuses {
    ($($code:literal => $reason:literal,)*) => {
        /// The reason phrase of a status code and a newline: the body of
        /// [`Response::error`].
        pub(crate) fn reason_line(status: u16) -> &'static str {
            match status {
                $($code => concat!($reason, "\n"),)*
                _ => "Unknown\n",
            }
        }

        /// The whole status line (`HTTP/1.1 200 OK\r\n`) of a known status.
        pub(crate) fn status_line(status: u16) -> Option<&'static str> {
            match status {
                $($code => Some(concat!("HTTP/1.1 ", stringify!($code), " ", $reason, "\r\n")),)*
                _ => None,
            }
        }
    };
}

statuses! {
    100 => "Continue",
    101 => "Switching Protocols",
    200 => "OK",
    201 => "Created",
    202 => "Accepted",
    204 => "No Content",
    206 => "Partial Content",
    301 => "Moved Permanently",
    302 => "Found",
    303 => "See Other",
    304 => "Not Modified",
    307 => "Temporary Redirect",
    308 => "Permanent Redirect",
    400 => "Bad Request",
    401 => "Unauthorized",
    403 => "Forbidden",
    404 => "Not Found",
    405 => "Method Not Allowed",
    408 => "Request Timeout",
    409 => "Conflict",
    410 => "Gone",
    411 => "Length Required",
    413 => "Content Too Large",
    414 => "URI Too Long",
    415 => "Unsupported Media Type",
    416 => "Range Not Satisfiable",
    417 => "Expectation Failed",
    426 => "Upgrade Required",
    429 => "Too Many Requests",
    431 => "Request Header Fields Too Large",
    500 => "Internal Server Error",
    501 => "Not Implemented",
    502 => "Bad Gateway",
    503 => "Service Unavailable",
    504 => "Gateway Timeout",
    505 => "HTTP Version Not Supported",
}

/// Ends a head: the `Connection` field when it is not the version's default, then the
/// empty line.
#[inline]
pub(crate) fn finish_head(out: &mut Vec<u8>, keep_alive: bool, version: Version) {
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes `HTTP/1.1 status reason`.
#[inline]
pub(crate) fn write_status_line(out: &mut Vec<u8>, status: u16) {
    if let Some(line) = status_line(status) {
        out.extend_from_slice(line.as_bytes());
        return;
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes `name: value`. Control bytes in the value (CR and LF above all: response
/// splitting) become spaces; a field whose name is not a token is dropped, since no
/// replacement makes it valid.
#[inline]
pub(crate) fn write_field(out: &mut Vec<u8>, name: &str, value: &str) {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        log::warn!("dropping response header with an invalid name: {name:?}");
        return;
    }
    out.reserve(name.len() + value.len() + 4);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    let is_ctl = |b: u8| (b < 0x20 && b != b'\t') || b == 0x7f;
    // No early exit: a loop the compiler can vectorize.
    if value.bytes().fold(false, |ctl, b| ctl | is_ctl(b)) {
        out.extend(value.bytes().map(|b| if is_ctl(b) { b' ' } else { b }));
    } else {
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal, without `core::fmt`.
#[inline]
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    if n < 100 {
        out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
        return;
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Writes `Content-Length: n`, in one copy.
#[inline]
pub(crate) fn write_length(out: &mut Vec<u8>, n: usize) {
    const PREFIX: &[u8] = b"Content-Length: ";
    let mut line = [0u8; PREFIX.len() + 20 + 2];
    line[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n as u64;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = PREFIX.len() + digits.len() - i;
    line[PREFIX.len()..len].copy_from_slice(&digits[i..]);
    line[len..len + 2].copy_from_slice(b"\r\n");
    out.extend_from_slice(&line[..len + 2]);
}
