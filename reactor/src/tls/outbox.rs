//! What a TLS connection has still to encrypt: the file regions given to `send_file` and
//! the writes queued behind them ([`Outbox`]), and the producer the session registers on
//! the connection below to hear it drain ([`Relay`]).
//!
//! On TCP the kernel reads a file region as the socket drains (`sendfile(2)`). TLS must
//! encrypt every byte, so the session reads the region itself, [`FILE_CHUNK`] bytes at a
//! time with `pread`, and only while the connection below holds less than a chunk of
//! ciphertext: a region of any size costs about two chunks of memory, never its size. A
//! read from the page cache takes microseconds; one from a cold disk blocks the reactor
//! for one disk read (a chunk is small enough that this stays one seek).
//!
//! The connection below has one producer slot. While the user's protocol has a producer,
//! or a region is queued, the session's [`Relay`] fills it: it hears the connection below
//! drain (`write_progress`, `resume_producing`), reads the next chunk, and passes each
//! event on to the user's producer counted as the user sees the queue (ciphertext below
//! plus plaintext still here), so water marks, pull producers and send timeouts behave as
//! on TCP.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::rc::{Rc, Weak};

use crate::protocol::Producer;

/// Plaintext read from a file and encrypted at once: four TLS records, less a little so
/// that their ciphertext fits the buffer the session keeps between writes.
pub(super) const FILE_CHUNK: usize = 64 * 1024 - 256;

/// Most chunks one pump reads before it lets the loop serve other connections (and goes
/// on in a later turn): 1 MiB or so.
pub(super) const CHUNKS_PER_TURN: usize = 16;

thread_local! {
    /// Plaintext on its way from a file to rustls; kept between chunks.
    static FILE_BUF: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Reads up to `len` bytes (at most [`FILE_CHUNK`]) of `file` from `offset` into a
/// per-thread buffer and hands them to `f`. `Ok(0)`: the file ended there.
pub(super) fn read_chunk(
    file: &File,
    offset: u64,
    len: usize,
    f: impl FnOnce(&[u8]),
) -> io::Result<usize> {
    let mut buf = FILE_BUF.take();
    if buf.len() < FILE_CHUNK {
        buf.resize(FILE_CHUNK, 0);
    }
    let len = len.min(FILE_CHUNK);
    let read = loop {
        match file.read_at(&mut buf[..len], offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r,
        }
    };
    if let Ok(n @ 1..) = read {
        f(&buf[..n]);
    }
    FILE_BUF.set(buf);
    read
}

/// A part of the outbox, in order.
pub(super) enum Pending {
    /// Bytes written behind a file region.
    Bytes(Vec<u8>),
    /// A file region still to read: `len` bytes from `offset`.
    File {
        file: Rc<File>,
        offset: u64,
        len: u64,
    },
}

/// What `lose_connection` or `half_close` left to do once the outbox is empty.
#[derive(Default, Clone, Copy)]
pub(super) struct AfterDrain {
    /// Send `close_notify`.
    pub(super) notify: bool,
    /// Then close the connection below.
    pub(super) lose: bool,
    /// Or shut down its sending side.
    pub(super) half_close: bool,
}

/// A TLS session's queue of plaintext not yet encrypted, and its producers.
#[derive(Default)]
pub(super) struct Outbox {
    pub(super) queue: VecDeque<Pending>,
    /// Bytes in `queue`.
    pub(super) len: u64,
    /// The user's producer (streaming or not), registered through the relay.
    pub(super) producer: Option<(Rc<dyn Producer>, bool)>,
    /// The user's push producer was paused by the session.
    pub(super) producer_paused: bool,
    /// The relay, once made.
    pub(super) relay: Option<Rc<Relay>>,
    /// The relay is the producer of the connection below.
    pub(super) relayed: bool,
    /// What is left to do once the queue is empty.
    pub(super) after: AfterDrain,
    /// A pump is running (it writes below, which may call the relay back).
    pub(super) pumping: bool,
    /// A pump is asked of a later turn (this one's spent its chunks).
    pub(super) pump_queued: bool,
}

/// The next thing a pump sends.
pub(super) enum Piece {
    Bytes(Vec<u8>),
    /// Read up to `len` bytes of `file` from `offset`, of the `left` the region has.
    Read {
        file: Rc<File>,
        offset: u64,
        len: usize,
        left: u64,
    },
}

impl Outbox {
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queues bytes behind a file region.
    pub(super) fn push_bytes(&mut self, bufs: &[&[u8]]) {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return;
        }
        self.len += total as u64;
        if let Some(Pending::Bytes(v)) = self.queue.back_mut() {
            for b in bufs {
                v.extend_from_slice(b);
            }
            return;
        }
        self.queue.push_back(Pending::Bytes(bufs.concat()));
    }

    pub(super) fn push_file(&mut self, file: Rc<File>, offset: u64, len: u64) {
        self.len += len;
        self.queue.push_back(Pending::File { file, offset, len });
    }

    /// What to send next: queued bytes whole, or where to read the next chunk of a file.
    pub(super) fn next_piece(&mut self) -> Option<Piece> {
        match self.queue.front_mut()? {
            Pending::Bytes(_) => {
                let Some(Pending::Bytes(b)) = self.queue.pop_front() else {
                    unreachable!()
                };
                self.len -= b.len() as u64;
                Some(Piece::Bytes(b))
            }
            Pending::File { file, offset, len } => Some(Piece::Read {
                file: file.clone(),
                offset: *offset,
                len: (*len).min(FILE_CHUNK as u64) as usize,
                left: *len,
            }),
        }
    }

    /// `n` bytes of the file region in front were read and sent.
    pub(super) fn advance_file(&mut self, n: usize) {
        if let Some(Pending::File { offset, len, .. }) = self.queue.front_mut() {
            *offset += n as u64;
            *len -= n as u64;
            self.len -= n as u64;
            if *len == 0 {
                self.queue.pop_front();
            }
        }
    }

    /// Forgets everything queued (the connection is closing at once, or gone).
    pub(super) fn clear(&mut self) {
        self.queue = VecDeque::new();
        self.len = 0;
        self.after = AfterDrain::default();
    }

    /// The relay, made once.
    pub(super) fn relay(&mut self, to: Weak<dyn RelayTarget>) -> Rc<Relay> {
        self.relay
            .get_or_insert_with(|| Rc::new(Relay { to }))
            .clone()
    }

    /// How the relay registers below: as the user's producer does, streaming without
    /// one.
    pub(super) fn streaming(&self) -> bool {
        self.producer.as_ref().is_none_or(|(_, s)| *s)
    }
}

/// What the connection below tells the session through its [`Relay`].
pub(super) trait RelayTarget {
    fn below_paused(&self);
    fn below_resumed(&self);
    fn below_stopped(&self);
    fn below_progress(&self, queued: usize);
}

/// The producer a TLS session registers on the connection below.
pub(super) struct Relay {
    to: Weak<dyn RelayTarget>,
}

impl Producer for Relay {
    fn pause_producing(&self) {
        if let Some(s) = self.to.upgrade() {
            s.below_paused();
        }
    }

    fn resume_producing(&self) {
        if let Some(s) = self.to.upgrade() {
            s.below_resumed();
        }
    }

    fn stop_producing(&self) {
        if let Some(s) = self.to.upgrade() {
            s.below_stopped();
        }
    }

    fn write_progress(&self, queued: usize) {
        if let Some(s) = self.to.upgrade() {
            s.below_progress(queued);
        }
    }
}
