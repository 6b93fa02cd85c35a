//! A response: [`Response`], what a handler answers, with its body whole or streamed
//! through a [`BodyWriter`]; and how the server writes it ([`serialize`]): the head
//! (the common one cached, see [`HeadCache`]), the framing of the body, the
//! `Connection` field, and the access log line.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use ropewalk_deferred::{Deferred, Resolver};
use ropewalk_reactor::{Address, TransportRef};

use super::connection::Slot;
use crate::http::wire::date::{clf_date, DateLines};
use crate::http::wire::head::{
    finish_head, reason_line, write_field, write_length, write_status_line,
};
use crate::http::{Headers, Version};

/// What a handler answers.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::http::Response;
///
/// let r = Response::text("Hello, World!").with_header("X-Rope", "walk");
/// assert_eq!(r.status(), 200);
/// assert_eq!(r.headers().get("content-type"), Some("text/plain; charset=utf-8"));
/// ```
pub struct Response {
    status: u16,
    headers: Headers,
    pub(crate) body: Body,
}

/// A response body.
pub(crate) enum Body {
    /// The whole body: owned, or static text sent without a copy.
    Full(Cow<'static, [u8]>),
    Stream(BodyWriter),
}

/// A header list of one static `Content-Type` field (no allocation).
macro_rules! content_type {
    ($value:literal) => {
        Headers::from_static_line(concat!("Content-Type: ", $value, "\r\n"))
    };
}

const TEXT_PLAIN: Headers = content_type!("text/plain; charset=utf-8");
const TEXT_HTML: Headers = content_type!("text/html; charset=utf-8");
const OCTET_STREAM: Headers = content_type!("application/octet-stream");

impl Response {
    /// An empty response with `status`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ropewalk_protocols::http::Response::new(204).status(), 204);
    /// ```
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Headers::new(),
            body: Body::Full(Cow::Borrowed(&[])),
        }
    }

    /// 200 with a UTF-8 text body.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = ropewalk_protocols::http::Response::text("hi");
    /// assert_eq!(r.body_bytes(), Some(&b"hi"[..]));
    /// ```
    ///
    /// # Performance
    ///
    /// The body is converted into a `String`, which copies a `&str`; for text known at
    /// compile time, [`static_text`](Self::static_text) sends it without a copy.
    pub fn text(body: impl Into<String>) -> Response {
        Response::with_headers(200, TEXT_PLAIN).with_body(body.into().into_bytes())
    }

    /// 200 with a UTF-8 text body that lives for the whole program: nothing is copied or
    /// allocated (the `Content-Type` field is static too).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = ropewalk_protocols::http::Response::static_text("Hello, World!");
    /// assert_eq!(r.body_bytes(), Some(&b"Hello, World!"[..]));
    /// assert_eq!(r.headers().get("content-type"), Some("text/plain; charset=utf-8"));
    /// ```
    pub fn static_text(body: &'static str) -> Response {
        Response::with_headers(200, TEXT_PLAIN).with_static_body(body.as_bytes())
    }

    /// 200 with an HTML body.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = ropewalk_protocols::http::Response::html("<p>hi</p>");
    /// assert_eq!(r.headers().get("content-type"), Some("text/html; charset=utf-8"));
    /// ```
    pub fn html(body: impl Into<String>) -> Response {
        Response::with_headers(200, TEXT_HTML).with_body(body.into().into_bytes())
    }

    /// 200 with a binary body (`application/octet-stream`).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = ropewalk_protocols::http::Response::bytes(vec![0, 1]);
    /// assert_eq!(r.body_bytes().unwrap().len(), 2);
    /// ```
    pub fn bytes(body: Vec<u8>) -> Response {
        Response::with_headers(200, OCTET_STREAM).with_body(body)
    }

    /// A response with a plain-text message for an error `status` (no internals).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = ropewalk_protocols::http::Response::error(404);
    /// assert_eq!(r.body_bytes(), Some(&b"Not Found\n"[..]));
    /// ```
    pub fn error(status: u16) -> Response {
        Response::with_headers(status, TEXT_PLAIN).with_static_body(reason_line(status).as_bytes())
    }

    /// An empty response with `headers` (static ones: no allocation).
    fn with_headers(status: u16, headers: Headers) -> Response {
        Response {
            status,
            headers,
            body: Body::Full(Cow::Borrowed(&[])),
        }
    }

    /// A streaming response: the body is written later through the [`BodyWriter`], sent
    /// as it comes (chunked on HTTP/1.1 unless a `Content-Length` is set), never
    /// buffered whole.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::Response;
    ///
    /// let (resp, body) = Response::streaming(200);
    /// body.write(b"part 1, ");
    /// body.write(b"part 2");
    /// body.finish();
    /// assert_eq!(resp.status(), 200);
    /// ```
    pub fn streaming(status: u16) -> (Response, BodyWriter) {
        let writer = BodyWriter::new();
        let resp = Response {
            status,
            headers: Headers::new(),
            body: Body::Stream(writer.clone()),
        };
        (resp, writer)
    }

    /// Sets the status.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = ropewalk_protocols::http::Response::text("gone").with_status(410);
    /// assert_eq!(r.status(), 410);
    /// ```
    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    /// Adds a header field.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = ropewalk_protocols::http::Response::new(200).with_header("Cache-Control", "no-store");
    /// assert!(r.headers().contains("cache-control"));
    /// ```
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.append(name, value);
        self
    }

    /// Replaces the body.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = ropewalk_protocols::http::Response::new(200).with_body(b"x".to_vec());
    /// assert_eq!(r.body_bytes(), Some(&b"x"[..]));
    /// ```
    pub fn with_body(mut self, body: Vec<u8>) -> Response {
        self.body = Body::Full(Cow::Owned(body));
        self
    }

    /// Replaces the body with bytes that live for the whole program (no copy).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = ropewalk_protocols::http::Response::new(200).with_static_body(b"x");
    /// assert_eq!(r.body_bytes(), Some(&b"x"[..]));
    /// ```
    pub fn with_static_body(mut self, body: &'static [u8]) -> Response {
        self.body = Body::Full(Cow::Borrowed(body));
        self
    }

    /// The status code.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ropewalk_protocols::http::Response::error(500).status(), 500);
    /// ```
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The header fields.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ropewalk_protocols::http::Response::new(200).headers().is_empty());
    /// ```
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The header fields, to change.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut r = ropewalk_protocols::http::Response::new(200);
    /// r.headers_mut().insert("X-A", "1");
    /// assert_eq!(r.headers().get("x-a"), Some("1"));
    /// ```
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The body, unless it is streamed.
    ///
    /// # Examples
    ///
    /// ```
    /// let (r, _w) = ropewalk_protocols::http::Response::streaming(200);
    /// assert!(r.body_bytes().is_none());
    /// ```
    pub fn body_bytes(&self) -> Option<&[u8]> {
        match &self.body {
            Body::Full(b) => Some(b),
            Body::Stream(_) => None,
        }
    }
}

impl Response {
    /// A response of these parts (a whole body that came from another thread).
    pub(super) fn from_parts(status: u16, headers: Headers, body: Body) -> Response {
        Response {
            status,
            headers,
            body,
        }
    }

    /// The response's parts, to send its head and a whole body to another thread.
    pub(super) fn into_parts(self) -> (u16, Headers, Body) {
        (self.status, self.headers, self.body)
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field(
                "body",
                &match &self.body {
                    Body::Full(b) => format!("{} bytes", b.len()),
                    Body::Stream(_) => "stream".to_string(),
                },
            )
            .finish()
    }
}

/// Where a streamed body goes once the server starts sending it.
pub(crate) trait BodySink {
    fn data(&self, data: &[u8]);
    /// `len` bytes of `file` from `offset`, as the next piece of the body.
    fn file(&self, file: Rc<File>, offset: u64, len: u64);
    fn end(&self);
    /// The body cannot be completed: drop the connection.
    fn abort(&self);
}

/// A piece of a body written before the server took the response.
enum Early {
    Bytes(Vec<u8>),
    File(Rc<File>, u64, u64),
}

#[derive(Default)]
struct StreamState {
    /// Written before the server took the response.
    early: Vec<Early>,
    finished: bool,
    aborted: bool,
    paused: bool,
    sink: Option<Rc<dyn BodySink>>,
    waiting: Vec<Resolver<()>>,
}

/// How much a writer holds before the server takes the response, before
/// [`BodyWriter::ready`] waits.
const EARLY_LIMIT: usize = 64 * 1024;

/// Writes a streamed response body ([`Response::streaming`]). Cheap to clone.
///
/// Writes go to the connection as they come. When the client reads slower than the body
/// is written, the writer is paused ([`is_paused`](Self::is_paused)); wait for
/// [`ready`](Self::ready) before writing more to keep memory bounded. Writes made before
/// the server takes the response (it waits behind earlier pipelined responses) are held;
/// past 64 KiB of them, `ready` waits too.
///
/// # Examples
///
/// A handler that streams two pieces a second apart, driven by a hand-turned clock:
///
/// ```
/// use std::time::Duration;
/// use ropewalk_protocols::http::{HttpServer, Request, Response};
/// use ropewalk_reactor::{testing::StringTransport, Clock, ManualClock, Protocol};
///
/// let clock = ManualClock::new();
/// let timers = clock.clone();
/// let server = HttpServer::new(&clock, move |_: Request| {
///     let (resp, body) = Response::streaming(200);
///     body.write(b"first\n");
///     timers.call_later(Duration::from_secs(1), move || {
///         body.write(b"second\n");
///         body.finish();
///     });
///     Ok(resp)
/// });
/// let mut conn = server.connection();
/// let t = StringTransport::connect(&mut conn);
/// conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
/// let early = String::from_utf8(t.value()).unwrap();
/// assert!(early.to_ascii_lowercase().contains("transfer-encoding: chunked\r\n"));
/// assert!(early.ends_with("6\r\nfirst\n\r\n"), "{early:?}");
///
/// clock.advance(Duration::from_secs(1));
/// let all = String::from_utf8(t.value()).unwrap();
/// assert!(all.ends_with("7\r\nsecond\n\r\n0\r\n\r\n"), "{all:?}");
/// ```
#[derive(Clone, Default)]
pub struct BodyWriter {
    state: Rc<RefCell<StreamState>>,
}

impl BodyWriter {
    fn new() -> BodyWriter {
        BodyWriter::default()
    }

    /// Sends `data` as the next piece of the body; ignored after `finish` or once the
    /// client is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_r, w) = ropewalk_protocols::http::Response::streaming(200);
    /// w.write(b"tick\n");
    /// ```
    pub fn write(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let sink = {
            let mut st = self.state.borrow_mut();
            if st.finished || st.aborted {
                return;
            }
            match &st.sink {
                Some(s) => s.clone(),
                None => {
                    st.early.push(Early::Bytes(data.to_vec()));
                    return;
                }
            }
        };
        sink.data(data);
    }

    /// Sends `len` bytes of `file` from `offset` as the next piece of the body, with
    /// [`Transport::send_file`](ropewalk_reactor::Transport::send_file): on a plain TCP
    /// connection on Linux the kernel copies it (`sendfile(2)`) as the client reads, and
    /// it costs no memory here. It counts toward the connection's write queue as what is
    /// left of it, so [`is_paused`](Self::is_paused) and the server's send timeout see it
    /// as written bytes. A file that turns out shorter than the region drops the
    /// connection: the client sees a short response, never a wrong one. Ignored after
    /// `finish` or once the client is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// let path = std::env::temp_dir().join(format!("ropewalk-doc-body-file-{}", std::process::id()));
    /// std::fs::write(&path, "hello, file")?;
    /// let (_r, w) = ropewalk_protocols::http::Response::streaming(200);
    /// w.send_file(Rc::new(std::fs::File::open(&path)?), 7, 4); // "file"
    /// w.finish();
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send_file(&self, file: Rc<File>, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let sink = {
            let mut st = self.state.borrow_mut();
            if st.finished || st.aborted {
                return;
            }
            match &st.sink {
                Some(s) => s.clone(),
                None => {
                    st.early.push(Early::File(file, offset, len));
                    return;
                }
            }
        };
        sink.file(file, offset, len);
    }

    /// Ends the body.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_r, w) = ropewalk_protocols::http::Response::streaming(200);
    /// w.finish();
    /// assert!(w.is_finished());
    /// ```
    pub fn finish(&self) {
        let sink = {
            let mut st = self.state.borrow_mut();
            if st.finished || st.aborted {
                return;
            }
            st.finished = true;
            st.sink.clone()
        };
        if let Some(s) = sink {
            s.end();
        }
    }

    /// Ends the response by dropping the connection, for a body that cannot be
    /// completed (the file behind it shrank, its source failed): the client sees an
    /// incomplete response rather than a wrong one. Ignored after `finish`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_r, w) = ropewalk_protocols::http::Response::streaming(200);
    /// w.write(b"half of it");
    /// w.abort();
    /// assert!(w.is_aborted());
    /// ```
    pub fn abort(&self) {
        let sink = {
            let st = self.state.borrow();
            if st.finished || st.aborted {
                return;
            }
            st.sink.clone()
        };
        self.set_aborted();
        if let Some(s) = sink {
            s.abort();
        }
    }

    /// Whether `finish` was called.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_r, w) = ropewalk_protocols::http::Response::streaming(200);
    /// assert!(!w.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.state.borrow().finished
    }

    /// Whether the client is gone (writes are dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// let (_r, w) = ropewalk_protocols::http::Response::streaming(200);
    /// assert!(!w.is_aborted());
    /// ```
    pub fn is_aborted(&self) -> bool {
        self.state.borrow().aborted
    }

    /// Whether the connection's write queue is full: wait for [`ready`](Self::ready).
    ///
    /// # Examples
    ///
    /// ```
    /// let (_r, w) = ropewalk_protocols::http::Response::streaming(200);
    /// assert!(!w.is_paused());
    /// ```
    pub fn is_paused(&self) -> bool {
        self.state.borrow().paused
    }

    /// A Deferred that fires when writing may go on (at once if not paused); it fires too
    /// when the client goes away, so a writer loop should check
    /// [`is_aborted`](Self::is_aborted).
    ///
    /// # Examples
    ///
    /// ```
    /// let (_r, w) = ropewalk_protocols::http::Response::streaming(200);
    /// assert!(w.ready().wait().is_ok());
    /// ```
    pub fn ready(&self) -> Deferred<()> {
        let mut st = self.state.borrow_mut();
        // Before the server takes the response, writes are held in memory: past a
        // bound, wait for it to take them.
        let held: usize = st
            .early
            .iter()
            .map(|e| match e {
                Early::Bytes(b) => b.len(),
                Early::File(..) => 0,
            })
            .sum();
        let waiting_for_server = st.sink.is_none() && !st.finished && held >= EARLY_LIMIT;
        if (!st.paused && !waiting_for_server) || st.aborted {
            return Deferred::succeed(());
        }
        let (d, r) = Deferred::pending();
        st.waiting.push(r);
        d
    }

    /// Whether the body starts with a file region written before the server took the
    /// response (its head can then go out in one packet with it).
    pub(crate) fn starts_with_file(&self) -> bool {
        matches!(self.state.borrow().early.first(), Some(Early::File(..)))
    }

    /// The server starts sending: flush what was written early.
    pub(crate) fn attach(&self, sink: Rc<dyn BodySink>) {
        let (early, finished, aborted) = {
            let mut st = self.state.borrow_mut();
            if !st.aborted {
                st.sink = Some(sink.clone());
            }
            (std::mem::take(&mut st.early), st.finished, st.aborted)
        };
        if aborted {
            sink.abort();
            return;
        }
        for piece in early {
            match piece {
                Early::Bytes(b) => sink.data(&b),
                Early::File(file, offset, len) => sink.file(file, offset, len),
            }
        }
        if finished {
            sink.end();
        }
        let waiting = {
            let mut st = self.state.borrow_mut();
            if st.paused {
                Vec::new()
            } else {
                std::mem::take(&mut st.waiting)
            }
        };
        for r in waiting {
            let _ = r.callback(());
        }
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        let waiting = {
            let mut st = self.state.borrow_mut();
            st.paused = paused;
            if paused {
                return;
            }
            std::mem::take(&mut st.waiting)
        };
        for r in waiting {
            let _ = r.callback(());
        }
    }

    pub(crate) fn set_aborted(&self) {
        let waiting = {
            let mut st = self.state.borrow_mut();
            st.aborted = true;
            st.sink = None;
            std::mem::take(&mut st.waiting)
        };
        for r in waiting {
            let _ = r.callback(());
        }
    }
}

impl fmt::Debug for BodyWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.borrow();
        f.debug_struct("BodyWriter")
            .field("finished", &st.finished)
            .field("aborted", &st.aborted)
            .field("paused", &st.paused)
            .finish()
    }
}

/// returned: its writer, whether it is chunked, and whether the connection stays open.
#[inline]
pub(super) fn serialize(
    out: &mut Vec<u8>,
    response: &mut Response,
    slot: &Slot,
    keep_alive: bool,
    date: &DateLines,
    cache: &mut HeadCache,
) -> Option<(BodyWriter, bool, bool)> {
    let status = response.status();
    let no_body = slot.head_only || status == 204 || status == 304 || (100..200).contains(&status);
    if let (Some(lines), Body::Full(bytes), false) =
        (response.headers().static_lines(), &response.body, no_body)
    {
        // The common response (static header lines, a whole body): its head is the last
        // one's, unless something in it changed.
        let key = HeadKey {
            status,
            lines: lines.as_ptr() as usize,
            lines_len: lines.len(),
            body_len: bytes.len(),
            keep_alive,
            version: slot.version,
            date: date.generation,
        };
        if cache.key != Some(key) {
            let head = &mut cache.head;
            head.clear();
            write_status_line(head, status);
            // Checked when they were made, and none of the fields the server writes.
            head.extend_from_slice(lines.as_bytes());
            head.extend_from_slice(date.lines(false));
            write_length(head, bytes.len());
            finish_head(head, keep_alive, slot.version);
            cache.key = Some(key);
        }
        out.extend_from_slice(&cache.head);
        out.extend_from_slice(&bytes[..]);
        return None;
    }
    let body = std::mem::replace(&mut response.body, Body::Full(Cow::Borrowed(&[])));
    let headers = response.headers();
    write_status_line(out, status);
    let mut has_server = false;
    let mut user_length = None;
    match headers.static_lines() {
        // Checked when it was made, and none of the fields below.
        Some(lines) => out.extend_from_slice(lines.as_bytes()),
        None => {
            for (name, value) in headers.iter() {
                // The server writes these itself (the handler's Content-Length is looked
                // at).
                match name.len() {
                    14 if name.eq_ignore_ascii_case("content-length") => {
                        user_length = user_length.or(Some(value));
                        continue;
                    }
                    17 if name.eq_ignore_ascii_case("transfer-encoding") => continue,
                    10 if name.eq_ignore_ascii_case("connection") => continue,
                    4 if name.eq_ignore_ascii_case("date") => continue,
                    6 => has_server |= name.eq_ignore_ascii_case("server"),
                    _ => {}
                }
                write_field(out, name, value);
            }
        }
    }
    out.extend_from_slice(date.lines(has_server));
    let mut keep_alive = keep_alive;
    match body {
        Body::Full(bytes) => {
            // HEAD and 304 send no body, so an empty one stands for "not sent": the
            // handler's Content-Length (the GET body's length) is kept, not replaced by 0
            // (RFC 9110 §8.6); a 304 without one sends none.
            let declared =
                user_length.filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
            if status == 204 || (100..200).contains(&status) {
                // No length at all.
            } else if (slot.head_only || status == 304) && bytes.is_empty() {
                match declared {
                    Some(len) => write_field(out, "Content-Length", len),
                    None if status != 304 => write_length(out, 0),
                    None => {}
                }
            } else {
                write_length(out, bytes.len());
            }
            finish_head(out, keep_alive, slot.version);
            if !no_body {
                out.extend_from_slice(&bytes);
            }
            None
        }
        Body::Stream(writer) => {
            if no_body {
                if let Some(len) = user_length {
                    if status != 204 && !(100..200).contains(&status) {
                        write_field(out, "Content-Length", len);
                    }
                }
                finish_head(out, keep_alive, slot.version);
                writer.set_aborted();
                None
            } else {
                let mut chunked = false;
                match user_length {
                    Some(len) => write_field(out, "Content-Length", len),
                    None if slot.version == Version::Http11 => {
                        write_field(out, "Transfer-Encoding", "chunked");
                        chunked = true;
                    }
                    // HTTP/1.0 without a length: the body ends when the connection does.
                    None => keep_alive = false,
                }
                finish_head(out, keep_alive, slot.version);
                Some((writer, chunked, keep_alive))
            }
        }
    }
}

/// The head of the last response with static header lines and a whole body a server
/// wrote, and what it was made of: the next such response with the same status, header
/// lines, body length and connection handling, in the same second, has the same head.
#[derive(Default)]
pub(super) struct HeadCache {
    key: Option<HeadKey>,
    head: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeadKey {
    status: u16,
    /// Where the static header lines are, and how long they are: the same place, the
    /// same lines.
    lines: usize,
    lines_len: usize,
    body_len: usize,
    keep_alive: bool,
    version: Version,
    /// The generation of the `Date` line.
    date: u64,
}

/// Common Log Format:
///
/// ```text
/// 127.0.0.1 - - [27/Nov/2026:18:00:00 +0000] "GET / HTTP/1.1" 200 14
/// ```
///
/// The fields are the peer's IP address, two `-` (no identd, no authenticated user), the
/// time the response was written (UTC), the request line, the status, and the body size:
/// the body's length, or for a streamed body its `Content-Length` — `-` when unknown
/// (chunked), empty, or not sent (`HEAD`, `204`, `304`). A request rejected before its
/// head was parsed (400, 408, 431, …) logs `"-"` as its request line. The line is only
/// built when a logger takes `info` records for this target, so filtering it out
/// (`RUST_LOG=info,ropewalk::http::access=off`) costs nothing per request.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::http::ACCESS_LOG_TARGET;
/// assert_eq!(ACCESS_LOG_TARGET, "ropewalk::http::access");
/// // With env_logger: RUST_LOG=ropewalk::http::access=info ./server
/// ```
pub const ACCESS_LOG_TARGET: &str = "ropewalk::http::access";

/// Logs one response in Common Log Format.
pub(super) fn access_log(transport: Option<&TransportRef>, slot: &Slot, response: &Response) {
    let host = match transport.map(|t| t.peer_addr()) {
        Some(Address::Inet(a)) => a.ip().to_string(),
        _ => "-".to_string(),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let status = response.status();
    let no_body = slot.head_only || status == 204 || status == 304 || (100..200).contains(&status);
    let size = if no_body {
        None
    } else {
        match response.body_bytes() {
            Some(b) => Some(b.len().to_string()),
            None => response.headers().get("content-length").map(str::to_string),
        }
    };
    log::info!(
        target: ACCESS_LOG_TARGET,
        "{host} - - [{}] \"{}\" {status} {}",
        clf_date(now),
        slot.request_line.as_deref().unwrap_or("-"),
        size.as_deref().filter(|s| *s != "0").unwrap_or("-"),
    );
}

#[cfg(test)]
mod tests {
    use super::Response;

    #[test]
    fn response_stays_small() {
        // Clippy's `result_large_err` flags `Result<_, T>` from 128 bytes: handlers return
        // `Result<_, Response>`.
        assert!(std::mem::size_of::<Response>() < 128);
    }
}
