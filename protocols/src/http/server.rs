//! The HTTP/1.1 server: [`HttpServer`] (a [`Factory`]) and its per-connection protocol.
//!
//! # Implementation
//!
//! Each connection parses every complete request in its buffer, hands each to the
//! handler (which returns a Deferred), and queues a slot per request. Responses leave
//! strictly in request order: whenever the front slots are ready they are serialized into
//! one buffer and written with one `write`. While `max_pipelined` requests wait for their
//! responses, reading pauses, so read-ahead stays bounded (Twisted's CVE-2023-46137 and
//! CVE-2024-41671 were out-of-order responses to pipelined requests).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::panic::{catch_unwind, AssertUnwindSafe};

use ropewalk_deferred::{maybe_deferred, CancelHandle, Deferred, Failure, IntoOutcome, Outcome};
use ropewalk_reactor::{
    Address, Clock, DelayedCall, Factory, ListenOptions, ListeningPort, Producer, Protocol,
    Reactor, TransportRef,
};

use super::response::{Body, BodySink, BodyWriter};
use super::wire::chunked::{chunk_size_line, ChunkedDecoder};
use super::wire::date::{clf_date, DateLines};
use super::wire::framing::BodyFraming;
use super::wire::head::{finish_head, write_field, write_length, write_status_line};
use super::wire::request_head::{parse_head, Head, HeadResult, Limits};
use super::{Request, Response, Version};

/// Answers requests: anything `Fn(Request) -> R` where `R` is `Result<Response, Failure>`,
/// `Deferred<Response>` (an `async` block spawned on the reactor is one) or an
/// [`Outcome`](ropewalk_deferred::Outcome).
///
/// A handler that fails (an `Err`, a failed Deferred, a panic) gives a 500 with no
/// details; the failure is logged.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::http::{Handler, Request, Response};
///
/// let hello = |_req: Request| Ok(Response::text("Hello, World!"));
/// let d = hello.handle(Request::new("GET", "/", ropewalk_protocols::http::Version::Http11,
///     Default::default(), vec![]));
/// assert_eq!(d.wait().unwrap().status(), 200);
/// ```
pub trait Handler: 'static {
    /// The response to `request`, now or later.
    fn handle(&self, request: Request) -> Deferred<Response>;

    /// The response to `request` as an [`Outcome`]: a response or a failure now, or a
    /// Deferred of one. The server calls this, so that a handler that answers at once
    /// costs no Deferred; a panic must be returned as a failure, as
    /// [`handle`](Self::handle) would. The default wraps `handle` (closures and [`Site`]
    /// answer directly).
    ///
    /// [`Site`]: super::Site
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::Outcome;
    /// use ropewalk_protocols::http::{Handler, Request, Response, Version};
    ///
    /// let hello = |_req: Request| Ok(Response::static_text("hi"));
    /// let req = Request::new("GET", "/", Version::Http11, Default::default(), vec![]);
    /// assert!(matches!(hello.handle_outcome(req), Outcome::Value(r) if r.status() == 200));
    /// ```
    fn handle_outcome(&self, request: Request) -> Outcome<Response> {
        Outcome::Chain(self.handle(request))
    }
}

impl<F, R> Handler for F
where
    F: Fn(Request) -> R + 'static,
    R: IntoOutcome<Response>,
{
    fn handle(&self, request: Request) -> Deferred<Response> {
        maybe_deferred(|| self(request))
    }

    fn handle_outcome(&self, request: Request) -> Outcome<Response> {
        // As `maybe_deferred`: a panic is a failure.
        catch_unwind(AssertUnwindSafe(|| self(request).into_outcome()))
            .unwrap_or_else(|p| Outcome::Failure(Failure::from_panic(p)))
    }
}

/// The server's limits and timeouts.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ropewalk_protocols::http::ServerConfig;
///
/// let config = ServerConfig { max_body: 1 << 20, idle_timeout: Duration::from_secs(5), ..ServerConfig::default() };
/// assert_eq!(config.max_headers, 100);
/// ```
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Most bytes in a request head (request line and header fields); past it, 431.
    /// Default 64 KiB.
    pub max_header_bytes: usize,
    /// Most header fields in a request; past it, 431. Default 100.
    pub max_headers: usize,
    /// Longest request target; past it, 414. Default 8 KiB.
    pub max_uri: usize,
    /// Largest request body; past it, 413 (the body is not read). Default 16 MiB.
    pub max_body: u64,
    /// Time to receive a request head from its first byte, and the longest pause inside
    /// a body; past it, 408 and close. Default 30 s.
    pub request_timeout: Duration,
    /// How long an idle keep-alive connection stays open. Default 60 s.
    pub idle_timeout: Duration,
    /// After the server starts closing a connection (a timeout, a bad request,
    /// `Connection: close`), how long the peer has to let it close (to read what is still
    /// being written) before the connection is aborted; `None` never aborts. Default 15 s
    /// (Twisted's `abortTimeout`, which Twisted applies to timeouts only): a peer that
    /// stops reading cannot hold a closing connection open.
    pub abort_timeout: Option<Duration>,
    /// Most requests read ahead while their responses are pending; past it, reading
    /// pauses. Default 16.
    pub max_pipelined: usize,
    /// The `Server` header (`None` sends none). Default `ropewalk`.
    pub server_name: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_uri: 8 * 1024,
            max_body: 16 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            abort_timeout: Some(Duration::from_secs(15)),
            max_pipelined: 16,
            server_name: Some("ropewalk".to_string()),
        }
    }
}

struct Shared {
    handler: Box<dyn Handler>,
    config: ServerConfig,
    limits: Limits,
    clock: Rc<dyn Clock>,
    /// The `Date` line (`Date: …\r\n`) and the `Server` line after it, made again at
    /// the start of the next second.
    date: RefCell<DateLines>,
    /// The `Server` field, whole, checked and cleaned once.
    server_line: Option<Vec<u8>>,
    /// The head of the last common response written on any connection (see
    /// [`HeadCache`]): one per server, not per connection, so an idle connection holds
    /// none.
    head: RefCell<HeadCache>,
}

impl Shared {
    /// The `Date` and `Server` lines, made once a second. The wall clock is read once
    /// per turn of the loop (when the clock's `loop_time` moves), not once per batch of
    /// responses: a turn answers many connections. (While they are borrowed, a borrow
    /// from the same batch of responses, they are not made again.)
    fn date_lines(&self) -> std::cell::Ref<'_, DateLines> {
        let turn = self.clock.loop_time();
        if let Ok(mut cache) = self.date.try_borrow_mut() {
            let now = if cache.turn == Some(turn) {
                None
            } else {
                cache.turn = Some(turn);
                Some(SystemTime::now())
            };
            if let Some(now) = now {
                cache.update(now, self.server_line.as_deref());
            }
        }
        self.date.borrow()
    }
}

/// An HTTP/1.1 server: a [`Factory`] of connections that hand requests to a [`Handler`].
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::http::{HttpServer, Request, Response};
/// use ropewalk_reactor::Reactor;
///
/// let reactor = Reactor::new()?;
/// let server = HttpServer::new(&reactor, |_req: Request| Ok(Response::text("Hello, World!")));
/// let port = server.listen(&reactor, "127.0.0.1:0".parse().unwrap())?;
/// println!("listening on {}", port.local_addr());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct HttpServer {
    shared: Rc<Shared>,
}

impl HttpServer {
    /// A server with the default [`ServerConfig`]; `clock` (the reactor, or a
    /// `ManualClock` in tests) runs its timeouts.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::{HttpServer, Request, Response};
    /// let clock = ropewalk_reactor::ManualClock::new();
    /// let _server = HttpServer::new(&clock, |_: Request| Ok(Response::new(204)));
    /// ```
    pub fn new(clock: &(impl Clock + Clone + 'static), handler: impl Handler) -> HttpServer {
        HttpServer::with_config(clock, handler, ServerConfig::default())
    }

    /// A server with `config`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::{HttpServer, Request, Response, ServerConfig};
    /// let clock = ropewalk_reactor::ManualClock::new();
    /// let config = ServerConfig { server_name: None, ..ServerConfig::default() };
    /// let _server = HttpServer::with_config(&clock, |_: Request| Ok(Response::new(204)), config);
    /// ```
    pub fn with_config(
        clock: &(impl Clock + Clone + 'static),
        handler: impl Handler,
        config: ServerConfig,
    ) -> HttpServer {
        let limits = Limits {
            max_header_bytes: config.max_header_bytes,
            max_headers: config.max_headers,
            max_uri: config.max_uri,
            max_body: config.max_body,
        };
        let server_line = config.server_name.as_deref().map(|name| {
            let mut line = Vec::new();
            write_field(&mut line, "Server", name);
            line
        });
        HttpServer {
            shared: Rc::new(Shared {
                handler: Box::new(handler),
                config,
                limits,
                clock: Rc::new(clock.clone()),
                date: RefCell::new(DateLines::new()),
                server_line,
                head: RefCell::new(HeadCache::default()),
            }),
        }
    }

    /// Listens on `addr` with this server.
    ///
    /// The listening socket has `TCP_NODELAY` on, which its connections inherit: each
    /// response goes out as soon as it is written (the server turns Nagle's algorithm off
    /// on every connection anyway; inherited, that costs no system call per connection).
    ///
    /// # Errors
    ///
    /// The system error if the address cannot be bound.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::http::{HttpServer, Request, Response};
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let server = HttpServer::new(&reactor, |_: Request| Ok(Response::text("ok")));
    /// let port = server.listen(&reactor, "127.0.0.1:0".parse().unwrap())?;
    /// port.stop_listening();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen(&self, reactor: &Reactor, addr: SocketAddr) -> io::Result<ListeningPort> {
        let options = ListenOptions {
            nodelay: true,
            ..ListenOptions::default()
        };
        reactor.listen_tcp_with(addr, self.clone(), &options)
    }

    /// The protocol for one connection (for tests with a `StringTransport`, or custom
    /// factories).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::{HttpServer, Request, Response};
    /// use ropewalk_reactor::{testing::StringTransport, ManualClock, Protocol};
    ///
    /// let clock = ManualClock::new();
    /// let server = HttpServer::new(&clock, |_: Request| Ok(Response::text("hi")));
    /// let mut conn = server.connection();
    /// let t = StringTransport::connect(&mut conn);
    /// conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    /// let out = String::from_utf8(t.value()).unwrap();
    /// assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));
    /// assert!(out.ends_with("\r\n\r\nhi"));
    /// ```
    pub fn connection(&self) -> HttpConnection {
        HttpConnection {
            state: Rc::new(RefCell::new(State {
                shared: self.shared.clone(),
                transport: None,
                peer: Address::Test,
                buf: Vec::new(),
                reading: Reading::Head,
                queue: VecDeque::new(),
                closing: false,
                closed: false,
                flow: Rc::new(Flow::default()),
                timer: None,
                timer_kind: None,
                abort_timer: None,
                deadline: Duration::ZERO,
                request_started: false,
                continue_pending: false,
                stream: None,
                out: Vec::new(),
                next_id: 0,
            })),
            pumping: Rc::new(Cell::new(Pump::Idle)),
        }
    }
}

impl Factory for HttpServer {
    type Protocol = HttpConnection;

    fn build_protocol(&self, _peer: &Address) -> Option<HttpConnection> {
        Some(self.connection())
    }
}

impl fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServer")
            .field("config", &self.shared.config)
            .finish()
    }
}

enum Reading {
    Head,
    /// A request with a body (boxed: requests without one never get here).
    Body(Box<BodyRead>),
}

/// A request whose body is being read.
struct BodyRead {
    head: Head,
    body: Vec<u8>,
    left: u64,
    chunked: Option<ChunkedDecoder>,
}

struct Slot {
    head_only: bool,
    /// `METHOD target HTTP/x.y`, kept for the access log (only when it is enabled).
    request_line: Option<String>,
    version: Version,
    keep_alive: bool,
    response: Option<Response>,
    cancel: Option<CancelHandle>,
    id: u64,
}

impl Slot {
    /// Nobody will read this slot's response: cancel the work behind it, and abort a
    /// streamed body (or its producer would wait forever for a server that never takes
    /// it). Never called with the connection's state borrowed: cancelling runs errbacks.
    fn abandon(self) {
        if let Some(c) = self.cancel {
            c.cancel();
        }
        if let Some(r) = self.response {
            abandon_response(r);
        }
    }
}

/// A response that will not be sent: its streamed body, if any, is aborted.
fn abandon_response(response: Response) {
    if let Body::Stream(writer) = &response.body {
        writer.set_aborted();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    Request,
    Idle,
}

/// A response body being streamed: later responses wait for it.
struct ActiveStream {
    writer: BodyWriter,
}

struct State {
    shared: Rc<Shared>,
    transport: Option<TransportRef>,
    /// The transport's peer, read once.
    peer: Address,
    buf: Vec<u8>,
    reading: Reading,
    queue: VecDeque<Slot>,
    /// No more requests are read; close once the queue is written.
    closing: bool,
    closed: bool,
    /// Flow control with the transport (reading paused, the streamed body).
    flow: Rc<Flow>,
    /// The watchdog: one armed call per connection that is moved forward by setting
    /// `deadline` (cheap, per request), and re-armed only when it fires early.
    timer: Option<DelayedCall>,
    timer_kind: Option<TimerKind>,
    /// Aborts the connection if it has not closed `abort_timeout` after a timeout.
    abort_timer: Option<DelayedCall>,
    /// When `timer_kind` expires, in the clock's time.
    deadline: Duration,
    /// The first byte of the current request has arrived.
    request_started: bool,
    /// The request being read asked for `100 Continue` while earlier responses were
    /// pending: send it once they are written.
    continue_pending: bool,
    stream: Option<ActiveStream>,
    out: Vec<u8>,
    /// The last slot id given out.
    next_id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pump {
    Idle,
    Running,
    Again,
}

/// One HTTP connection: the [`Protocol`] an [`HttpServer`] builds.
pub struct HttpConnection {
    state: Rc<RefCell<State>>,
    pumping: Rc<Cell<Pump>>,
}

/// Bytes of responses gathered before they are written while requests are parsed.
const OUT_BATCH: usize = 64 * 1024;

/// What one parsing step decided.
enum Step {
    /// Nothing more to do until more bytes come.
    Wait,
    /// A complete request to hand to the handler.
    Dispatch(Head, Vec<u8>),
    /// A malformed request: answer with this status and close.
    Reject(u16),
    /// Send `100 Continue` now.
    Continue,
    /// Parsing changed state; go on.
    Progress,
}

impl HttpConnection {
    fn pump(&self) {
        match self.pumping.get() {
            Pump::Idle => {}
            _ => {
                self.pumping.set(Pump::Again);
                return;
            }
        }
        loop {
            self.pumping.set(Pump::Running);
            self.process();
            self.flush();
            self.update_timer();
            if self.pumping.get() != Pump::Again {
                break;
            }
        }
        self.pumping.set(Pump::Idle);
    }

    /// Parses and dispatches every complete request in the buffer.
    fn process(&self) {
        // The Date and Server lines, looked up once for all the requests parsed here.
        let shared = self.state.borrow().shared.clone();
        let mut date = None;
        loop {
            let step = {
                let mut st = self.state.borrow_mut();
                if st.closing || st.closed {
                    return;
                }
                if st.out.len() >= OUT_BATCH && st.stream.is_none() {
                    // Answered at once, a long run of pipelined requests: write what is
                    // ready before parsing more.
                    drop(st);
                    self.flush();
                    continue;
                }
                if st.queue.len() >= st.shared.config.max_pipelined {
                    // Answers ready at the front: write them and go on parsing, rather than
                    // pause reading (two epoll_ctl calls) only to resume after the write.
                    if st.stream.is_none() && st.queue.front().is_some_and(|s| s.response.is_some())
                    {
                        drop(st);
                        self.flush();
                        continue;
                    }
                    let flow = st.flow.clone();
                    drop(st);
                    flow.set_pipeline_full(true);
                    return;
                }
                st.step()
            };
            match step {
                Step::Wait => return,
                Step::Progress => continue,
                Step::Continue => {
                    let st = self.state.borrow();
                    if let Some(t) = &st.transport {
                        t.write(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                }
                Step::Reject(status) => {
                    let mut st = self.state.borrow_mut();
                    st.closing = true;
                    st.buf = Vec::new();
                    st.queue_final_error(status);
                    return;
                }
                Step::Dispatch(
                    Head {
                        method,
                        target,
                        version,
                        headers,
                        keep_alive,
                        ..
                    },
                    body,
                ) => {
                    // Made where it is passed: no copy of the whole request on the way.
                    // An internet address is copied, not cloned through a match on both
                    // kinds of `SocketAddr`.
                    let peer = match &self.state.borrow().peer {
                        Address::Inet(addr) => Address::Inet(*addr),
                        other => other.clone(),
                    };
                    let request = Request::from_parts(method, target, version, headers, body, peer);
                    self.dispatch(request, keep_alive, &shared, &mut date);
                }
            }
        }
    }

    fn dispatch<'s>(
        &self,
        request: Request,
        keep_alive: bool,
        shared: &'s Shared,
        date: &mut Option<std::cell::Ref<'s, DateLines>>,
    ) {
        let mut slot = {
            let mut st = self.state.borrow_mut();
            let id = st.next_slot_id();
            if !keep_alive {
                st.closing = true;
            }
            let request_line =
                log::log_enabled!(target: ACCESS_LOG_TARGET, log::Level::Info).then(|| {
                    format!(
                        "{} {} {}",
                        request.method(),
                        request.target(),
                        request.version().as_str()
                    )
                });
            Slot {
                head_only: request.method() == "HEAD",
                request_line,
                version: request.version(),
                keep_alive,
                response: None,
                cancel: None,
                id,
            }
        };
        // A handler that answered at once (the common case): no Deferred, no callback,
        // no cancel handle. Nothing else runs on this connection while it does, so its
        // slot joins the queue after it returns.
        let mut response = match shared.handler.handle_outcome(request) {
            Outcome::Value(response) => response,
            Outcome::Failure(f) => handler_response(Err(f)),
            Outcome::Chain(mut d) => match d.try_result() {
                Some(result) => handler_response(result),
                None => {
                    let id = slot.id;
                    self.state.borrow_mut().queue.push_back(slot);
                    return self.wait_for(d, id);
                }
            },
        };
        let mut st = self.state.borrow_mut();
        let first = st.queue.is_empty() && st.stream.is_none() && !st.closed;
        if first && matches!(response.body, Body::Full(_)) {
            // Nothing waits before it: into the output now, as `flush` would.
            let date = date.get_or_insert_with(|| shared.date_lines());
            st.emit_full(&slot, &mut response, date);
        } else {
            slot.response = Some(response);
            st.queue.push_back(slot);
        }
    }

    /// The handler's Deferred has not fired: the slot waits for it.
    fn wait_for(&self, d: Deferred<Response>, id: u64) {
        let cancel = d.cancel_handle();
        if let Some(slot) = self
            .state
            .borrow_mut()
            .queue
            .iter_mut()
            .find(|s| s.id == id)
        {
            slot.cancel = Some(cancel);
        }
        let state = Rc::downgrade(&self.state);
        let pumping = self.pumping.clone();
        d.add_both(move |result: Result<Response, Failure>| {
            let waiting = state.upgrade().filter(|state| {
                let st = state.borrow();
                st.queue.iter().any(|s| s.id == id)
            });
            // The connection closed, or closes before this response: nobody reads it (a
            // failure here is most often the cancellation that closing caused).
            let Some(state) = waiting else {
                match result {
                    Ok(response) => abandon_response(response),
                    Err(f) => log::debug!("request handler failed after its client left: {f}"),
                }
                return Ok(());
            };
            let response = handler_response(result);
            if let Some(slot) = state.borrow_mut().queue.iter_mut().find(|s| s.id == id) {
                slot.response = Some(response);
            }
            HttpConnection { state, pumping }.pump();
            Ok(())
        });
    }

    /// Writes every ready response at the front of the queue, in one write.
    fn flush(&self) {
        let mut abandoned = Vec::new();
        self.flush_into(&mut abandoned);
        // Outside the borrow: cancelling runs the handlers' errbacks. (Most flushes
        // abandon nothing: no iterator to make and drop.)
        if !abandoned.is_empty() {
            for slot in abandoned {
                slot.abandon();
            }
        }
    }

    /// `flush`; the slots dropped because the connection closes go to `abandoned`.
    fn flush_into(&self, abandoned: &mut Vec<Slot>) {
        let mut st = self.state.borrow_mut();
        if st.closed || st.stream.is_some() {
            return;
        }
        // Most flushes find the queue empty (`dispatch` wrote the answers already) and
        // only write.
        let ready = st.queue.front().is_some_and(|s| s.response.is_some());
        let started_stream = if ready || st.continue_pending {
            st.serialize_ready(abandoned)
        } else {
            None
        };
        if !st.out.is_empty() {
            if let Some(t) = &st.transport {
                t.write(&st.out);
            }
            st.out.clear();
        }
        if let Some((writer, chunked)) = started_stream {
            st.stream = Some(ActiveStream {
                writer: writer.clone(),
            });
            drop(st);
            self.start_stream(writer, chunked);
            return;
        }
        if st.closing && st.queue.is_empty() {
            if let Some(t) = &st.transport {
                t.lose_connection();
            }
            drop(st);
            // The close waits for the last bytes to be read; a peer that never reads them
            // must not hold the connection forever.
            self.arm_abort();
            return;
        }
        if st.flow.pipeline_full.get() && st.queue.len() < st.shared.config.max_pipelined {
            let flow = st.flow.clone();
            drop(st);
            flow.set_pipeline_full(false);
            // Requests already buffered are parsed now.
            if self.pumping.get() == Pump::Running {
                self.pumping.set(Pump::Again);
            }
        }
    }

    fn start_stream(&self, writer: BodyWriter, chunked: bool) {
        let transport = self.state.borrow().transport.clone();
        let Some(transport) = transport else { return };
        // The connection's producer pauses it with the connection.
        let flow = self.state.borrow().flow.clone();
        *flow.stream.borrow_mut() = Some(writer.clone());
        if flow.write_full.get() {
            writer.set_paused(true);
        }
        let sink = Rc::new(StreamSink {
            connection: Rc::downgrade(&self.state),
            pumping: self.pumping.clone(),
            transport,
            chunked,
        });
        writer.attach(sink);
    }

    fn update_timer(&self) {
        let mut st = self.state.borrow_mut();
        if st.closed {
            return;
        }
        let want = if !st.queue.is_empty() || st.stream.is_some() || st.closing {
            None
        } else if st.request_started || !st.buf.is_empty() || matches!(st.reading, Reading::Body(_))
        {
            Some(TimerKind::Request)
        } else {
            Some(TimerKind::Idle)
        };
        // Same kind: keep its deadline (a request in progress keeps its own).
        if want == st.timer_kind {
            return;
        }
        st.timer_kind = want;
        // No kind: the armed watchdog, if any, fires and finds nothing to do.
        let Some(kind) = want else { return };
        let delay = match kind {
            TimerKind::Request => st.shared.config.request_timeout,
            TimerKind::Idle => st.shared.config.idle_timeout,
        };
        // The loop's reading of the clock: one per wake-up, not one per request.
        let now = st.shared.clock.loop_time();
        st.deadline = now.saturating_add(delay);
        let in_time = st
            .timer
            .as_ref()
            .is_some_and(|t| t.active() && t.time() <= st.deadline);
        if !in_time {
            if let Some(t) = st.timer.take() {
                let _ = t.cancel();
            }
            drop(st);
            self.arm_watchdog(delay);
        }
    }

    /// Arms the watchdog `after` from now, at most the shorter of the two timeouts ahead,
    /// so that a later, nearer deadline never needs it moved back.
    fn arm_watchdog(&self, after: Duration) {
        let mut st = self.state.borrow_mut();
        let config = &st.shared.config;
        let after = after.min(config.request_timeout.min(config.idle_timeout));
        let state = Rc::downgrade(&self.state);
        let pumping = self.pumping.clone();
        let clock = st.shared.clock.clone();
        st.timer = Some(clock.call_later_boxed(
            after,
            Box::new(move || {
                if let Some(state) = state.upgrade() {
                    HttpConnection { state, pumping }.watchdog_fired();
                }
            }),
        ));
    }

    fn watchdog_fired(&self) {
        let (kind, left) = {
            let mut st = self.state.borrow_mut();
            st.timer = None;
            if st.closed {
                return;
            }
            let Some(kind) = st.timer_kind else { return };
            let now = st.shared.clock.now();
            (kind, st.deadline.saturating_sub(now))
        };
        if left > Duration::ZERO {
            self.arm_watchdog(left);
        } else {
            self.timed_out(kind);
        }
    }

    fn timed_out(&self, kind: TimerKind) {
        let mut st = self.state.borrow_mut();
        st.timer = None;
        st.timer_kind = None;
        let Some(t) = st.transport.clone() else {
            return;
        };
        st.closing = true;
        st.buf = Vec::new();
        match kind {
            TimerKind::Idle => {
                drop(st);
                t.lose_connection();
            }
            TimerKind::Request => {
                log::debug!("request timed out; answering 408");
                st.queue_final_error(408);
                drop(st);
                self.pump();
            }
        }
        self.arm_abort();
    }

    /// A connection the server is closing (a timeout, an error, `Connection: close`)
    /// that has not closed `abort_timeout` later (its peer does not read what is written,
    /// so the close never completes) is aborted.
    fn arm_abort(&self) {
        let mut st = self.state.borrow_mut();
        let Some(after) = st.shared.config.abort_timeout else {
            return;
        };
        if st.closed || st.abort_timer.is_some() {
            return;
        }
        let state = Rc::downgrade(&self.state);
        let clock = st.shared.clock.clone();
        st.abort_timer = Some(clock.call_later_boxed(
            after,
            Box::new(move || {
                let Some(state) = state.upgrade() else {
                    return;
                };
                let transport = {
                    let mut st = state.borrow_mut();
                    st.abort_timer = None;
                    if st.closed {
                        return;
                    }
                    st.transport.clone()
                };
                if let Some(t) = transport {
                    log::debug!("closing connection still open after abort_timeout; aborting");
                    t.abort_connection();
                }
            }),
        ));
    }

    /// The streamed response ended: go on with the queue.
    fn stream_done(&self) {
        {
            let mut st = self.state.borrow_mut();
            st.stream = None;
            st.flow.stream.borrow_mut().take();
        }
        self.pump();
    }
}

impl State {
    /// Serializes the ready responses at the front of the queue into `out` (and the
    /// `100 Continue` that waits for them), up to the first streamed one, which is
    /// returned with whether it is chunked. The slots dropped because the connection
    /// closes go to `abandoned`.
    fn serialize_ready(&mut self, abandoned: &mut Vec<Slot>) -> Option<(BodyWriter, bool)> {
        let mut out = std::mem::take(&mut self.out);
        let mut started_stream = None;
        // Once per batch: the date (cached per second) and the server name.
        let shared = self.shared.clone();
        let date = shared.date_lines();
        let mut head = shared.head.borrow_mut();
        while self.queue.front().is_some_and(|s| s.response.is_some()) {
            let mut slot = self.queue.pop_front().expect("front exists");
            let mut response = slot.response.take().expect("checked");
            let keep = slot.keep_alive && !(self.closing && self.queue.is_empty());
            if log::log_enabled!(target: ACCESS_LOG_TARGET, log::Level::Info) {
                access_log(self.transport.as_ref(), &slot, &response);
            }
            match serialize(&mut out, &mut response, &slot, keep, &date, &mut head) {
                Some((writer, chunked, keep_alive)) => {
                    if !keep_alive {
                        self.closing = true;
                        abandoned.extend(self.queue.drain(..));
                    }
                    started_stream = Some((writer, chunked));
                    break;
                }
                None => {
                    if !slot.keep_alive {
                        self.closing = true;
                        abandoned.extend(self.queue.drain(..));
                    }
                }
            }
        }
        if self.continue_pending && self.queue.is_empty() && !self.closing {
            self.continue_pending = false;
            out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        self.out = out;
        started_stream
    }

    /// Writes the response of `slot` (taken off the queue, or never on it), whose body is
    /// not streamed, into the output.
    fn emit_full(&mut self, slot: &Slot, response: &mut Response, date: &DateLines) {
        let keep = slot.keep_alive && !(self.closing && self.queue.is_empty());
        if log::log_enabled!(target: ACCESS_LOG_TARGET, log::Level::Info) {
            access_log(self.transport.as_ref(), slot, response);
        }
        let streamed = serialize(
            &mut self.out,
            response,
            slot,
            keep,
            date,
            &mut self.shared.head.borrow_mut(),
        );
        debug_assert!(streamed.is_none());
        if !slot.keep_alive {
            self.closing = true;
            self.queue.clear();
        }
    }

    /// An id for a new slot, unique on this connection.
    fn next_slot_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Queues an error response after which the connection closes.
    fn queue_final_error(&mut self, status: u16) {
        let id = self.next_slot_id();
        self.queue.push_back(Slot {
            head_only: false,
            request_line: None,
            version: Version::Http11,
            keep_alive: false,
            response: Some(Response::error(status)),
            cancel: None,
            id,
        });
    }

    fn step(&mut self) -> Step {
        match &mut self.reading {
            Reading::Head => {
                if self.buf.is_empty() {
                    return Step::Wait;
                }
                self.request_started = true;
                match parse_head(&self.buf, &self.shared.limits) {
                    HeadResult::Partial => Step::Wait,
                    HeadResult::Reject(status) => Step::Reject(status),
                    // Field by field, here and in `process`: a head is large, and a
                    // move of it whole is a copy (a call to memcpy).
                    HeadResult::Complete(
                        Head {
                            method,
                            target,
                            version,
                            headers,
                            framing,
                            keep_alive,
                            expect_continue,
                        },
                        n,
                    ) => {
                        self.buf.drain(..n);
                        // The request timer now covers the body.
                        self.timer_kind = None;
                        let expect = expect_continue;
                        let head = Head {
                            method,
                            target,
                            version,
                            headers,
                            framing,
                            keep_alive,
                            expect_continue,
                        };
                        let (left, chunked) = match framing {
                            BodyFraming::Length(n) => (n, None),
                            BodyFraming::Chunked => {
                                (0, Some(ChunkedDecoder::new(self.shared.limits.max_body)))
                            }
                            BodyFraming::UntilClose => unreachable!("only responses"),
                        };
                        let needs_body = left > 0 || chunked.is_some();
                        if !needs_body {
                            // The whole request: no body state to go through.
                            self.request_started = false;
                            self.continue_pending = false;
                            return Step::Dispatch(head, Vec::new());
                        }
                        self.reading = Reading::Body(Box::new(BodyRead {
                            head,
                            body: Vec::with_capacity(left.min(64 * 1024) as usize),
                            left,
                            chunked,
                        }));
                        if expect && needs_body && self.queue.is_empty() {
                            Step::Continue
                        } else {
                            self.continue_pending = expect && needs_body;
                            Step::Progress
                        }
                    }
                }
            }
            Reading::Body(read) => {
                let BodyRead {
                    body,
                    left,
                    chunked,
                    ..
                } = &mut **read;
                let (used, done) = match chunked {
                    Some(decoder) => match decoder.decode(&self.buf, body) {
                        Err(status) => return Step::Reject(status),
                        Ok(n) => (n, decoder.is_done()),
                    },
                    None => {
                        let n = (*left).min(self.buf.len() as u64) as usize;
                        body.extend_from_slice(&self.buf[..n]);
                        *left -= n as u64;
                        (n, *left == 0)
                    }
                };
                self.buf.drain(..used);
                if !done {
                    if used > 0 {
                        // The body moves: `request_timeout` bounds each pause in it, not
                        // the whole upload (update_timer sets a new deadline).
                        self.timer_kind = None;
                    }
                    return Step::Wait;
                }
                let Reading::Body(read) = std::mem::replace(&mut self.reading, Reading::Head)
                else {
                    unreachable!("matched above")
                };
                let BodyRead { head, body, .. } = *read;
                self.request_started = false;
                self.continue_pending = false;
                self.timer_kind = None;
                Step::Dispatch(head, body)
            }
        }
    }
}

/// The response to send for a handler's result: a failure is logged and becomes a 500.
fn handler_response(result: Result<Response, Failure>) -> Response {
    result.unwrap_or_else(|f| {
        log::error!("request handler failed: {f}");
        Response::error(500)
    })
}

/// Writes `response`'s head and body into `out`; a streamed body is taken out of it and
/// returned: its writer, whether it is chunked, and whether the connection stays open.
fn serialize(
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
struct HeadCache {
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

struct StreamSink {
    connection: Weak<RefCell<State>>,
    pumping: Rc<Cell<Pump>>,
    transport: TransportRef,
    chunked: bool,
}

impl BodySink for StreamSink {
    fn data(&self, data: &[u8]) {
        if self.chunked {
            // The chunk-size line, in hex, without allocating.
            let (line, start) = chunk_size_line(data.len());
            self.transport
                .write_vectored(&[&line[start..], data, b"\r\n"]);
        } else {
            self.transport.write(data);
        }
    }

    fn abort(&self) {
        self.transport.abort_connection();
    }

    fn end(&self) {
        if self.chunked {
            self.transport.write(b"0\r\n\r\n");
        }
        if let Some(state) = self.connection.upgrade() {
            let close = {
                let st = state.borrow();
                !self.chunked && st.queue.is_empty() && st.closing
            };
            let conn = HttpConnection {
                state,
                pumping: self.pumping.clone(),
            };
            conn.stream_done();
            if close {
                self.transport.lose_connection();
                conn.arm_abort();
            }
        }
    }
}

/// Flow control between a connection and its transport. Outside `State`, because the
/// transport calls the producer from inside `write`, while `State` is borrowed.
#[derive(Default)]
struct Flow {
    /// `max_pipelined` requests wait for their responses.
    pipeline_full: Cell<bool>,
    /// The transport's write queue is past its high-water mark (the peer reads slower
    /// than it asks).
    write_full: Cell<bool>,
    /// The streamed body being sent: paused and resumed with the connection.
    stream: RefCell<Option<BodyWriter>>,
    transport: RefCell<Option<TransportRef>>,
}

impl Flow {
    fn reading_paused(&self) -> bool {
        self.pipeline_full.get() || self.write_full.get()
    }

    /// Sets `flag`, and pauses or resumes the transport's reading when that changes
    /// whether it reads.
    fn set(&self, flag: &Cell<bool>, on: bool) {
        let before = self.reading_paused();
        flag.set(on);
        let after = self.reading_paused();
        if before == after {
            return;
        }
        let transport = self.transport.borrow().clone();
        if let Some(t) = transport {
            if after {
                t.pause_reading();
            } else {
                t.resume_reading();
            }
        }
    }

    fn set_pipeline_full(&self, on: bool) {
        self.set(&self.pipeline_full, on);
    }

    fn stream(&self) -> Option<BodyWriter> {
        self.stream.borrow().clone()
    }
}

/// The connection as its transport's producer (Twisted's `HTTPChannel` is one): when
/// the write queue passes its high-water mark, no more requests are read (so a client
/// that pipelines and never reads cannot grow the queue without bound) and a streamed
/// body is paused; both go on below the low-water mark.
struct ConnProducer(Rc<Flow>);

impl Producer for ConnProducer {
    fn pause_producing(&self) {
        self.0.set(&self.0.write_full, true);
        if let Some(w) = self.0.stream() {
            w.set_paused(true);
        }
    }

    fn resume_producing(&self) {
        self.0.set(&self.0.write_full, false);
        if let Some(w) = self.0.stream() {
            w.set_paused(false);
        }
    }

    fn stop_producing(&self) {
        let stream = self.0.stream.borrow_mut().take();
        if let Some(w) = stream {
            w.set_aborted();
        }
    }
}

impl Protocol for HttpConnection {
    fn connection_made(&mut self, transport: TransportRef) {
        let _ = transport.set_nodelay(true);
        let mut st = self.state.borrow_mut();
        st.peer = transport.peer_addr();
        st.transport = Some(transport.clone());
        let flow = st.flow.clone();
        drop(st);
        *flow.transport.borrow_mut() = Some(transport.clone());
        transport.register_producer(Rc::new(ConnProducer(flow)), true);
        self.update_timer();
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        {
            let mut st = self.state.borrow_mut();
            if st.closing || st.closed {
                return Ok(());
            }
            st.buf.extend_from_slice(data);
        }
        self.pump();
        Ok(())
    }

    fn eof_received(&mut self) -> bool {
        // The client will send no more: answer what was asked, then close.
        let mut st = self.state.borrow_mut();
        st.closing = true;
        let busy = !st.queue.is_empty() || st.stream.is_some();
        if busy {
            return true;
        }
        false
    }

    fn connection_lost(&mut self, _reason: Failure) {
        let (timer, abort_timer, slots, stream) = {
            let mut st = self.state.borrow_mut();
            st.closed = true;
            st.transport = None;
            st.flow.transport.borrow_mut().take();
            st.flow.stream.borrow_mut().take();
            (
                st.timer.take(),
                st.abort_timer.take(),
                std::mem::take(&mut st.queue),
                st.stream.take(),
            )
        };
        for t in [timer, abort_timer].into_iter().flatten() {
            let _ = t.cancel();
        }
        if let Some(s) = stream {
            s.writer.set_aborted();
        }
        // Nobody will read these responses: stop the work behind them.
        for slot in slots {
            slot.abandon();
        }
    }
}

impl fmt::Debug for HttpConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.borrow();
        f.debug_struct("HttpConnection")
            .field("pending", &st.queue.len())
            .field("buffered", &st.buf.len())
            .field("closing", &st.closing)
            .finish()
    }
}

/// The `log` target of the access log: one line per response, at `info` level, in
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
fn access_log(transport: Option<&TransportRef>, slot: &Slot, response: &Response) {
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
