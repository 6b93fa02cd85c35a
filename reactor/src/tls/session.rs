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
//!
//! File regions (`send_file`) wait in the session's outbox and are read and encrypted a
//! chunk at a time as the connection below drains (`outbox.rs`).

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::rc::{Rc, Weak};
use std::time::Duration;

use ropewalk_deferred::{Failure, Resolver};

use super::outbox::{read_chunk, Outbox, Piece, RelayTarget, CHUNKS_PER_TURN, FILE_CHUNK};
use crate::connection::DEFAULT_HIGH_WATER;
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
    /// File regions and the writes behind them, not yet encrypted; the producers.
    out: RefCell<Outbox>,
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
            out: RefCell::new(Outbox::default()),
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
        // Files given to `send_file` during a `start_tls` handshake.
        self.pump();
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

    // Files and producers, through the outbox (`outbox.rs`):

    /// Bytes queued as the user sees them: ciphertext below, and the plaintext of the
    /// outbox (file regions count as what is left of them).
    fn queued_total(&self) -> usize {
        let below = self.lower().map_or(0, |l| l.write_buffer_len());
        let here = usize::try_from(self.out.borrow().len).unwrap_or(usize::MAX);
        below.saturating_add(here)
    }

    /// Makes the relay the producer of the connection below, streaming or pull as the
    /// user's producer is.
    fn register_relay(&self) {
        let Some(lower) = self.lower() else { return };
        let (relay, streaming) = {
            let mut out = self.out.borrow_mut();
            let to: Weak<dyn RelayTarget> = self.this.clone();
            let relay = out.relay(to);
            out.relayed = true;
            (relay, out.streaming())
        };
        lower.register_producer(relay, streaming);
    }

    /// Encrypts `plain` and writes it below.
    fn encrypt(&self, plain: &[u8]) {
        {
            let mut tls = self.tls.borrow_mut();
            // No buffer limit (see `new`): rustls takes it all.
            let _ = tls.writer().write_all(plain);
        }
        self.flush_tls();
    }

    /// Encrypts what the outbox holds, reading files a chunk at a time, while the
    /// connection below holds less than a chunk; whether anything was sent.
    fn pump(&self) -> bool {
        {
            let mut out = self.out.borrow_mut();
            if out.pumping || out.is_empty() {
                return false;
            }
            out.pumping = true;
        }
        let mut sent = false;
        let mut failed = None;
        let mut chunks = 0;
        loop {
            {
                let st = self.st.borrow();
                if st.ended || !st.handshaken {
                    break;
                }
            }
            let Some(lower) = self.lower() else { break };
            if lower.write_buffer_len() >= FILE_CHUNK {
                break;
            }
            if chunks == CHUNKS_PER_TURN {
                // The socket still takes more: go on next turn, after the others.
                self.pump_later();
                break;
            }
            let piece = self.out.borrow_mut().next_piece();
            match piece {
                None => break,
                Some(Piece::Bytes(b)) => {
                    self.encrypt(&b);
                    sent = true;
                }
                Some(Piece::Read {
                    file,
                    offset,
                    len,
                    left,
                }) => {
                    let read = read_chunk(&file, offset, len, |plain| {
                        self.out.borrow_mut().advance_file(plain.len());
                        self.encrypt(plain);
                    });
                    match read {
                        Ok(0) => {
                            failed = Some(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!("file ended {left} bytes short of the region to send"),
                            ));
                            break;
                        }
                        Ok(_) => {
                            sent = true;
                            chunks += 1;
                        }
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
            }
        }
        self.out.borrow_mut().pumping = false;
        if let Some(e) = failed {
            self.file_failed(e);
        } else if self.out.borrow().is_empty() {
            self.outbox_drained();
        }
        sent
    }

    /// Pumps again on a later turn of the loop.
    fn pump_later(&self) {
        {
            let mut out = self.out.borrow_mut();
            if out.pump_queued {
                return;
            }
            out.pump_queued = true;
        }
        let Some(reactor) = self.reactor() else {
            return;
        };
        let weak = self.this.clone();
        reactor.call_soon(move || {
            if let Some(s) = weak.upgrade() {
                s.out.borrow_mut().pump_queued = false;
                if s.pump() {
                    s.report_progress();
                }
                s.resume_if_drained();
            }
        });
    }

    /// A file region could not be read whole: the peer gets what was sent before it, and
    /// no `close_notify` (so it sees a truncation, never a wrong response); the
    /// connection is lost with the error.
    fn file_failed(&self, error: io::Error) {
        log::debug!("send_file to {} failed: {error}", self.peer.borrow());
        {
            let mut st = self.st.borrow_mut();
            if st.failure.is_none() {
                st.failure = Some(Failure::new(ConnectionError::Lost(error)));
            }
            st.closing = true;
            st.write_shut = true;
        }
        self.out.borrow_mut().clear();
        if let Some(lower) = self.lower() {
            lower.lose_connection();
        }
    }

    /// The outbox is empty: do what `lose_connection` or `half_close` left for then, and
    /// free the producer slot below unless the user has a producer.
    fn outbox_drained(&self) {
        let (after, unregister) = {
            let mut out = self.out.borrow_mut();
            let after = std::mem::take(&mut out.after);
            let unregister = out.producer.is_none() && out.relayed;
            if unregister {
                out.relayed = false;
            }
            (after, unregister)
        };
        if after.notify {
            self.tls.borrow_mut().send_close_notify();
            self.flush_tls();
        }
        let Some(lower) = self.lower() else { return };
        if unregister {
            lower.unregister_producer();
        }
        if after.lose {
            lower.lose_connection();
        } else if after.half_close {
            lower.half_close();
        }
    }

    /// The user's push producer, unless it is paused already.
    fn running_push_producer(&self) -> Option<Rc<dyn Producer>> {
        let out = self.out.borrow();
        match &out.producer {
            Some((p, true)) if !out.producer_paused => Some(p.clone()),
            _ => None,
        }
    }

    /// Pauses the user's push producer once the queue is past the high-water mark.
    fn pause_if_full(&self) {
        let Some(p) = self.running_push_producer() else {
            return;
        };
        if self.queued_total() > DEFAULT_HIGH_WATER {
            self.out.borrow_mut().producer_paused = true;
            p.pause_producing();
        }
    }

    /// Resumes the user's push producer paused here once the queue is below the
    /// low-water mark.
    fn resume_if_drained(&self) {
        let p = {
            let out = self.out.borrow();
            match &out.producer {
                Some((p, true)) if out.producer_paused => p.clone(),
                _ => return,
            }
        };
        if self.queued_total() <= DEFAULT_HIGH_WATER / 4 {
            self.out.borrow_mut().producer_paused = false;
            p.resume_producing();
        }
    }

    /// Tells the user's producer how much is queued (the peer took some).
    fn report_progress(&self) {
        let p = self.out.borrow().producer.as_ref().map(|(p, _)| p.clone());
        if let Some(p) = p {
            p.write_progress(self.queued_total());
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
        {
            let mut out = self.out.borrow_mut();
            out.clear();
            out.producer = None;
            out.relay = None;
        }
        let (handshaken, failure, closed_after_peer) = {
            let mut st = self.st.borrow_mut();
            st.ended = true;
            st.pending_in = Vec::new();
            // The peer's close_notify came, and the protocol closed on it.
            let closed_after_peer = st.eof_delivered && !st.keep_open;
            (st.handshaken, st.failure.take(), closed_after_peer)
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
            let reason = match failure {
                Some(f) => f,
                // Our close_notify in answer to the peer's found its socket closed
                // (a Unix socket says so at once; TCP would have taken it): as on TCP,
                // a clean end.
                None if closed_after_peer && is_broken_pipe(&reason) => {
                    Failure::new(ConnectionError::Done)
                }
                None => reason,
            };
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

impl<P: Protocol> RelayTarget for TlsSession<P> {
    fn below_paused(&self) {
        if let Some(p) = self.running_push_producer() {
            self.out.borrow_mut().producer_paused = true;
            p.pause_producing();
        }
    }

    fn below_resumed(&self) {
        let (files, pull) = {
            let out = self.out.borrow();
            let pull = match &out.producer {
                Some((p, false)) => Some(p.clone()),
                _ => None,
            };
            (!out.is_empty(), pull)
        };
        if files {
            if self.pump() {
                self.report_progress();
            }
        } else if let Some(p) = pull {
            // The queue below is empty and nothing waits here: the user's pull producer
            // may write more.
            p.resume_producing();
            return;
        }
        self.resume_if_drained();
    }

    fn below_stopped(&self) {
        let producer = {
            let mut out = self.out.borrow_mut();
            out.clear();
            out.relayed = false;
            out.producer_paused = false;
            out.producer.take()
        };
        if let Some((p, _)) = producer {
            p.stop_producing();
        }
    }

    fn below_progress(&self, _queued: usize) {
        self.pump();
        self.report_progress();
        self.resume_if_drained();
    }
}

/// A write that found the peer's socket closed.
fn is_broken_pipe(reason: &Failure) -> bool {
    matches!(
        reason.downcast_ref::<ConnectionError>(),
        Some(ConnectionError::Lost(e)) if e.kind() == io::ErrorKind::BrokenPipe
    )
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
        if !self.out.borrow().is_empty() {
            // Behind a file region: in turn.
            self.out.borrow_mut().push_bytes(bufs);
            self.pause_if_full();
            return;
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
        {
            let mut out = self.out.borrow_mut();
            if !out.is_empty() {
                // After the files: `close_notify`, then the close.
                out.after.notify |= send_close;
                out.after.lose = true;
                return;
            }
        }
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
        self.out.borrow_mut().clear();
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
        {
            let mut out = self.out.borrow_mut();
            if !out.is_empty() {
                out.after.notify = true;
                out.after.half_close = true;
                return;
            }
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

    fn send_file(&self, file: Rc<File>, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let handshaken = {
            let st = self.st.borrow();
            if st.closing || st.write_shut || st.ended {
                return;
            }
            st.handshaken
        };
        let first = {
            let mut out = self.out.borrow_mut();
            let first = out.is_empty();
            out.push_file(file, offset, len);
            first
        };
        if !self.out.borrow().relayed {
            self.register_relay();
        }
        // Straight on when nothing was waiting, as TCP's `send_file` does.
        if first && handshaken {
            self.pump();
        }
        self.pause_if_full();
    }

    fn register_producer(&self, producer: Rc<dyn Producer>, streaming: bool) {
        if self.lower().is_none() {
            producer.stop_producing();
            return;
        }
        {
            let mut out = self.out.borrow_mut();
            out.producer = Some((producer, streaming));
            out.producer_paused = false;
        }
        self.register_relay();
    }

    fn unregister_producer(&self) {
        let files = {
            let mut out = self.out.borrow_mut();
            out.producer = None;
            out.producer_paused = false;
            let files = !out.is_empty();
            out.relayed = files;
            files
        };
        if files {
            // The relay stays, to hear the connection below drain.
            self.register_relay();
        } else if let Some(lower) = self.lower() {
            lower.unregister_producer();
        }
    }

    fn write_buffer_len(&self) -> usize {
        // Ciphertext below and the outbox's plaintext. What rustls holds during a
        // `data_received` (under `CORK_LIMIT`) goes below when it returns: like bytes in
        // flight, it is not counted.
        self.queued_total()
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
