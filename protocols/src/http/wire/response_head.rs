//! Response heads (RFC 9112 §4), the client's side: [`parse_response_head`] parses
//! one on `httparse` within the client's limits. It is lenient where RFC 9112 lets a
//! user agent be, and a user agent forwards no head, so nothing is smuggled through it:
//! a bare LF ends a line (§2.2), and an obs-fold becomes a space (§5.2). What the head means for the body is
//! [`body_framing`](super::framing::body_framing)'s to say; what it means for the
//! connection, the client's.

use crate::http::{Headers, Version};

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) status: u16,
    pub(crate) reason: String,
    pub(crate) version: Version,
    pub(crate) headers: Headers,
}

/// Why a response head is refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ResponseHeadError {
    /// Longer than the limit on head bytes.
    TooLarge,
    /// More fields than the limit.
    TooManyHeaders,
    /// Not a response head; the message says what is wrong.
    Malformed(String),
}

/// Parses the response head at the start of `buf`: `Ok(None)` if more bytes are
/// needed, else the head and how many bytes it took.
#[inline]
pub(crate) fn parse_response_head(
    buf: &[u8],
    max_head_bytes: usize,
    max_headers: usize,
) -> Result<Option<(ResponseHead, usize)>, ResponseHeadError> {
    // Bytes past the limit are never looked at: a refusal is then the same however the
    // head arrives (whole, or in pieces that pass the limit before its end).
    let buf = &buf[..buf.len().min(max_head_bytes.saturating_add(1))];
    let mut storage = vec![httparse::EMPTY_HEADER; max_headers];
    let mut parsed = httparse::Response::new(&mut storage);
    let n = match httparse::ParserConfig::default()
        .allow_obsolete_multiline_headers_in_responses(true)
        .parse_response(&mut parsed, buf)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > max_head_bytes {
                return Err(ResponseHeadError::TooLarge);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(ResponseHeadError::TooManyHeaders),
        Err(e) => {
            return Err(ResponseHeadError::Malformed(format!(
                "bad response head: {e}"
            )))
        }
    };
    if n > max_head_bytes {
        return Err(ResponseHeadError::TooLarge);
    }
    let status = parsed.code.unwrap_or(0);
    if !(100..=999).contains(&status) {
        return Err(ResponseHeadError::Malformed(format!("bad status {status}")));
    }
    let version = match parsed.version {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    };
    let reason = parsed.reason.unwrap_or("").to_string();
    let mut headers = Headers::new();
    for h in parsed.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        if value.contains('\n') {
            headers.append(h.name, unfold(&value));
        } else {
            headers.append(h.name, value.trim_matches([' ', '\t']));
        }
    }
    let head = ResponseHead {
        status,
        reason,
        version,
        headers,
    };
    Ok(Some((head, n)))
}

/// A value with obs-folds (`a\r\n b`) on one line: each fold, with the blanks around
/// it, becomes one SP, as RFC 9112 §5.2 tells a user agent to do before interpreting the
/// field.
fn unfold(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for line in value.split('\n') {
        let line = line.trim_end_matches('\r').trim_matches([' ', '\t']);
        if line.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_its_length_and_the_limits() {
        let buf = b"HTTP/1.0 404 Not Here\r\nX-A:  1 \r\n\r\nbody";
        let (head, n) = parse_response_head(buf, 1024, 10).unwrap().unwrap();
        assert_eq!(n, buf.len() - 4);
        assert_eq!((head.status, &*head.reason), (404, "Not Here"));
        assert_eq!(head.version, Version::Http10);
        assert_eq!(head.headers.get("x-a"), Some("1"));
        assert!(matches!(
            parse_response_head(&buf[..10], 1024, 10),
            Ok(None)
        ));
        assert_eq!(
            parse_response_head(&buf[..10], 5, 10).unwrap_err(),
            ResponseHeadError::TooLarge
        );
        assert_eq!(
            parse_response_head(buf, 20, 10).unwrap_err(),
            ResponseHeadError::TooLarge
        );
        assert_eq!(
            parse_response_head(buf, 1024, 0).unwrap_err(),
            ResponseHeadError::TooManyHeaders
        );
        assert!(matches!(
            parse_response_head(b"HTTP/1.1 099 X\r\n\r\n", 1024, 10),
            Err(ResponseHeadError::Malformed(_))
        ));
    }

    #[test]
    fn obs_fold_is_replaced_with_a_space() {
        let buf = b"HTTP/1.1 200 OK\r\nA: 1\r\n 2\r\n\t3\r\nB:\r\n  x \r\nC: c\nD: d\n\r\n";
        let (head, n) = parse_response_head(buf, 1024, 10).unwrap().unwrap();
        assert_eq!(n, buf.len());
        let fields: Vec<(&str, &str)> = head.headers.iter().collect();
        assert_eq!(fields, [("A", "1 2 3"), ("B", "x"), ("C", "c"), ("D", "d")]);
    }

    /// Found by the http_client_response fuzz target: a head past the byte limit that also
    /// has too many fields was refused as too large when it came in pieces, but for its
    /// fields when it came whole. Only the first `max + 1` bytes are looked at, so the
    /// refusal is the same however the head is cut.
    #[test]
    fn a_refusal_does_not_depend_on_how_the_head_is_cut() {
        let mut buf = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..20 {
            buf.extend_from_slice(format!("X-Field-{i}: {}\r\n", "v".repeat(60)).as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        let (max, fields) = (1024, 16);
        let whole = parse_response_head(&buf, max, fields).unwrap_err();
        let cut = (1..=buf.len())
            .find_map(|n| parse_response_head(&buf[..n], max, fields).err())
            .unwrap();
        assert_eq!(whole, cut);
        assert_eq!(whole, ResponseHeadError::TooLarge);
    }
}
