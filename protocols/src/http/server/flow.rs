//! Flow control between a connection and its transport: reading pauses while the
//! pipeline is full or the transport's write queue is past its high-water mark, and a
//! streamed body pauses with it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use ropewalk_reactor::{Clock, Producer, TransportRef};

use super::BodyWriter;

/// transport calls the producer from inside `write`, while `ConnState` is borrowed.
#[derive(Default)]
pub(super) struct Flow {
    /// `max_pipelined` requests wait for their responses.
    pub(super) pipeline_full: Cell<bool>,
    /// The transport's write queue is past its high-water mark (the peer reads slower
    /// than it asks).
    pub(super) write_full: Cell<bool>,
    /// The streamed body being sent: paused and resumed with the connection.
    pub(super) stream: RefCell<Option<BodyWriter>>,
    pub(super) transport: RefCell<Option<TransportRef>>,
    /// Bytes wait in the transport's write queue: the send timeout runs.
    pub(super) sending: Cell<bool>,
    /// When the transport's queue last moved (or started to hold bytes), in the clock's
    /// time: the send timeout counts from here.
    pub(super) progress_at: Cell<Duration>,
}

impl Flow {
    #[inline]
    pub(super) fn reading_paused(&self) -> bool {
        self.pipeline_full.get() || self.write_full.get()
    }

    /// Sets `flag`, and pauses or resumes the transport's reading when that changes
    /// whether it reads.
    #[inline]
    pub(super) fn set(&self, flag: &Cell<bool>, on: bool) {
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

    #[inline]
    pub(super) fn set_pipeline_full(&self, on: bool) {
        self.set(&self.pipeline_full, on);
    }

    #[inline]
    pub(super) fn stream(&self) -> Option<BodyWriter> {
        self.stream.borrow().clone()
    }

    /// After a write to `transport`: whether bytes now wait in its queue that were not
    /// waiting before (the send timeout must start, from `now`). One look at the queue's
    /// length per write, no timer: most writes leave nothing queued.
    #[inline]
    pub(super) fn check_sending(
        &self,
        transport: &TransportRef,
        now: impl FnOnce() -> Duration,
    ) -> bool {
        if self.sending.get() || transport.write_buffer_len() == 0 {
            return false;
        }
        self.sending.set(true);
        self.progress_at.set(now());
        true
    }
}

/// The connection as its transport's producer (Twisted's `HTTPChannel` is one): when
/// the write queue passes its high-water mark, no more requests are read (so a client
/// that pipelines and never reads cannot grow the queue without bound) and a streamed
/// body is paused; both go on below the low-water mark.
///
/// It also keeps the send timeout's clock: each time the socket takes queued bytes, the
/// time is noted (no timer is touched: the connection's watchdog reads it when it fires),
/// and when the queue drains, `drained` lets the connection choose its next timer.
pub(super) struct ConnProducer {
    pub(super) flow: Rc<Flow>,
    pub(super) clock: Rc<dyn Clock>,
    pub(super) drained: Box<dyn Fn()>,
}

impl Producer for ConnProducer {
    fn pause_producing(&self) {
        self.flow.set(&self.flow.write_full, true);
        if let Some(w) = self.flow.stream() {
            w.set_paused(true);
        }
    }

    fn resume_producing(&self) {
        self.flow.set(&self.flow.write_full, false);
        if let Some(w) = self.flow.stream() {
            w.set_paused(false);
        }
    }

    fn stop_producing(&self) {
        let stream = self.flow.stream.borrow_mut().take();
        if let Some(w) = stream {
            w.set_aborted();
        }
    }

    fn write_progress(&self, queued: usize) {
        if !self.flow.sending.get() {
            return;
        }
        if queued > 0 {
            self.flow.progress_at.set(self.clock.loop_time());
        } else {
            self.flow.sending.set(false);
            (self.drained)();
        }
    }
}
