//! [`HttpConnection`]: one connection's state machine. Bytes read are parsed into
//! requests ([`parse_head`], then the body by its framing); each request gets a slot in
//! a queue and goes to the handler; responses leave in request order, gathered into
//! one write. Here too: the request, body, send and idle timeouts (one watchdog timer
//! per connection), the body's share of the server's budget, `100 Continue`, and the sink
//! a streamed body writes through.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use ropewalk_deferred::{CancelHandle, Deferred, Failure, Outcome};
use ropewalk_reactor::tls::TlsInfo;
use ropewalk_reactor::{Address, Clock, DelayedCall, Protocol, ReactorError, TransportRef};

use super::budget::Reservation;
use super::flow::{ConnProducer, Flow};
use super::response::{
    access_log, serialize, Body, BodySink, BodyWriter, Response, ACCESS_LOG_TARGET,
};
use super::ServerShared;
use crate::http::wire::chunked::{chunk_size_line, ChunkedDecoder};
use crate::http::wire::date::DateLines;
use crate::http::wire::framing::BodyFraming;
use crate::http::wire::request_head::{parse_head, Head, HeadResult};
use crate::http::{Request, Version};

/// Where the connection is in reading a request.
enum ReadingRequest {
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
    /// When the head ended, in the clock's time, and the body's bytes (with their chunk
    /// framing) received since: `body_timeout` and `min_body_rate` bound the whole body.
    started: Duration,
    received: u64,
    /// The body's bytes, taken from the server's budget.
    reserved: Reservation,
}

impl BodyRead {
    /// When the body's time is up: `body_timeout` after its start, one second more for
    /// every `min_body_rate` bytes received.
    fn deadline(&self, config: &super::ServerConfig) -> Duration {
        let earned = match config.min_body_rate {
            0 => Duration::ZERO,
            rate => Duration::from_secs_f64(self.received as f64 / rate as f64),
        };
        self.started
            .saturating_add(config.body_timeout)
            .saturating_add(earned)
    }
}

/// A request's place in the queue of responses, kept until its response is written.
pub(super) struct Slot {
    pub(super) head_only: bool,
    /// `METHOD target HTTP/x.y`, kept for the access log (only when it is enabled).
    pub(super) request_line: Option<String>,
    pub(super) version: Version,
    pub(super) keep_alive: bool,
    response: Option<Response>,
    cancel: Option<CancelHandle>,
    id: u64,
    /// The request's body counts against the server's budget until its response is
    /// written (or abandoned): dropped with the slot.
    _body: Option<Reservation>,
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
    /// Bytes wait in the transport's queue: `send_timeout` from when it last moved.
    Send,
}

/// A response body being streamed: later responses wait for it.
struct ActiveStream {
    writer: BodyWriter,
}

/// Everything one connection holds: its buffer, the request being read, the queue of
/// response slots, its timers and its output.
struct ConnState {
    shared: Rc<ServerShared>,
    transport: Option<TransportRef>,
    /// The transport's peer, read once.
    peer: Address,
    /// What TLS negotiated, read once (`None` on plain TCP).
    tls: Option<Arc<TlsInfo>>,
    buf: Vec<u8>,
    reading: ReadingRequest,
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
    /// The id under which the server's drain registry knows this connection.
    drain_id: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pump {
    Idle,
    Running,
    Again,
}

/// One HTTP connection: the [`Protocol`] an [`HttpServer`](super::HttpServer) builds.
///
/// It parses requests as bytes come, hands each to the server's handler, and writes the
/// responses in request order, so pipelined requests are answered in turn; it keeps the
/// connection open between requests (HTTP/1.1 keep-alive) until the client asks to
/// close or a timeout of the server's [`ServerConfig`](super::ServerConfig) ends it.
///
/// # Examples
///
/// Two pipelined requests in one packet, tested without a socket:
///
/// ```
/// use ropewalk_protocols::http::{HttpServer, Request, Response};
/// use ropewalk_reactor::{testing::StringTransport, ManualClock, Protocol};
///
/// let clock = ManualClock::new();
/// let server = HttpServer::new(&clock, |req: Request| {
///     Ok(Response::text(format!("you asked for {}", req.path())))
/// });
/// let mut conn = server.connection();
/// let t = StringTransport::connect(&mut conn);
/// conn.data_received(
///     b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
/// )
/// .unwrap();
/// let out = String::from_utf8(t.value()).unwrap();
/// let a = out.find("you asked for /a").unwrap();
/// let b = out.find("you asked for /b").unwrap();
/// assert!(a < b, "in request order");
/// assert!(t.is_disconnecting(), "closed after the request that asked for it");
/// ```
pub struct HttpConnection {
    state: Rc<RefCell<ConnState>>,
    pumping: Rc<Cell<Pump>>,
}

/// Bytes of responses gathered before they are written while requests are parsed.
const OUT_BATCH: usize = 64 * 1024;

/// The output buffer's capacity kept between writes; a larger one (a large body was
/// copied into it) is freed after its write.
const OUT_KEEP: usize = 2 * OUT_BATCH;

/// What one parsing step decided.
enum Step {
    /// Nothing more to do until more bytes come.
    Wait,
    /// A complete request to hand to the handler, with its body's share of the budget.
    Dispatch(Head, Vec<u8>, Option<Reservation>),
    /// A malformed request: answer with this status and close.
    Reject(u16),
    /// Send `100 Continue` now.
    Continue,
    /// Parsing changed state; go on.
    Progress,
}

impl HttpConnection {
    /// A connection of the server whose shared parts are `shared`.
    pub(super) fn new(shared: Rc<ServerShared>) -> HttpConnection {
        HttpConnection {
            state: Rc::new(RefCell::new(ConnState {
                shared,
                transport: None,
                peer: Address::Test,
                tls: None,
                buf: Vec::new(),
                reading: ReadingRequest::Head,
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
                drain_id: None,
            })),
            pumping: Rc::new(Cell::new(Pump::Idle)),
        }
    }

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
                    let mut st = self.state.borrow_mut();
                    if !st.out.is_empty() {
                        // Earlier responses wait in the batch: the 100 goes behind them.
                        st.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    } else if let Some(t) = &st.transport {
                        t.write(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                }
                Step::Reject(status) => {
                    let mut st = self.state.borrow_mut();
                    st.closing = true;
                    st.buf = Vec::new();
                    // A body being read gives its budget back now.
                    st.reading = ReadingRequest::Head;
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
                    reserved,
                ) => {
                    // Made where it is passed: no copy of the whole request on the way.
                    // An internet address is copied, not cloned through a match on both
                    // kinds of `SocketAddr`.
                    let (peer, tls) = {
                        let st = self.state.borrow();
                        let peer = match &st.peer {
                            Address::Inet(addr) => Address::Inet(*addr),
                            other => other.clone(),
                        };
                        (peer, st.tls.clone())
                    };
                    let mut request =
                        Request::from_parts(method, target, version, headers, body, peer);
                    if tls.is_some() {
                        request.set_tls_info(tls);
                    }
                    self.dispatch(request, keep_alive, reserved, &shared, &mut date);
                }
            }
        }
    }

    fn dispatch<'s>(
        &self,
        request: Request,
        keep_alive: bool,
        reserved: Option<Reservation>,
        shared: &'s ServerShared,
        date: &mut Option<std::cell::Ref<'s, DateLines>>,
    ) {
        let mut slot = {
            let mut st = self.state.borrow_mut();
            let id = st.next_slot_id();
            // A server that drains answers this request and closes.
            let keep_alive = keep_alive && !shared.drain.draining();
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
                _body: reserved,
            }
        };
        // A handler that answered at once (the common case): no Deferred, no callback,
        // no cancel handle. Nothing else runs on this connection while it does, so its
        // slot joins the queue after it returns.
        let mut response = match shared.handler.handle_outcome(request) {
            Outcome::Value(response) => response,
            Outcome::Failure(f) => handler_response(Err(f), shared),
            Outcome::Chain(mut d) => match d.try_result() {
                Some(result) => handler_response(result, shared),
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
            let shared = state.borrow().shared.clone();
            let response = handler_response(result, &shared);
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
                // A head before a file: one packet with the file's first bytes (the
                // file is sent below, in this same call).
                match &started_stream {
                    Some((writer, false)) if writer.starts_with_file() => t.write_more(&st.out),
                    _ => t.write(&st.out),
                }
                // `pump` sets the timer after this.
                st.flow.check_sending(t, || st.shared.clock.loop_time());
            }
            st.out.clear();
            if st.out.capacity() > OUT_KEEP {
                // A large body went out: the transport holds what the socket did not
                // take; the connection keeps no second copy.
                st.out = Vec::new();
            }
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
        let clock = self.state.borrow().shared.clock.clone();
        let sink = Rc::new(StreamSink {
            connection: Rc::downgrade(&self.state),
            pumping: self.pumping.clone(),
            transport,
            chunked,
            flow,
            clock,
        });
        writer.attach(sink);
    }

    fn update_timer(&self) {
        let mut st = self.state.borrow_mut();
        if st.closed {
            return;
        }
        let want = if st.flow.sending.get() {
            // The peer has bytes to take: whatever else waits, it waits on the peer.
            Some(TimerKind::Send)
        } else if !st.queue.is_empty() || st.stream.is_some() || st.closing {
            None
        } else if st.request_started
            || !st.buf.is_empty()
            || matches!(st.reading, ReadingRequest::Body(_))
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
        // The loop's reading of the clock: one per wake-up, not one per request.
        let now = st.shared.clock.loop_time();
        st.deadline = match (kind, &st.reading) {
            // In a body: the pause since its last bytes, and its total time.
            (TimerKind::Request, ReadingRequest::Body(read)) => now
                .saturating_add(st.shared.config.request_timeout)
                .min(read.deadline(&st.shared.config)),
            (TimerKind::Request, _) => now.saturating_add(st.shared.config.request_timeout),
            (TimerKind::Idle, _) => now.saturating_add(st.shared.config.idle_timeout),
            (TimerKind::Send, _) => st.send_deadline(),
        };
        let in_time = st
            .timer
            .as_ref()
            .is_some_and(|t| t.active() && t.time() <= st.deadline);
        if !in_time {
            if let Some(t) = st.timer.take() {
                let _ = t.cancel();
            }
            let delay = st.deadline.saturating_sub(now);
            drop(st);
            self.arm_watchdog(delay);
        }
    }

    /// Arms the watchdog `after` from now, at most the shorter of the two timeouts ahead,
    /// so that a later, nearer deadline never needs it moved back.
    fn arm_watchdog(&self, after: Duration) {
        let mut st = self.state.borrow_mut();
        let config = &st.shared.config;
        let after = after.min(
            config
                .request_timeout
                .min(config.idle_timeout)
                .min(config.send_timeout),
        );
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
            if kind == TimerKind::Send {
                // Moved by every write the socket took, without touching the timer.
                st.deadline = st.send_deadline();
            }
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
            TimerKind::Send => {
                log::debug!(
                    "peer {} took no bytes for {:?} ({} queued); aborting",
                    st.peer,
                    st.shared.config.send_timeout,
                    t.write_buffer_len()
                );
                drop(st);
                t.abort_connection();
                return;
            }
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

    /// Something outside `pump` (the transport's queue drained, a streamed body queued
    /// bytes) changed which timer the connection needs: set it now, or let the running
    /// `pump` do it.
    fn timers_changed(&self) {
        match self.pumping.get() {
            Pump::Idle => {
                if self.state.try_borrow_mut().is_ok() {
                    self.update_timer();
                }
            }
            _ => self.pumping.set(Pump::Again),
        }
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

impl ConnState {
    /// When the send timeout expires: `send_timeout` after the transport's queue last
    /// moved.
    fn send_deadline(&self) -> Duration {
        self.flow
            .progress_at
            .get()
            .saturating_add(self.shared.config.send_timeout)
    }

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
            response: Some(match status {
                // Only overload: the same request may succeed in a moment.
                503 => Response::error(503).with_header("Retry-After", RETRY_AFTER),
                _ => Response::error(status),
            }),
            cancel: None,
            id,
            _body: None,
        });
    }

    fn step(&mut self) -> Step {
        match &mut self.reading {
            ReadingRequest::Head => {
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
                            return Step::Dispatch(head, Vec::new(), None);
                        }
                        // A length is reserved whole; a chunked body as it grows.
                        let Some(reserved) = self.shared.bodies.reserve(left) else {
                            log::debug!(
                                "a body of {left} bytes would pass max_buffered_bodies; answering 503"
                            );
                            return Step::Reject(503);
                        };
                        self.reading = ReadingRequest::Body(Box::new(BodyRead {
                            head,
                            body: Vec::with_capacity(left.min(64 * 1024) as usize),
                            left,
                            chunked,
                            started: self.shared.clock.loop_time(),
                            received: 0,
                            reserved,
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
            ReadingRequest::Body(read) => {
                let BodyRead {
                    body,
                    left,
                    chunked,
                    received,
                    reserved,
                    ..
                } = &mut **read;
                let (used, done) = match chunked {
                    Some(decoder) => match decoder.decode(&self.buf, body) {
                        Err(status) => return Step::Reject(status),
                        Ok(_) if !reserved.grow_to(body.len() as u64) => {
                            log::debug!(
                                "a chunked body of {} bytes would pass max_buffered_bodies; answering 503",
                                body.len()
                            );
                            return Step::Reject(503);
                        }
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
                *received += used as u64;
                if !done {
                    if used > 0 {
                        // The body moves: `request_timeout` bounds each pause in it, not
                        // the whole upload (update_timer sets a new deadline).
                        self.timer_kind = None;
                    }
                    return Step::Wait;
                }
                let ReadingRequest::Body(read) =
                    std::mem::replace(&mut self.reading, ReadingRequest::Head)
                else {
                    unreachable!("matched above")
                };
                let BodyRead {
                    head,
                    body,
                    reserved,
                    ..
                } = *read;
                self.request_started = false;
                self.continue_pending = false;
                self.timer_kind = None;
                Step::Dispatch(head, body, Some(reserved))
            }
        }
    }
}

/// The response to send for a handler's result: a failure is logged and becomes a 500,
/// except a worker pool that is full or shut down (the handler's `defer_to_thread` could
/// not be admitted): that is overload, not a bug, so 503 with `Retry-After`, logged at most
/// once a second.
fn handler_response(result: Result<Response, Failure>, shared: &ServerShared) -> Response {
    result.unwrap_or_else(|f| {
        if let Some(e @ (ReactorError::PoolFull(_) | ReactorError::PoolShutDown)) =
            f.downcast_ref::<ReactorError>()
        {
            if let Some(held) = shared.overload_log.allow(shared.clock.now()) {
                log::warn!(
                    "answering 503: {e}{}",
                    ropewalk_reactor::LogLimiter::suffix(held)
                );
            }
            return Response::error(503).with_header("Retry-After", RETRY_AFTER);
        }
        log::error!("request handler failed: {f}");
        Response::error(500)
    })
}

/// Seconds a client refused for overload is asked to wait before it tries again.
const RETRY_AFTER: &str = "1";

struct StreamSink {
    connection: Weak<RefCell<ConnState>>,
    pumping: Rc<Cell<Pump>>,
    transport: TransportRef,
    chunked: bool,
    flow: Rc<Flow>,
    clock: Rc<dyn Clock>,
}

impl StreamSink {
    /// After a write: if bytes now wait in the queue, the send timeout starts.
    fn check_sending(&self) {
        if self
            .flow
            .check_sending(&self.transport, || self.clock.loop_time())
        {
            if let Some(state) = self.connection.upgrade() {
                HttpConnection {
                    state,
                    pumping: self.pumping.clone(),
                }
                .timers_changed();
            }
        }
    }
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
        self.check_sending();
    }

    fn file(&self, file: Rc<std::fs::File>, offset: u64, len: u64) {
        if self.chunked {
            let (line, start) = chunk_size_line(len as usize);
            self.transport.write(&line[start..]);
            self.transport.send_file(file, offset, len);
            self.transport.write(b"\r\n");
        } else {
            self.transport.send_file(file, offset, len);
        }
        self.check_sending();
    }

    fn abort(&self) {
        self.transport.abort_connection();
    }

    fn end(&self) {
        if self.chunked {
            self.transport.write(b"0\r\n\r\n");
            // `stream_done` below sets the timer.
            self.flow
                .check_sending(&self.transport, || self.clock.loop_time());
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

impl Protocol for HttpConnection {
    fn connection_made(&mut self, transport: TransportRef) {
        let _ = transport.set_nodelay(true);
        let mut st = self.state.borrow_mut();
        st.peer = transport.peer_addr();
        st.tls = transport.tls_info().map(Arc::new);
        st.transport = Some(transport.clone());
        let flow = st.flow.clone();
        drop(st);
        *flow.transport.borrow_mut() = Some(transport.clone());
        let (state, pumping) = (Rc::downgrade(&self.state), self.pumping.clone());
        let clock = self.state.borrow().shared.clock.clone();
        let drained = Box::new(move || {
            if let Some(state) = state.upgrade() {
                let pumping = pumping.clone();
                HttpConnection { state, pumping }.timers_changed();
            }
        });
        transport.register_producer(
            Rc::new(ConnProducer {
                flow,
                clock,
                drained,
            }),
            true,
        );
        let shared = self.state.borrow().shared.clone();
        if shared.drain.draining() {
            // Accepted before the drain began, made after: not served.
            transport.lose_connection();
            return;
        }
        let id = shared.drain.register(ConnHandle {
            state: Rc::downgrade(&self.state),
            pumping: Rc::downgrade(&self.pumping),
        });
        self.state.borrow_mut().drain_id = Some(id);
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
        let (timer, abort_timer, slots, stream, drain) = {
            let mut st = self.state.borrow_mut();
            let drain = st.drain_id.take().map(|id| (st.shared.clone(), id));
            st.closed = true;
            st.transport = None;
            // What was being read goes now (and its body's budget with it), not when the
            // protocol is dropped.
            st.reading = ReadingRequest::Head;
            st.buf = Vec::new();
            st.flow.transport.borrow_mut().take();
            st.flow.stream.borrow_mut().take();
            (
                st.timer.take(),
                st.abort_timer.take(),
                std::mem::take(&mut st.queue),
                st.stream.take(),
                drain,
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
        if let Some((shared, id)) = drain {
            shared.drain.forget(id);
        }
    }
}

/// A connection as the server's drain registry holds it: weakly, so that it never keeps
/// a connection alive.
pub(super) struct ConnHandle {
    state: Weak<RefCell<ConnState>>,
    pumping: Weak<Cell<Pump>>,
}

impl ConnHandle {
    pub(super) fn upgrade(&self) -> Option<HttpConnection> {
        Some(HttpConnection {
            state: self.state.upgrade()?,
            pumping: self.pumping.upgrade()?,
        })
    }
}

impl HttpConnection {
    /// The server drains: close at once if idle; otherwise answer the request in flight
    /// (or being read) with `Connection: close`, then close.
    pub(super) fn drain(&self) {
        {
            let mut st = self.state.borrow_mut();
            if st.closed || st.closing {
                return;
            }
            let reading = st.request_started
                || !st.buf.is_empty()
                || matches!(st.reading, ReadingRequest::Body(_));
            if reading {
                // `dispatch` sees the server draining and answers it with a close.
                return;
            }
            st.closing = true;
        }
        // Writes what is ready; closes now if nothing is pending.
        self.pump();
    }

    /// The drain's deadline passed.
    pub(super) fn abort(&self) {
        let transport = self.state.borrow().transport.clone();
        if let Some(t) = transport {
            t.abort_connection();
        }
    }
}

impl fmt::Debug for HttpConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.borrow();
        let body = match &st.reading {
            ReadingRequest::Body(read) => read.body.capacity(),
            ReadingRequest::Head => 0,
        };
        f.debug_struct("HttpConnection")
            .field("pending", &st.queue.len())
            .field("buffered", &st.buf.len())
            // Bytes of memory its buffers hold (input, the body being read, output).
            .field("held", &(st.buf.capacity() + body + st.out.capacity()))
            .field("closing", &st.closing)
            .finish()
    }
}
