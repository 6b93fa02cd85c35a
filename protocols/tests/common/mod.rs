//! Shared helpers for the HTTP server tests: a connection on a `StringTransport` driven
//! by a `ManualClock`, and a small response parser (on `httparse`) for what it wrote.
#![allow(dead_code)]

use std::rc::Rc;
use std::time::Duration;

use ropewalk_protocols::http::{
    Handler, HttpConnection, HttpServer, Request, Response, ServerConfig,
};
use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::testing::StringTransport;
use ropewalk_reactor::{ManualClock, Protocol};

/// One server connection over a `StringTransport`, with the clock that runs its timers.
pub struct Conn {
    pub clock: ManualClock,
    pub conn: HttpConnection,
    pub t: Rc<StringTransport>,
}

impl Conn {
    pub fn new(handler: impl Handler) -> Conn {
        Conn::with_config(handler, ServerConfig::default())
    }

    pub fn with_config(handler: impl Handler, config: ServerConfig) -> Conn {
        let clock = ManualClock::new();
        let server = HttpServer::with_config(&clock, handler, config);
        let mut conn = server.connection();
        let t = StringTransport::connect(&mut conn);
        Conn { clock, conn, t }
    }

    /// Feeds `data` to the connection, as one read.
    pub fn send(&mut self, data: impl AsRef<[u8]>) {
        self.conn.data_received(data.as_ref()).unwrap();
    }

    /// Feeds `data` one byte per read.
    pub fn send_bytewise(&mut self, data: impl AsRef<[u8]>) {
        for b in data.as_ref() {
            self.conn.data_received(std::slice::from_ref(b)).unwrap();
        }
    }

    /// Everything written so far, lossily as text.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.t.value()).into_owned()
    }

    /// Everything written so far, parsed as responses (none to HEAD).
    pub fn responses(&self) -> Vec<Resp> {
        parse_responses(&self.t.value())
    }

    /// The only response written; panics unless there is exactly one.
    pub fn response(&self) -> Resp {
        let mut all = self.responses();
        assert_eq!(
            all.len(),
            1,
            "expected one response, got {:?}",
            self.output()
        );
        all.remove(0)
    }

    pub fn closed(&self) -> bool {
        self.t.is_disconnecting()
    }

    pub fn advance(&self, secs: f64) {
        self.clock.advance(Duration::from_secs_f64(secs));
    }

    /// The client goes away.
    pub fn lose(&mut self) {
        self.conn.connection_lost(Failure::msg("connection lost"));
    }
}

/// The status of the only response to `request`, checking the connection closed after it.
pub fn status_and_closed(request: impl AsRef<[u8]>) -> (u16, bool) {
    let mut c = Conn::new(echo);
    c.send(request);
    let r = c.response();
    (r.status, c.closed())
}

/// Answers with the request's method, path and body: `GET / 0:`.
pub fn echo(req: Request) -> Result<Response, Failure> {
    Ok(Response::text(format!(
        "{} {} {}:{}",
        req.method(),
        req.target(),
        req.body().len(),
        String::from_utf8_lossy(req.body())
    )))
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub version: u8,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body was chunked.
    pub chunked: bool,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Parses consecutive responses. Bodies are framed by Content-Length, chunked, or the end
/// of the bytes; 1xx, 204 and 304 have none. Use [`parse_head_responses`] for HEAD.
pub fn parse_responses(mut bytes: &[u8]) -> Vec<Resp> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (resp, n) = parse_one(bytes, false);
        out.push(resp);
        bytes = &bytes[n..];
    }
    out
}

/// Parses responses that carry no body (answers to HEAD).
pub fn parse_head_responses(mut bytes: &[u8]) -> Vec<Resp> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (resp, n) = parse_one(bytes, true);
        out.push(resp);
        bytes = &bytes[n..];
    }
    out
}

fn parse_one(bytes: &[u8], head: bool) -> (Resp, usize) {
    let mut storage = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut storage);
    let n = match r.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!(
            "bad response ({other:?}): {:?}",
            String::from_utf8_lossy(bytes)
        ),
    };
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let mut resp = Resp {
        version: r.version.unwrap(),
        status: r.code.unwrap(),
        headers,
        body: Vec::new(),
        chunked: false,
    };
    let rest = &bytes[n..];
    if head || resp.status < 200 || resp.status == 204 || resp.status == 304 {
        return (resp, n);
    }
    if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().unwrap();
        assert!(rest.len() >= len, "short body");
        resp.body = rest[..len].to_vec();
        return (resp, n + len);
    }
    if resp
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        resp.chunked = true;
        let mut pos = 0;
        loop {
            let line_end = rest[pos..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size line")
                + pos;
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[pos..line_end]).unwrap(), 16)
                    .unwrap();
            pos = line_end + 2;
            if size == 0 {
                assert_eq!(&rest[pos..pos + 2], b"\r\n", "no trailers expected");
                pos += 2;
                break;
            }
            resp.body.extend_from_slice(&rest[pos..pos + size]);
            pos += size;
            assert_eq!(&rest[pos..pos + 2], b"\r\n");
            pos += 2;
        }
        return (resp, n + pos);
    }
    // Close-delimited.
    resp.body = rest.to_vec();
    (resp, bytes.len())
}

/// A GET for `path` with a Host header.
pub fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: example.test\r\n\r\n")
}
