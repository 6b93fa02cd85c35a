//! Relaying one connection's bytes to another transport
//! ([`Transport::splice_to`](crate::Transport::splice_to)).
//!
//! Implementation: the source connection owns a [`Link`], a pipe between the two sockets.
//! When the source is readable it moves bytes from its socket into the pipe with
//! `splice(2)`, and queues them on the destination as a region of its write queue (as
//! `send_file` queues a file region); the destination moves them from the pipe to its
//! socket with `splice(2)` in turn, behind what it had queued before, as its socket
//! takes them. The bytes never pass through user space, and the pipe is the only buffer:
//! while it is full the source reads nothing, and the destination wakes it when it has
//! taken some.
//!
//! Where a pipe cannot be made (platforms without `splice(2)`, the portable poller, a
//! destination that is not a plain socket such as a TLS session, or
//! [`force_splice_copy`](crate::testing::force_splice_copy)), the source reads into the
//! reactor's buffer and writes to the destination; the destination's high-water mark
//! pauses the source's reading, as for any producer.

use std::cell::Cell;
use std::fmt;
use std::rc::{Rc, Weak};

use crate::sys::Pipe;

/// Pipe size asked for: the kernel's default, which is also the default high-water mark
/// of a write queue, so the pipe alone never pauses the source through the producer.
pub(crate) const PIPE_SIZE: usize = 64 * 1024;

/// A pipe between a source connection and the destination it relays to.
pub(crate) struct Link {
    pub(crate) pipe: Pipe,
    /// Bytes in the pipe: read from the source, not yet taken by the destination's socket.
    in_pipe: Cell<usize>,
    /// The source stopped for want of room in the pipe: wake it when bytes leave.
    waiting: Cell<bool>,
    source: Weak<dyn SpliceSource>,
}

impl Link {
    pub(crate) fn new(pipe: Pipe, source: Weak<dyn SpliceSource>) -> Link {
        Link {
            pipe,
            in_pipe: Cell::new(0),
            waiting: Cell::new(false),
            source,
        }
    }

    /// Bytes the pipe can still take, as far as bytes go (a pipe also runs out of slots,
    /// one per page or packet fragment, which only a refused splice tells).
    pub(crate) fn room(&self) -> usize {
        self.pipe.capacity().saturating_sub(self.in_pipe.get())
    }

    pub(crate) fn in_pipe(&self) -> usize {
        self.in_pipe.get()
    }

    /// The source moved `n` bytes in.
    pub(crate) fn filled(&self, n: usize) {
        self.in_pipe.set(self.in_pipe.get() + n);
    }

    /// The source stops until bytes leave the pipe.
    pub(crate) fn wait_for_room(&self) {
        self.waiting.set(true);
    }

    /// The destination moved `n` bytes out: wake a waiting source.
    pub(crate) fn drained(&self, n: usize) {
        self.in_pipe.set(self.in_pipe.get().saturating_sub(n));
        if n > 0 && self.waiting.replace(false) {
            if let Some(source) = self.source.upgrade() {
                source.pipe_room();
            }
        }
    }
}

/// A connection that fills a [`Link`]'s pipe.
pub(crate) trait SpliceSource {
    /// Bytes left the pipe: look at the socket again (on the next turn).
    fn pipe_room(&self);
}

/// A connection that sends what a [`Link`]'s pipe holds.
pub(crate) trait PipeSink {
    /// Queues the next `n` bytes of `link`'s pipe behind what is queued, and sends what
    /// the socket takes now.
    fn queue_spliced(&self, link: &Rc<Link>, n: usize);
}

/// What [`Transport::splice_to`](crate::Transport::splice_to) needs of a destination to
/// move bytes into its socket with `splice(2)`: only the reactor's own stream
/// connections have one. A transport that wraps a connection without changing its bytes
/// passes on its inner transport's.
#[doc(hidden)]
#[derive(Clone)]
pub struct SpliceSink(pub(crate) Rc<dyn PipeSink>);

impl fmt::Debug for SpliceSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SpliceSink")
    }
}

thread_local! {
    static COPY_FORCED: Cell<bool> = const { Cell::new(false) };
}

/// Whether splices set up on this thread copy instead of using `splice(2)`.
pub(crate) fn copy_forced() -> bool {
    COPY_FORCED.with(Cell::get)
}

/// See [`crate::testing::force_splice_copy`].
pub(crate) fn force_copy(on: bool) {
    COPY_FORCED.with(|c| c.set(on));
}
