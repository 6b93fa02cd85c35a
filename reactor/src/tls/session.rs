//! One TLS connection: a [`Protocol`] to the socket's connection below
//! ([`TlsProtocol`]), and a [`Transport`] to the user's protocol above ([`TlsSession`]).
//!
//! Bytes read from the socket go to `TlsProtocol::data_received`, into rustls
//! (`read_tls`, `process_new_packets`); the plaintext it yields goes to the user's
//! `data_received`. Plaintext the user writes is encrypted by rustls and written, as
//! ciphertext, to the connection below, whose queue, water marks and producer work as on
//! TCP. The connection below never knows it carries TLS, so plain TCP pays nothing for it.
//!
//! No borrow of the session is held while it calls the user's protocol or the connection
//! below: either may call back into the session (a write from `data_received`, a producer's
//! `stop_producing` from inside a write).

use std::cell::{Cell, RefCell};
use std::io::{self, IoSlice, Read, Write};
use std::rc::{Rc, Weak};
use std::time::Duration;

use ropewalk_deferred::{Failure, Resolver};

use crate::protocol::{Address, ConnectionError, Producer, Protocol, Transport, TransportRef};
use crate::reactor::{Reactor, ReactorCore};
use crate::tcp::Connected;
use crate::time::DelayedCall;

use crate::tls_error::TlsError;

/// The most plaintext handed to `data_received` at once: one TLS record's worth.
const PLAINTEXT_CHUNK: usize = 16 * 1024;

/// The most plaintext a protocol's writes leave in rustls, unwritten, while its
/// `data_received` runs: past it they go below at once, so the water marks see them.
const CORK_LIMIT: usize = 16 * 1024;

/// Buffers written at once without a `Vec` of slices.
const INLINE_SLICES: usize = 8;

thread_local! {
    /// Ciphertext on its way from rustls to the connection below; kept between writes.
    static OUTGOING: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// Plaintext on its way from rustls to the protocol; kept between reads.
    static INCOMING: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Where a session is in its life.
#[derive(Default)]
struct SessionState {
    handshaken: bool,
    /// The TLS failure that ends the connection, reported instead of the socket's reason.
    failure: Option<Failure>,
    reading_paused: bool,
    /// Ciphertext read while reading was paused, fed to rustls when it resumes.
    pending_in: Vec<u8>,
    /// A look at what was set aside while paused is queued on the reactor.
    resume_queued: bool,
    /// The peer's `close_notify` arrived and its EOF was given to the protocol.
    eof_delivered: bool,
    /// The peer's `close_notify` arrived.
    peer_closed: bool,
    /// The protocol keeps the connection open for writing after the peer's EOF.
    keep_open: bool,
    /// `lose_connection` or `abort_connection` was called.
    closing: bool,
    /// This end's `close_notify` was sent.
    write_shut: bool,
    /// The connection below is gone.
    ended: bool,
}

/// One TLS connection's state; the user's protocol's transport.
pub(crate) struct TlsSession<P: Protocol> {
    this: Weak<TlsSession<P>>,
    reactor: Weak<ReactorCore>,
    tls: RefCell<rustls::Connection>,
    lower: RefCell<Option<TransportRef>>,
    inner: RefCell<Option<Rc<RefCell<P>>>>,
    st: RefCell<SessionState>,
    /// A client's connect Deferred, fired when the handshake ends.
    resolver: RefCell<Option<Resolver<Connected<P>>>>,
    /// Started on a live connection (`start_tls`): the protocol was made before, and this
    /// fires when the handshake ends.
    started: RefCell<Option<Resolver<()>>>,
    timer: RefCell<Option<DelayedCall>>,
    handshake_timeout: Duration,
    /// Inside `receive`: writes stay in rustls until it returns (see `CORK_LIMIT`).
    corked: Cell<bool>,
    /// Plaintext written into rustls since the last flush.
    unflushed: Cell<usize>,
    peer: RefCell<Address>,
    local: RefCell<Address>,
}

impl<P: Protocol> TlsSession<P> {
    pub(crate) fn new(
        reactor: &Reactor,
        tls: impl Into<rustls::Connection>,
        handshake_timeout: Duration,
    ) -> Rc<TlsSession<P>> {
        let mut tls = tls.into();
        // Writes are counted and limited by the connection below, as ciphertext.
        tls.set_buffer_limit(None);
        Rc::new_cyclic(|this| TlsSession {
            this: this.clone(),
            reactor: Rc::downgrade(&reactor.inner),
            tls: RefCell::new(tls),
            lower: RefCell::new(None),
            inner: RefCell::new(None),
            st: RefCell::new(SessionState::default()),
            resolver: RefCell::new(None),
            started: RefCell::new(None),
            timer: RefCell::new(None),
            handshake_timeout,
            corked: Cell::new(false),
            unflushed: Cell::new(0),
            peer: RefCell::new(Address::Test),
            local: RefCell::new(Address::Test),
        })
    }

    pub(crate) fn set_inner(&self, inner: P) {
        *self.inner.borrow_mut() = Some(Rc::new(RefCell::new(inner)));
    }

    /// Started on a live connection whose protocol is `inner` (already made, with its own
    /// transport): `started` fires when the handshake ends.
    pub(crate) fn set_started(&self, inner: Rc<RefCell<P>>, started: Resolver<()>) {
        *self.inner.borrow_mut() = Some(inner);
        *self.started.borrow_mut() = Some(started);
    }

    pub(crate) fn set_resolver(&self, resolver: Resolver<Connected<P>>) {
        *self.resolver.borrow_mut() = Some(resolver);
    }

    fn reactor(&self) -> Option<Reactor> {
        self.reactor.upgrade().map(|inner| Reactor { inner })
    }

    fn lower(&self) -> Option<TransportRef> {
        self.lower.borrow().clone()
    }

    /// Aborts the connection: for cancelling a connect during its handshake.
    pub(crate) fn abort(&self) {
        if let Some(lower) = self.lower() {
            lower.abort_connection();
        }
    }

    /// Writes what rustls has to send (handshake messages, records, alerts) to the
    /// connection below.
    fn flush_tls(&self) {
        self.unflushed.set(0);
        let mut out = OUTGOING.take();
        {
            let mut tls = self.tls.borrow_mut();
            while tls.wants_write() {
                if tls.write_tls(&mut out).is_err() {
                    break;
                }
            }
        }
        if !out.is_empty() {
            if let Some(lower) = self.lower() {
                lower.write(&out);
            }
        }
        out.clear();
        // Keep what one burst needs, not what the largest ever did.
        if out.capacity() > 4 * PLAINTEXT_CHUNK {
            out = Vec::new();
        }
        OUTGOING.set(out);
    }

    /// Handles ciphertext from the peer (after what was set aside while paused).
    ///
    /// What rustls and the protocol write meanwhile (handshake messages, session tickets,
    /// answers, a `close_notify`) goes below in one write at the end, not one per record.
    pub(crate) fn receive(&self, input: &[u8]) -> Result<(), Failure> {
        let was_corked = self.corked.replace(true);
        let result = self.receive_corked(input);
        self.corked.set(was_corked);
        self.flush_tls();
        result
    }

    fn receive_corked(&self, input: &[u8]) -> Result<(), Failure> {
        let owned;
        let input = {
            let mut st = self.st.borrow_mut();
            if st.ended || st.failure.is_some() {
                return Ok(());
            }
            if st.reading_paused {
                st.pending_in.extend_from_slice(input);
                return Ok(());
            }
            if st.pending_in.is_empty() {
                input
            } else {
                let mut v = std::mem::take(&mut st.pending_in);
                v.extend_from_slice(input);
                owned = v;
                &owned[..]
            }
        };
        let mut rest = input;
        loop {
            let result = {
                let mut tls = self.tls.borrow_mut();
                let read = if rest.is_empty() {
                    Ok(0)
                } else {
                    tls.read_tls(&mut rest)
                };
                match read {
                    Ok(_) => tls
                        .process_new_packets()
                        .map(|io| (io.peer_has_closed(), tls.is_handshaking()))
                        .map_err(TlsError::from),
                    Err(e) => Err(TlsError::Protocol(rustls::Error::General(e.to_string()))),
                }
            };
            let (peer_closed, handshaking) = match result {
                Ok(r) => r,
                Err(e) => {
                    // The alert that says what went wrong, before the close.
                    self.flush_tls();
                    self.fail(e);
                    return Ok(());
                }
            };
            if !handshaking && !self.st.borrow().handshaken {
                self.handshake_done();
            }
            if self.st.borrow().handshaken {
                self.deliver()?;
            }
            if peer_closed {
                self.st.borrow_mut().peer_closed = true;
                self.deliver_eof();
            }
            let mut st = self.st.borrow_mut();
            if rest.is_empty() || st.ended || st.closing || st.peer_closed {
                break;
            }
            if st.reading_paused {
                st.pending_in.extend_from_slice(rest);
                break;
            }
        }
        Ok(())
    }

    /// Hands the plaintext rustls holds to the protocol, until it pauses.
    fn deliver(&self) -> Result<(), Failure> {
        // Kept between calls: not 16 KiB of zeroes on the stack per record.
        let mut buf = INCOMING.take();
        if buf.len() < PLAINTEXT_CHUNK {
            buf.resize(PLAINTEXT_CHUNK, 0);
        }
        let result = self.deliver_through(&mut buf);
        INCOMING.set(buf);
        result
    }

    fn deliver_through(&self, buf: &mut [u8]) -> Result<(), Failure> {
        loop {
            if self.st.borrow().reading_paused {
                return Ok(());
            }
            let n = match self.tls.borrow_mut().reader().read(buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                // WouldBlock: nothing more yet. An unclean EOF is seen at the socket's EOF.
                Err(_) => return Ok(()),
            };
            let Some(inner) = self.inner.borrow().clone() else {
                return Ok(());
            };
            let Ok(mut p) = inner.try_borrow_mut() else {
                log::error!("protocol re-entered by its own TLS connection: data dropped");
                return Ok(());
            };
            p.data_received(&buf[..n])?;
        }
    }

    /// The peer's `close_notify`: its EOF, given to the protocol once every byte before it
    /// has been.
    fn deliver_eof(&self) {
        {
            let st = self.st.borrow();
            if st.eof_delivered || st.reading_paused || !st.handshaken || st.ended {
                return;
            }
        }
        if self.tls.borrow_mut().reader().fill_buf_len() > 0 {
            return;
        }
        self.st.borrow_mut().eof_delivered = true;
        let inner = self.inner.borrow().clone();
        let keep = inner.is_some_and(|inner| {
            inner
                .try_borrow_mut()
                .map(|mut p| p.eof_received())
                .unwrap_or(false)
        });
        self.st.borrow_mut().keep_open = keep;
        if !keep {
            self.lose_connection();
        }
    }

    fn handshake_done(&self) {
        self.st.borrow_mut().handshaken = true;
        if let Some(timer) = self.timer.borrow_mut().take() {
            let _ = timer.cancel();
        }
        let started = self.started.borrow_mut().take();
        if let Some(r) = started {
            // The protocol has had its connection_made, with its own transport.
            let _ = r.callback(());
            return;
        }
        let Some(inner) = self.inner.borrow().clone() else {
            return;
        };
        let Some(this) = self.this.upgrade() else {
            return;
        };
        let transport: TransportRef = this;
        match inner.try_borrow_mut() {
            Ok(mut p) => p.connection_made(transport),
            Err(_) => log::error!("protocol re-entered by its own TLS connection"),
        }
        let resolver = self.resolver.borrow_mut().take();
        if let Some(r) = resolver {
            let _ = r.callback(inner);
        }
    }

    /// A TLS failure: the alert (already flushed) goes out, then the connection closes,
    /// and `connection_lost` (or the connect Deferred) gets `error`.
    fn fail(&self, error: TlsError) {
        log::debug!("TLS with {} failed: {error}", self.peer.borrow());
        {
            let mut st = self.st.borrow_mut();
            if st.failure.is_none() {
                st.failure = Some(Failure::new(error));
            }
            st.closing = true;
        }
        if let Some(lower) = self.lower() {
            lower.lose_connection();
        }
    }

    fn handshake_timed_out(&self) {
        self.timer.borrow_mut().take();
        {
            let mut st = self.st.borrow_mut();
            if st.handshaken || st.ended || st.failure.is_some() {
                return;
            }
            st.failure = Some(Failure::new(TlsError::HandshakeTimeout(
                self.handshake_timeout,
            )));
            st.closing = true;
        }
        log::debug!(
            "TLS handshake with {} timed out after {:?}",
            self.peer.borrow(),
            self.handshake_timeout
        );
        if let Some(lower) = self.lower() {
            lower.abort_connection();
        }
    }

    /// Looks again at what was set aside while reading was paused.
    fn resume(&self) {
        self.st.borrow_mut().resume_queued = false;
        if let Err(failure) = self.receive(&[]) {
            // Not inside the connection's own `data_received`: close it from here.
            self.st.borrow_mut().failure = Some(failure);
            self.abort();
        }
        let peer_closed = self.st.borrow().peer_closed;
        if peer_closed {
            self.deliver_eof();
        }
    }

    // The connection below, through `TlsProtocol`:

    pub(crate) fn lower_made(&self, lower: TransportRef) {
        *self.peer.borrow_mut() = lower.peer_addr();
        *self.local.borrow_mut() = lower.local_addr();
        *self.lower.borrow_mut() = Some(lower);
        if let Some(reactor) = self.reactor() {
            let weak = self.this.clone();
            let timer = reactor.call_later(self.handshake_timeout, move || {
                if let Some(s) = weak.upgrade() {
                    s.handshake_timed_out();
                }
            });
            *self.timer.borrow_mut() = Some(timer);
        }
        // A client's ClientHello.
        self.flush_tls();
    }

    pub(crate) fn lower_eof(&self) -> bool {
        let mut st = self.st.borrow_mut();
        if st.eof_delivered {
            return st.keep_open;
        }
        if st.failure.is_none() {
            st.failure = Some(if !st.handshaken {
                Failure::new(TlsError::PeerClosed(None))
            } else if st.peer_closed {
                // Its close_notify came; the protocol has not had it yet (paused).
                Failure::new(ConnectionError::Done)
            } else {
                // Without close_notify the end of the data cannot be told from a
                // truncation by someone in the middle.
                Failure::new(ConnectionError::Lost(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed the connection without a TLS close_notify",
                )))
            });
        }
        false
    }

    pub(crate) fn lower_lost(&self, reason: Failure) {
        if let Some(timer) = self.timer.borrow_mut().take() {
            let _ = timer.cancel();
        }
        self.lower.borrow_mut().take();
        let (handshaken, failure) = {
            let mut st = self.st.borrow_mut();
            st.ended = true;
            st.pending_in = Vec::new();
            (st.handshaken, st.failure.take())
        };
        let inner = self.inner.borrow_mut().take();
        let started = self.started.borrow_mut().take();
        if let Some(r) = started {
            // start_tls: the handshake failed, and the protocol made long ago is told.
            let reason = failure.unwrap_or(reason);
            let _ = r.errback(reason.clone());
            if let Some(inner) = inner {
                inner.borrow_mut().connection_lost(reason);
            }
            return;
        }
        if handshaken {
            let reason = failure.unwrap_or(reason);
            if let Some(inner) = inner {
                inner.borrow_mut().connection_lost(reason);
            }
            return;
        }
        let reason = failure.unwrap_or_else(|| match reason.downcast_ref::<ConnectionError>() {
            Some(ConnectionError::Done) => Failure::new(TlsError::PeerClosed(None)),
            Some(ConnectionError::Lost(e)) => Failure::new(TlsError::PeerClosed(Some(
                io::Error::new(e.kind(), e.to_string()),
            ))),
            _ => reason,
        });
        let resolver = self.resolver.borrow_mut().take();
        match resolver {
            Some(r) => {
                let _ = r.errback(reason);
            }
            None => log::debug!("TLS handshake with {} failed: {reason}", self.peer.borrow()),
        }
    }
}

/// How many plaintext bytes the reader holds, without taking them.
trait FillBufLen {
    fn fill_buf_len(&mut self) -> usize;
}

impl FillBufLen for rustls::Reader<'_> {
    fn fill_buf_len(&mut self) -> usize {
        io::BufRead::fill_buf(self).map_or(0, |b| b.len())
    }
}

impl<P: Protocol> Transport for TlsSession<P> {
    fn write(&self, data: &[u8]) {
        self.write_vectored(&[data]);
    }

    fn write_vectored(&self, bufs: &[&[u8]]) {
        {
            let st = self.st.borrow();
            if st.closing || st.write_shut || st.ended {
                return;
            }
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return;
        }
        {
            let mut tls = self.tls.borrow_mut();
            // A few buffers (a response's head and body): slices on the stack.
            let mut inline = [IoSlice::new(&[]); INLINE_SLICES];
            let mut heap = Vec::new();
            let mut slices: &mut [IoSlice<'_>] = if bufs.len() <= INLINE_SLICES {
                for (slot, b) in inline.iter_mut().zip(bufs) {
                    *slot = IoSlice::new(b);
                }
                &mut inline[..bufs.len()]
            } else {
                heap.extend(bufs.iter().map(|b| IoSlice::new(b)));
                &mut heap[..]
            };
            while !slices.is_empty() {
                match tls.writer().write_vectored(slices) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => IoSlice::advance_slices(&mut slices, n),
                }
            }
        }
        let unflushed = self.unflushed.get() + total;
        self.unflushed.set(unflushed);
        if !self.corked.get() || unflushed >= CORK_LIMIT {
            self.flush_tls();
        }
    }

    fn lose_connection(&self) {
        let send_close = {
            let mut st = self.st.borrow_mut();
            if st.closing || st.ended {
                return;
            }
            st.closing = true;
            !std::mem::replace(&mut st.write_shut, true)
        };
        if send_close {
            // After everything written before it, in the same queue.
            self.tls.borrow_mut().send_close_notify();
            self.flush_tls();
        }
        if let Some(lower) = self.lower() {
            lower.lose_connection();
        }
    }

    fn abort_connection(&self) {
        self.st.borrow_mut().closing = true;
        self.abort();
    }

    fn half_close(&self) {
        {
            let mut st = self.st.borrow_mut();
            if st.write_shut || st.ended {
                return;
            }
            st.write_shut = true;
        }
        self.tls.borrow_mut().send_close_notify();
        self.flush_tls();
        if let Some(lower) = self.lower() {
            lower.half_close();
        }
    }

    fn tls_info(&self) -> Option<super::TlsInfo> {
        super::TlsInfo::of(&self.tls.borrow())
    }

    fn peer_addr(&self) -> Address {
        self.peer.borrow().clone()
    }

    fn local_addr(&self) -> Address {
        self.local.borrow().clone()
    }

    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.lower().map_or(Ok(()), |l| l.set_nodelay(on))
    }

    fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        self.lower().map_or(Ok(()), |l| l.set_keepalive(idle))
    }

    fn pause_reading(&self) {
        self.st.borrow_mut().reading_paused = true;
        if let Some(lower) = self.lower() {
            lower.pause_reading();
        }
    }

    fn resume_reading(&self) {
        let set_aside = {
            let st = self.st.borrow();
            !st.pending_in.is_empty() || (st.peer_closed && !st.eof_delivered)
        } || self.tls.borrow_mut().reader().fill_buf_len() > 0;
        let queue = {
            let mut st = self.st.borrow_mut();
            st.reading_paused = false;
            let queue = set_aside && !st.resume_queued && !st.ended;
            st.resume_queued |= queue;
            queue
        };
        if let Some(lower) = self.lower() {
            lower.resume_reading();
        }
        // Plaintext or ciphertext set aside while paused: from the loop, not from inside
        // the caller (which may be the protocol itself).
        if queue {
            if let Some(reactor) = self.reactor() {
                let weak = self.this.clone();
                reactor.call_soon(move || {
                    if let Some(s) = weak.upgrade() {
                        s.resume();
                    }
                });
            }
        }
    }

    fn register_producer(&self, producer: Rc<dyn Producer>, streaming: bool) {
        match self.lower() {
            Some(lower) => lower.register_producer(producer, streaming),
            None => producer.stop_producing(),
        }
    }

    fn unregister_producer(&self) {
        if let Some(lower) = self.lower() {
            lower.unregister_producer();
        }
    }

    fn write_buffer_len(&self) -> usize {
        // What rustls holds during a `data_received` (under `CORK_LIMIT`) goes below when
        // it returns: like bytes in flight, it is not counted.
        self.lower().map_or(0, |l| l.write_buffer_len())
    }

    fn is_closing(&self) -> bool {
        let st = self.st.borrow();
        st.closing || st.ended || self.lower().is_none_or(|l| l.is_closing())
    }
}

/// The protocol the socket's connection runs: TLS, around the user's protocol.
pub(crate) struct TlsProtocol<P: Protocol>(pub(crate) Rc<TlsSession<P>>);

impl<P: Protocol> Protocol for TlsProtocol<P> {
    fn connection_made(&mut self, transport: TransportRef) {
        self.0.lower_made(transport);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        self.0.receive(data)
    }

    fn eof_received(&mut self) -> bool {
        self.0.lower_eof()
    }

    fn connection_lost(&mut self, reason: Failure) {
        self.0.lower_lost(reason);
    }
}
