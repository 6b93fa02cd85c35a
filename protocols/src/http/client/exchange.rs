//! One exchange: a request written ([`serialize_request`]) and its response read
//! back, head then body, by the wire rules the server uses too; the connection it ran
//! on is then released to the pool or closed ([`keeps_alive`]).

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use ropewalk_deferred::Resolver;
use ropewalk_reactor::Target;

use super::pool::Conn;
use super::url::Url;
use super::{ClientConfig, ClientError, ClientResponse};
use crate::http::wire::chunked::ChunkedDecoder;
use crate::http::wire::framing::{body_framing, BodyFraming, FramingError, FramingFields, Message};
use crate::http::wire::response_head::{parse_response_head, ResponseHead, ResponseHeadError};
use crate::http::wire::token::is_token;
use crate::http::{Headers, Version};

pub(super) fn serialize_request(
    method: &str,
    url: &Url,
    mut headers: Headers,
    body: &[u8],
    config: &ClientConfig,
) -> Result<Vec<u8>, ClientError> {
    if !is_token(method) {
        return Err(ClientError::InvalidRequest(format!(
            "method {method:?} is not a token"
        )));
    }
    for (name, value) in headers.iter() {
        if !is_token(name) {
            return Err(ClientError::InvalidRequest(format!(
                "header name {name:?} is not a token"
            )));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(ClientError::InvalidRequest(format!(
                "header {name} has CR, LF or NUL in its value"
            )));
        }
    }
    headers.remove("content-length");
    headers.remove("transfer-encoding");
    headers.remove("connection");
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(format!("{method} {} HTTP/1.1\r\n", url.target).as_bytes());
    let mut field = |name: &str, value: &str| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    if !headers.contains("host") {
        field("Host", &url.host_header());
    }
    if let Some(ua) = &config.user_agent {
        if !headers.contains("user-agent") {
            field("User-Agent", ua);
        }
    }
    for (name, value) in headers.iter() {
        field(name, value);
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        field("Content-Length", &body.len().to_string());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Ok(out)
}

/// How the rest of a response body is read.
pub(super) enum BodyReader {
    /// This many bytes are left.
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// Where an exchange is in reading its response.
pub(super) enum ReadingResponse {
    Head,
    Body {
        response: ClientResponse,
        body: BodyReader,
    },
    Done,
}

/// One request and its response; shared by the connection carrying it (or the queue
/// it waits in) and the canceller.
pub(super) struct Exchange {
    /// The serialized request, kept for a retry.
    pub(super) request: Rc<[u8]>,
    pub(super) head_only: bool,
    pub(super) idempotent: bool,
    /// Already sent once more after a reused connection failed.
    pub(super) retried: bool,
    /// Sent on a connection that had carried an earlier exchange.
    pub(super) reused: bool,
    /// `host:port` (`https://host:port` over TLS): the pool's key.
    pub(super) key: String,
    pub(super) target: Target,
    /// Over TLS: the server's name, which its certificate must match.
    pub(super) tls_name: Option<String>,
    pub(super) config: Rc<ClientConfig>,
    pub(super) conn: Option<Weak<RefCell<Conn>>>,
    pub(super) resolver: Option<Resolver<ClientResponse>>,
    pub(super) buf: Vec<u8>,
    pub(super) reading: ReadingResponse,
}

/// What parsing decided.
pub(super) enum Parsed {
    More,
    Complete(ClientResponse),
    Failed(ClientError),
}

impl Exchange {
    /// A complete response: the connection goes back to the pool (or is closed), then
    /// the resolver fires, outside every borrow, since its callbacks may do anything.
    pub(super) fn complete(ex: &Rc<RefCell<Exchange>>, response: ClientResponse) {
        let (resolver, conn, leftover) = {
            let mut e = ex.borrow_mut();
            e.reading = ReadingResponse::Done;
            let leftover = !e.buf.is_empty();
            e.buf = Vec::new();
            (e.resolver.take(), e.conn.take(), leftover)
        };
        if let Some(conn) = conn.and_then(|c| c.upgrade()) {
            if !leftover && keeps_alive(&response) {
                Conn::release(&conn);
            } else {
                let t = conn.borrow().transport.clone();
                if let Some(t) = t {
                    t.lose_connection();
                }
            }
        }
        if let Some(r) = resolver {
            let _ = r.callback(response);
        }
    }

    /// Fails the exchange and aborts its connection.
    pub(super) fn fail(ex: &Rc<RefCell<Exchange>>, error: ClientError) {
        log::debug!("http client: {error}");
        let (resolver, conn) = {
            let mut e = ex.borrow_mut();
            e.reading = ReadingResponse::Done;
            e.buf = Vec::new();
            (e.resolver.take(), e.conn.take())
        };
        if let Some(conn) = conn.and_then(|c| c.upgrade()) {
            let t = conn.borrow().transport.clone();
            if let Some(t) = t {
                t.abort_connection();
            }
        }
        if let Some(r) = resolver {
            let _ = r.errback(error);
        }
    }

    /// Cancelled (or timed out): stop connecting, drop the connection; a queued
    /// exchange is skipped when its turn comes.
    pub(super) fn abandon(ex: &Rc<RefCell<Exchange>>) {
        let (conn, resolver) = {
            let mut e = ex.borrow_mut();
            e.reading = ReadingResponse::Done;
            (e.conn.take(), e.resolver.take())
        };
        if let Some(conn) = conn.and_then(|c| c.upgrade()) {
            let (transport, connect) = {
                let mut c = conn.borrow_mut();
                (c.transport.clone(), c.connect.take())
            };
            match (transport, connect) {
                (Some(t), _) => t.abort_connection(),
                (None, Some(c)) => c.cancel(),
                (None, None) => {}
            }
        }
        // The Deferred already has its result (Cancelled); this late fire is swallowed.
        drop(resolver);
    }

    pub(super) fn is_done(&self) -> bool {
        matches!(self.reading, ReadingResponse::Done)
    }

    #[inline]
    pub(super) fn parse(&mut self) -> Parsed {
        loop {
            match &mut self.reading {
                ReadingResponse::Done => return Parsed::More,
                ReadingResponse::Head => match self.parse_head() {
                    Ok(true) => continue,
                    Ok(false) => return Parsed::More,
                    Err(e) => return Parsed::Failed(e),
                },
                ReadingResponse::Body { response, body } => {
                    let max = self.config.max_body;
                    let done = match body {
                        BodyReader::Length(left) => {
                            let n = (*left).min(self.buf.len() as u64) as usize;
                            response.body.extend_from_slice(&self.buf[..n]);
                            self.buf.drain(..n);
                            *left -= n as u64;
                            *left == 0
                        }
                        BodyReader::Chunked(decoder) => {
                            match decoder.decode(&self.buf, &mut response.body) {
                                Ok(n) => {
                                    self.buf.drain(..n);
                                    decoder.is_done()
                                }
                                Err(413) => return Parsed::Failed(ClientError::BodyTooLarge(max)),
                                Err(_) => {
                                    return Parsed::Failed(ClientError::Malformed(
                                        "bad chunked framing".into(),
                                    ))
                                }
                            }
                        }
                        BodyReader::UntilClose => {
                            response.body.append(&mut self.buf);
                            if response.body.len() as u64 > max {
                                return Parsed::Failed(ClientError::BodyTooLarge(max));
                            }
                            false
                        }
                    };
                    if !done {
                        return Parsed::More;
                    }
                    let ReadingResponse::Body { response, .. } =
                        std::mem::replace(&mut self.reading, ReadingResponse::Done)
                    else {
                        unreachable!("matched above")
                    };
                    return Parsed::Complete(response);
                }
            }
        }
    }

    /// Parses a response head from the buffer: `Ok(true)` if one was taken (a `1xx`
    /// skipped, or the final head), `Ok(false)` if more bytes are needed.
    pub(super) fn parse_head(&mut self) -> Result<bool, ClientError> {
        let config = &self.config;
        let parsed = parse_response_head(&self.buf, config.max_head_bytes, config.max_headers);
        let (head, n) = match parsed {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(false),
            Err(ResponseHeadError::TooLarge) => {
                return Err(ClientError::HeadTooLarge(config.max_head_bytes))
            }
            Err(ResponseHeadError::TooManyHeaders) => {
                return Err(ClientError::TooManyHeaders(config.max_headers))
            }
            Err(ResponseHeadError::Malformed(m)) => return Err(ClientError::Malformed(m)),
        };
        self.buf.drain(..n);
        let ResponseHead {
            status,
            reason,
            version,
            headers,
        } = head;
        if status == 101 {
            return Err(ClientError::Malformed(
                "unexpected 101 Switching Protocols (no upgrade was asked for)".into(),
            ));
        }
        if (100..200).contains(&status) {
            // 100 Continue, 103 Early Hints, …: the final response follows.
            return Ok(true);
        }
        let body = self.body_reader(status, &headers)?;
        self.reading = ReadingResponse::Body {
            response: ClientResponse {
                status,
                reason,
                version,
                headers,
                body: Vec::new(),
            },
            body,
        };
        Ok(true)
    }

    /// How the body of a response with `status` and `headers` is read: the framing the
    /// server uses for requests, with a response's rules (RFC 9112 §6.3).
    pub(super) fn body_reader(
        &self,
        status: u16,
        headers: &Headers,
    ) -> Result<BodyReader, ClientError> {
        let max = self.config.max_body;
        let message = Message::Response {
            status,
            to_head: self.head_only,
        };
        match body_framing(message, headers, &FramingFields::of(headers), max) {
            Ok(BodyFraming::Length(n)) => Ok(BodyReader::Length(n)),
            Ok(BodyFraming::Chunked) => Ok(BodyReader::Chunked(ChunkedDecoder::new(max))),
            Ok(BodyFraming::UntilClose) => Ok(BodyReader::UntilClose),
            Err(FramingError::TooLarge) => Err(ClientError::BodyTooLarge(max)),
            Err(e) => {
                let field = match e {
                    FramingError::InvalidLength => "content-length",
                    _ => "transfer-encoding",
                };
                let values: Vec<&str> = headers.get_all(field).collect();
                Err(ClientError::Malformed(format!(
                    "{e} {:?}",
                    values.join(", ")
                )))
            }
        }
    }
}

/// Whether the connection that carried `response` may carry another request.
#[inline]
pub(super) fn keeps_alive(response: &ClientResponse) -> bool {
    let has = |token: &str| {
        response
            .headers
            .get_all("connection")
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    match response.version {
        Version::Http11 => !has("close"),
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing: close after.
        Version::Http10 => {
            has("keep-alive") && !has("close") && !response.headers.contains("transfer-encoding")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Headers;

    #[test]
    pub(super) fn request_bytes() {
        let url = Url::parse("http://h:81/p?q").unwrap();
        let mut headers = Headers::new();
        headers.append("Content-Length", "99");
        headers.append("X-A", "1");
        let out =
            serialize_request("POST", &url, headers, b"hi", &ClientConfig::default()).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("POST /p?q HTTP/1.1\r\nHost: h:81\r\nUser-Agent: ropewalk/"));
        assert!(out.ends_with("X-A: 1\r\nContent-Length: 2\r\n\r\nhi"));
        let mut headers = Headers::new();
        headers.append("X-A", "1\r\nX-B: 2");
        assert!(serialize_request("GET", &url, headers, b"", &ClientConfig::default()).is_err());
        assert!(
            serialize_request("G T", &url, Headers::new(), b"", &ClientConfig::default()).is_err()
        );
    }
}
