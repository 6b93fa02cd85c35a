//! Flow control between a connection and its transport: reading pauses while the
//! pipeline is full or the transport's write queue is past its high-water mark, and a
//! streamed body pauses with it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use ropewalk_reactor::{Producer, TransportRef};

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
}

/// The connection as its transport's producer (Twisted's `HTTPChannel` is one): when
/// the write queue passes its high-water mark, no more requests are read (so a client
/// that pipelines and never reads cannot grow the queue without bound) and a streamed
/// body is paused; both go on below the low-water mark.
pub(super) struct ConnProducer(pub(super) Rc<Flow>);

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
