//! HTTP responses, read strictly: a connection that parses each response head and
//! framed body byte by byte and calls anything off the grammar a failure.

use std::io::{self, Read};
use std::net::TcpStream;

use crate::context::is_timeout;

#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Resp {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

#[derive(Debug)]
pub(crate) enum ReadErr {
    /// No byte for the read timeout: a hang.
    Timeout(usize),
    /// End of stream (or reset) before a response started.
    Closed,
    /// End of stream, reset or error inside a response.
    Cut(String),
    /// Not well-formed HTTP/1.1.
    Bad(String),
}

impl std::fmt::Display for ReadErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadErr::Timeout(n) => write!(f, "timed out with {n} bytes of a response read"),
            ReadErr::Closed => write!(f, "closed before a response"),
            ReadErr::Cut(e) => write!(f, "response cut: {e}"),
            ReadErr::Bad(e) => write!(f, "malformed response: {e}"),
        }
    }
}

/// A client connection with a read buffer.
pub(crate) struct HttpConn {
    pub(crate) s: TcpStream,
    pub(crate) buf: Vec<u8>,
}

pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl HttpConn {
    pub(crate) fn new(s: TcpStream) -> HttpConn {
        HttpConn { s, buf: Vec::new() }
    }

    /// Reads more; `Ok(0)` at the end of the stream (a reset counts as the end).
    pub(crate) fn fill(&mut self) -> Result<usize, io::Error> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.s.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(0),
                Err(e) => return Err(e),
            }
        }
    }

    /// Fills until `n` bytes are buffered.
    pub(crate) fn need(&mut self, n: usize) -> Result<(), ReadErr> {
        while self.buf.len() < n {
            match self.fill() {
                Ok(0) => {
                    return Err(ReadErr::Cut(format!(
                        "EOF with {} of {n} bytes",
                        self.buf.len()
                    )))
                }
                Ok(_) => {}
                Err(e) if is_timeout(&e) => return Err(ReadErr::Timeout(self.buf.len())),
                Err(e) => return Err(ReadErr::Cut(e.to_string())),
            }
        }
        Ok(())
    }

    /// Reads one response, checking its syntax; `head_only` for HEAD.
    pub(crate) fn response(&mut self, head_only: bool) -> Result<Resp, ReadErr> {
        let end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p;
            }
            if self.buf.len() > 64 * 1024 {
                return Err(ReadErr::Bad("head over 64 KiB".into()));
            }
            match self.fill() {
                Ok(0) if self.buf.is_empty() => return Err(ReadErr::Closed),
                Ok(0) => {
                    return Err(ReadErr::Cut(format!(
                        "EOF inside a head: {:?}",
                        show(&self.buf)
                    )))
                }
                Ok(_) => {}
                Err(e) if is_timeout(&e) => return Err(ReadErr::Timeout(self.buf.len())),
                Err(e) if self.buf.is_empty() => {
                    return Err(ReadErr::Cut(format!("before a response: {e}")))
                }
                Err(e) => return Err(ReadErr::Cut(e.to_string())),
            }
        };
        let head = String::from_utf8(self.buf[..end].to_vec())
            .map_err(|_| ReadErr::Bad(format!("head not UTF-8: {:?}", show(&self.buf[..end]))))?;
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let line = lines.next().unwrap_or_default();
        let bad = |what: &str| ReadErr::Bad(format!("{what}: {line:?}"));
        let rest = line
            .strip_prefix("HTTP/1.1 ")
            .ok_or_else(|| bad("status line"))?;
        let (code, reason) = rest.split_at(rest.len().min(3));
        let status: u16 = code
            .parse()
            .ok()
            .filter(|s| (100..600).contains(s) && code.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| bad("status code"))?;
        if !reason.starts_with(' ') || reason.bytes().any(|b| b.is_ascii_control()) {
            return Err(bad("reason"));
        }
        let mut headers = Vec::new();
        for l in lines {
            let (name, value) = l
                .split_once(": ")
                .ok_or_else(|| ReadErr::Bad(format!("header line {l:?}")))?;
            if name.is_empty() || !name.bytes().all(is_tchar) {
                return Err(ReadErr::Bad(format!("header name {name:?}")));
            }
            if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err(ReadErr::Bad(format!("header value {l:?}")));
            }
            headers.push((name.to_string(), value.to_string()));
        }
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        // Interim responses (100 Continue) are a status line alone.
        if status < 200 {
            return Ok(resp);
        }
        for required in ["date", "server"] {
            if resp.header(required).is_none() {
                return Err(ReadErr::Bad(format!("no {required} field in {head:?}")));
            }
        }
        let lengths: Vec<&str> = resp
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.as_str())
            .collect();
        let chunked = resp
            .header("transfer-encoding")
            .map(|v| v.eq_ignore_ascii_case("chunked"));
        if lengths.len() > 1 || (!lengths.is_empty() && chunked.is_some()) {
            return Err(ReadErr::Bad(format!("conflicting framing in {head:?}")));
        }
        let no_body = head_only || status == 204 || status == 304 || status < 200;
        if no_body {
            return Ok(resp);
        }
        if let Some(len) = lengths.first() {
            let n: usize = len
                .parse()
                .ok()
                .filter(|_| len.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| ReadErr::Bad(format!("Content-Length {len:?}")))?;
            self.need(n)?;
            resp.body = self.buf.drain(..n).collect();
        } else if chunked == Some(true) {
            loop {
                let line_end = loop {
                    if let Some(p) = find(&self.buf, b"\r\n") {
                        break p;
                    }
                    let want = self.buf.len() + 1;
                    self.need(want)?;
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).to_string();
                let size = usize::from_str_radix(&size_text, 16)
                    .map_err(|_| ReadErr::Bad(format!("chunk size {size_text:?}")))?;
                self.buf.drain(..line_end + 2);
                self.need(size + 2)?;
                if &self.buf[size..size + 2] != b"\r\n" {
                    return Err(ReadErr::Bad("chunk not followed by CRLF".into()));
                }
                resp.body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    break;
                }
            }
        } else if chunked.is_some() {
            return Err(ReadErr::Bad(format!("transfer coding in {head:?}")));
        } else {
            // Delimited by the close: only with `Connection: close`.
            if !resp.closes() {
                return Err(ReadErr::Bad(format!("no length and no close: {head:?}")));
            }
            loop {
                match self.fill() {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if is_timeout(&e) => return Err(ReadErr::Timeout(self.buf.len())),
                    Err(e) => return Err(ReadErr::Cut(e.to_string())),
                }
            }
            resp.body = std::mem::take(&mut self.buf);
        }
        Ok(resp)
    }

    /// The server closes next: end of stream (or a reset) with nothing more sent.
    pub(crate) fn expect_close(&mut self) -> Result<(), String> {
        if !self.buf.is_empty() {
            return Err(format!(
                "bytes after the last response: {:?}",
                show(&self.buf)
            ));
        }
        match self.fill() {
            Ok(0) => Ok(()),
            Ok(_) => Err(format!(
                "bytes after the last response: {:?}",
                show(&self.buf)
            )),
            Err(e) if is_timeout(&e) => Err("not closed within the bound".into()),
            Err(_) => Ok(()),
        }
    }
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The first bytes of `b`, printable.
pub(crate) fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(160)]).to_string();
    if b.len() > 160 {
        format!("{s}…({} bytes)", b.len())
    } else {
        s
    }
}
