//! Request heads (RFC 9112 §2-§3), the server's side: [`parse_head`] parses one on
//! `httparse`, copies it into a [`Headers`] with one allocation, and checks what RFC
//! 9112 says to reject (the request line, `Host`, `Expect`, the limits), leaving the
//! body framing to [`body_framing`](super::framing::body_framing). Every rejection
//! carries the status to answer with, and the same one however the bytes were split
//! into reads.

use std::borrow::Cow;
use std::mem::MaybeUninit;
use std::ops::Range;

use super::framing::{body_framing, BodyFraming, FramingFields, Message};
use super::token::is_tchar;
use crate::http::{Headers, Version};

/// Limits a request must stay within.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_header_bytes: usize,
    pub(crate) max_headers: usize,
    pub(crate) max_uri: usize,
    pub(crate) max_body: u64,
}

/// A parsed and checked request head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: Cow<'static, str>,
    /// Where the target is in `headers`' extra text.
    pub(crate) target: std::ops::Range<usize>,
    pub(crate) version: Version,
    pub(crate) headers: Headers,
    pub(crate) framing: BodyFraming,
    pub(crate) keep_alive: bool,
    pub(crate) expect_continue: bool,
}

#[derive(Debug)]
pub(crate) enum HeadResult {
    /// More bytes needed.
    Partial,
    /// A head, and how many bytes it took.
    Complete(Head, usize),
    /// Answer with this status and close.
    Reject(u16),
}

/// What the fields this parser interprets said.
#[derive(Default)]
struct Interpreted {
    hosts: u32,
    /// `Content-Length` and `Transfer-Encoding`.
    framing: FramingFields,
    /// `close` and `keep-alive` in any Connection field.
    close: bool,
    keep_alive_token: bool,
    /// The first Expect: whether it is `100-continue`.
    expect: Option<bool>,
}

/// Whether the field name `name` (a token) is `lower`, which is lowercase letters and
/// `-`, ignoring case: one OR per byte (no other token byte ORs to a lowercase letter or
/// `-`).
#[inline]
fn is_name(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len() && name.iter().zip(lower).all(|(&b, &l)| b | 0x20 == l)
}

impl Interpreted {
    #[inline]
    fn note(&mut self, name: &str, value: &str) {
        let name = name.as_bytes();
        match name.len() {
            4 if is_name(name, b"host") => self.hosts += 1,
            14 if is_name(name, b"content-length") => self.framing.note_length(value),
            17 if is_name(name, b"transfer-encoding") => self.framing.note_transfer_encoding(),
            10 if is_name(name, b"connection") => {
                for token in value.split(',').map(str::trim) {
                    self.close |= token.eq_ignore_ascii_case("close");
                    self.keep_alive_token |= token.eq_ignore_ascii_case("keep-alive");
                }
            }
            6 if is_name(name, b"expect") && self.expect.is_none() => {
                self.expect = Some(value.eq_ignore_ascii_case("100-continue"));
            }
            _ => {}
        }
    }
}

/// `value` without spaces and tabs around it (a byte search: both are ASCII).
fn trim_blanks(value: &str) -> &str {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let bytes = value.as_bytes();
    let Some(start) = bytes.iter().position(|b| !blank(b)) else {
        // Empty, and still a part of `value` (callers take its position).
        return &value[..0];
    };
    let end = bytes
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |e| e + 1);
    &value[start..end]
}

/// Where `inner` starts in `outer`, if it is a part of it.
fn offset_in(outer: &[u8], inner: &[u8]) -> Option<usize> {
    let at = (inner.as_ptr() as usize).wrapping_sub(outer.as_ptr() as usize);
    (at <= outer.len() && inner.len() <= outer.len() - at).then_some(at)
}

/// The head (`head`, all of it UTF-8) copied whole into a header list, its fields ranges
/// of it, with where the target is and what the interpreted fields said; `None` if the
/// head is not UTF-8 (or httparse's slices were not parts of it).
#[inline(always)]
fn copy_head(
    head: &[u8],
    target: &str,
    fields: &[httparse::Header<'_>],
) -> Option<(Headers, Range<usize>, Interpreted)> {
    let text = std::str::from_utf8(head).ok()?;
    let at = offset_in(head, target.as_bytes())?;
    let mut headers = Headers::from_text(text, fields.len());
    let mut seen = Interpreted::default();
    for h in fields {
        // The name is a token (ASCII): its ends are character boundaries.
        let name = offset_in(head, h.name.as_bytes())?;
        let v = offset_in(head, h.value)?;
        // Checked slicing: the value's range falls on character boundaries. httparse
        // trimmed its blanks already.
        let value = text.get(v..v + h.value.len())?;
        debug_assert_eq!(trim_blanks(value), value);
        seen.note(h.name, value);
        headers.push_at(name..name + h.name.len(), v..v + value.len());
    }
    Some((headers, at..at + target.len(), seen))
}

/// Header slots kept on the stack while parsing; a larger `max_headers` uses the heap.
const INLINE_HEADERS: usize = 100;

/// The method, without allocating for the common ones.
#[inline]
fn method_name(method: &str) -> Cow<'static, str> {
    // A match on the bytes: lengths first, then whole words, no call to memcmp.
    Cow::Borrowed(match method.as_bytes() {
        b"GET" => "GET",
        b"HEAD" => "HEAD",
        b"POST" => "POST",
        b"PUT" => "PUT",
        b"DELETE" => "DELETE",
        b"OPTIONS" => "OPTIONS",
        b"PATCH" => "PATCH",
        b"CONNECT" => "CONNECT",
        b"TRACE" => "TRACE",
        _ => return Cow::Owned(method.to_string()),
    })
}

/// The request line is the part before the first LF.
fn request_line_len(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// Whether the request line is well-formed (`method SP target SP version`, single
/// spaces) and names an HTTP version we do not speak.
fn is_other_http_version(buf: &[u8]) -> bool {
    let line = &buf[..request_line_len(buf).unwrap_or(buf.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let [method, target, v] = parts.as_slice() else {
        return false;
    };
    !method.is_empty()
        && !target.is_empty()
        && v.len() == 8
        && v.starts_with(b"HTTP/")
        && v[5].is_ascii_digit()
        && v[6] == b'.'
        && v[7].is_ascii_digit()
}

/// A head whose request line (well-formed, [`is_other_http_version`]) names a higher
/// minor version of HTTP/1, copied with the version made `HTTP/1.1`: RFC 9110 §2.5 says
/// to serve it as the highest minor version we speak. `None` for another major version.
/// Rare, so a copy: httparse takes only 1.0 and 1.1.
fn as_http11(buf: &[u8]) -> Option<Vec<u8>> {
    let line = &buf[..request_line_len(buf).unwrap_or(buf.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version = &line[line.len() - 8..];
    if version[5] != b'1' {
        return None;
    }
    let mut patched = buf.to_vec();
    patched[line.len() - 1] = b'1';
    Some(patched)
}

/// Whether a request line not yet ended could still become one that
/// [`is_other_http_version`] accepts. httparse fails on `HTTP/2` as soon as it sees it;
/// without this, `GET / HTTP/2.0` got 505 in one read but 400 split across reads.
fn may_become_other_http_version(buf: &[u8]) -> bool {
    if request_line_len(buf).is_some() {
        return false;
    }
    let line = buf.strip_suffix(b"\r").unwrap_or(buf);
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let [method, target, v] = parts.as_slice() else {
        return false;
    };
    !method.is_empty()
        && !target.is_empty()
        && v.len() <= 8
        && v.iter().zip(b"HTTP/#.#").all(|(&b, &p)| match p {
            b'#' => b.is_ascii_digit(),
            p => b == p,
        })
}

/// Whether a head that httparse took holds a bare LF as a line end (RFC 9112 §2.2
/// allows a recipient to take one; we refuse it, as llhttp and Twisted do, since a front
/// that reads `x\nContent-Length: 5` as one value sees other request boundaries).
///
/// httparse refuses a CR not followed by LF, so every CR in the head starts a CRLF: the
/// head has a bare LF exactly when it counts more LFs than CRs.
///
/// # Performance
///
/// One pass per complete head, counted in byte-wide lanes (a block of 255 bytes cannot
/// overflow a `u8`), which the compiler vectorizes: 194 instructions for a 144-byte
/// head under callgrind, where `usize` counters took 1 232.
#[inline]
fn has_bare_lf(head: &[u8]) -> bool {
    let mut surplus = 0isize;
    for block in head.chunks(255) {
        let (mut cr, mut lf) = (0u8, 0u8);
        for &b in block {
            cr += u8::from(b == b'\r');
            lf += u8::from(b == b'\n');
        }
        surplus += isize::from(lf) - isize::from(cr);
    }
    surplus != 0
}

pub(crate) fn parse_head(buf: &[u8], limits: &Limits) -> HeadResult {
    // The answer must not depend on how the bytes were split into reads. So it is the one
    // they would get arriving a byte at a time: the first bad byte, the first limit
    // crossed (a head longer than `max_header_bytes`: 431; a request line longer than any
    // URI we accept: 414, without waiting for its end), or the end of the head, whichever
    // comes first. Only the bytes up to the first limit are parsed.
    let line_limit = limits.max_uri + 64;
    let head_cut = limits.max_header_bytes + 1;
    // A buffer shorter than the limit holds no line longer than it: no need to look.
    let line_too_long = buf.len() > line_limit
        && request_line_len(buf).map_or(buf.len() > line_limit, |n| n > line_limit);
    let view = &buf[..buf.len().min(head_cut)];
    let (view, line_cut) = if line_too_long && line_limit < view.len() {
        (&view[..line_limit], true)
    } else {
        (view, false)
    };
    let buf = view;
    // Room for the headers on the stack (uninitialized: nothing to fill per request),
    // on the heap only for a limit above the default.
    let mut inline = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; INLINE_HEADERS];
    let mut heap = Vec::new();
    let storage: &mut [MaybeUninit<httparse::Header<'_>>] = if limits.max_headers <= INLINE_HEADERS
    {
        &mut inline[..limits.max_headers]
    } else {
        heap.resize_with(limits.max_headers, MaybeUninit::uninit);
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    let consumed = match req.parse_with_uninit_headers(buf, storage) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > limits.max_header_bytes {
                HeadResult::Reject(431)
            } else if line_cut {
                HeadResult::Reject(414)
            } else {
                HeadResult::Partial
            };
        }
        Err(httparse::Error::TooManyHeaders) => return HeadResult::Reject(431),
        // The line-length check above bounds how long this can wait.
        Err(httparse::Error::Version) if may_become_other_http_version(buf) => {
            return HeadResult::Partial
        }
        Err(httparse::Error::Version) if is_other_http_version(buf) => {
            return match as_http11(buf) {
                Some(patched) => parse_head(&patched, limits),
                None => HeadResult::Reject(505),
            };
        }
        Err(_) => return HeadResult::Reject(400),
    };
    if consumed > limits.max_header_bytes {
        return HeadResult::Reject(431);
    }
    if has_bare_lf(&buf[..consumed]) {
        return HeadResult::Reject(400);
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return HeadResult::Reject(400);
    };
    // httparse took the method as a token (one or more tchars) and the target as
    // visible ASCII or UTF-8.
    debug_assert!(!method.is_empty() && method.bytes().all(is_tchar));
    let version = match version {
        0 => Version::Http10,
        1 => Version::Http11,
        _ => return HeadResult::Reject(505),
    };
    if target.len() > limits.max_uri {
        return HeadResult::Reject(414);
    }
    let target_ok = if target == "*" {
        method == "OPTIONS"
    } else if target.starts_with('/') {
        true
    } else {
        let lower = target.to_ascii_lowercase();
        lower.starts_with("http://") || lower.starts_with("https://")
    };
    if !target_ok || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return HeadResult::Reject(400);
    }

    // One pass over the fields: the head's text is copied once (one allocation for the
    // target and every field, which are ranges of it), and the fields this parser
    // interprets are noted. A head with bytes that are not UTF-8 (obs-text) has its
    // fields copied one by one, lossily.
    let (headers, target_at, seen) = match copy_head(&buf[..consumed], target, req.headers) {
        Some(copied) => copied,
        None => {
            let mut seen = Interpreted::default();
            let bytes = target.len()
                + req
                    .headers
                    .iter()
                    .map(|h| h.name.len() + h.value.len())
                    .sum::<usize>();
            let mut headers = Headers::with_capacity(req.headers.len(), bytes);
            let target_at = headers.push_extra(target);
            for h in req.headers.iter() {
                // obs-text: kept (lossily), but never valid in the fields we interpret.
                let value = String::from_utf8_lossy(h.value);
                let value = trim_blanks(&value);
                seen.note(h.name, value);
                headers.push(h.name, value);
            }
            (headers, target_at, seen)
        }
    };
    let Interpreted {
        hosts,
        framing,
        close,
        keep_alive_token,
        expect,
    } = seen;

    // RFC 9112 §3.2: exactly one Host on HTTP/1.1; never two.
    if hosts > 1 || (version == Version::Http11 && hosts != 1) {
        return HeadResult::Reject(400);
    }

    let framing = match body_framing(
        Message::Request(version),
        &headers,
        &framing,
        limits.max_body,
    ) {
        Ok(framing) => framing,
        Err(e) => return HeadResult::Reject(e.status()),
    };

    let keep_alive = match version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive_token && !close,
    };
    let expect_continue = match expect {
        None => false,
        Some(true) => version == Version::Http11,
        Some(false) => return HeadResult::Reject(417),
    };

    HeadResult::Complete(
        Head {
            method: method_name(method),
            target: target_at,
            version,
            headers,
            framing,
            keep_alive,
            expect_continue,
        },
        consumed,
    )
}

#[cfg(test)]
mod blank_tests {
    use super::trim_blanks;

    #[test]
    fn trims_spaces_and_tabs_and_stays_inside_the_value() {
        for (v, want) in [
            ("", ""),
            ("  \t ", ""),
            (" a b\t", "a b"),
            ("x", "x"),
            ("\tcaf\u{e9} ", "caf\u{e9}"),
        ] {
            let t = trim_blanks(v);
            assert_eq!(t, want);
            let at = t.as_ptr() as usize - v.as_ptr() as usize;
            assert!(at + t.len() <= v.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_limits_below_and_above_the_stack_slots() {
        for max_headers in [3, INLINE_HEADERS, INLINE_HEADERS + 1, 300] {
            let limits = Limits {
                max_header_bytes: 1 << 20,
                max_headers,
                max_uri: 100,
                max_body: 100,
            };
            let head = |fields: usize| {
                let mut h = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
                for i in 1..fields {
                    h.push_str(&format!("X-{i}:  v{i}\t\r\n"));
                }
                h.push_str("\r\n");
                parse_head(h.as_bytes(), &limits)
            };
            match head(max_headers) {
                HeadResult::Complete(h, _) => {
                    assert_eq!(h.headers.len(), max_headers);
                    assert_eq!(h.method, "GET");
                    assert_eq!(h.headers.get("host"), Some("x"));
                    if max_headers > 1 {
                        let last = format!("v{}", max_headers - 1);
                        assert_eq!(h.headers.iter().last().map(|f| f.1), Some(&*last));
                    }
                }
                other => panic!("{max_headers} fields: {other:?}"),
            }
            assert!(
                matches!(head(max_headers + 1), HeadResult::Reject(431)),
                "{max_headers}"
            );
        }
    }

    #[test]
    fn spaces_in_the_request_line_are_400_not_505() {
        let limits = Limits {
            max_header_bytes: 1024,
            max_headers: 10,
            max_uri: 100,
            max_body: 100,
        };
        let status =
            |line: &str| match parse_head(format!("{line}\r\nHost: x\r\n\r\n").as_bytes(), &limits)
            {
                HeadResult::Reject(s) => s,
                other => panic!("{line:?}: {other:?}"),
            };
        assert_eq!(status("GET / HTTP/2.0"), 505);
        assert_eq!(status("GET /a b HTTP/1.1"), 400);
        assert_eq!(status("GET /  HTTP/1.1"), 400);
        assert_eq!(status("GET /a b HTTP/2.0"), 400);
    }

    /// The status a head gets arriving a byte at a time (it must be rejected).
    fn bytewise_rejection(request: &[u8], limits: &Limits) -> u16 {
        (1..=request.len())
            .find_map(|n| match parse_head(&request[..n], limits) {
                HeadResult::Partial => None,
                HeadResult::Reject(s) => Some(s),
                other => panic!("{other:?}"),
            })
            .expect("rejected")
    }

    #[test]
    fn an_other_version_gets_505_however_it_is_split() {
        let limits = Limits {
            max_header_bytes: 1024,
            max_headers: 10,
            max_uri: 100,
            max_body: 100,
        };
        for (request, want) in [
            (&b"GET / HTTP/2.0\r\nHost: x\r\n\r\n"[..], 505),
            (b"GET / HTTP/2.0x\r\nHost: x\r\n\r\n", 400),
            (b"GET / HTTP/2x\r\nHost: x\r\n\r\n", 400),
        ] {
            let first = bytewise_rejection(request, &limits);
            assert_eq!(first, want, "{:?}", String::from_utf8_lossy(request));
        }
    }

    /// Found by `tests/http_chaos.rs`: a request line both too long and bad got 414 in one
    /// read and 400 a byte per read. The answer is now the first the bytes reach, however
    /// they are split: a bad byte before the line limit is 400, past it 414; the head
    /// limit, when it comes before the line limit, is 431.
    #[test]
    fn limits_and_bad_bytes_answer_the_same_however_split() {
        let limits = |max_header_bytes| Limits {
            max_header_bytes,
            max_headers: 10,
            max_uri: 100,
            max_body: 100,
        };
        let long = "a".repeat(300);
        let cases: [(String, usize, u16); 6] = [
            (format!("GET /\x01{long} HTTP/1.1\r\n\r\n"), 1024, 400),
            (format!("GET /{long}\x01 HTTP/1.1\r\n\r\n"), 1024, 414),
            (
                format!("GET /{long} HTTP/1.1\r\nHost: x\r\n\r\n"),
                1024,
                414,
            ),
            (format!("GET /{long}"), 1024, 414),
            (format!("GET /{long} HTTP/1.1\r\n\r\n"), 120, 431),
            (format!("GET / HTTP/1.1\r\nX: {long}\x01\r\n\r\n"), 200, 431),
        ];
        for (request, max_header_bytes, want) in cases {
            let request = request.as_bytes();
            let limits = limits(max_header_bytes);
            let bytewise = bytewise_rejection(request, &limits);
            let whole = match parse_head(request, &limits) {
                HeadResult::Reject(s) => s,
                other => panic!("{other:?}"),
            };
            let shown = String::from_utf8_lossy(request);
            assert_eq!(bytewise, want, "a byte per read: {shown:?}");
            assert_eq!(whole, want, "one read: {shown:?}");
        }
    }
}
