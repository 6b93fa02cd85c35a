//! The plumbing every framing receiver shares: the connection its handler writes to, and
//! the bytes it holds between chunks.
//!
//! [`LineReceiver`](crate::line::LineReceiver),
//! [`LineOnlyReceiver`](crate::line_only::LineOnlyReceiver),
//! [`IntNStringReceiver`](crate::framing::IntNStringReceiver) and
//! [`NetstringReceiver`](crate::framing::NetstringReceiver) differ only in how they find
//! the end of a message and in what their handler may ask. The rest is here, once:
//!
//! - [`Outbox`]: the write side of a control object (`write`, `send_line`,
//!   `lose_connection`), a copy of `Option<&TransportRef>` that does nothing before
//!   `connection_made`. Every control (`LineControl`, `LineOnlyControl`, `StringControl`)
//!   writes and closes through one.
//! - [`ReceiverCore`]: what a receiver without pausing owns (its handler, connection,
//!   held bytes and length limit), and the `connection_made` / `connection_lost` steps.
//! - [`take_held`] and [`keep_rest`]: a chunk is parsed in place when nothing is held
//!   from before, else appended to the held bytes; what is left unparsed is kept for the
//!   next chunk, in the held buffer's allocation. [`parse_buffered`] runs a parser between
//!   the two.
//!
//! Everything is generic or `#[inline]` over plain references: no allocation, boxing or
//! dynamic call is added per line or string.

use ropewalk_reactor::TransportRef;

/// Where a control's writes go: the connection, or nowhere before `connection_made`.
#[derive(Clone, Copy)]
pub(crate) struct Outbox<'a> {
    transport: Option<&'a TransportRef>,
}

impl<'a> Outbox<'a> {
    #[inline]
    pub(crate) fn new(transport: Option<&'a TransportRef>) -> Self {
        Outbox { transport }
    }

    #[inline]
    pub(crate) fn transport(self) -> Option<&'a TransportRef> {
        self.transport
    }

    #[inline]
    pub(crate) fn write(self, data: &[u8]) {
        if let Some(t) = self.transport {
            t.write(data);
        }
    }

    #[inline]
    pub(crate) fn write_vectored(self, parts: &[&[u8]]) {
        if let Some(t) = self.transport {
            t.write_vectored(parts);
        }
    }

    /// Writes `line` and `delimiter` in one vectored write.
    #[inline]
    pub(crate) fn send_line(self, line: &[u8], delimiter: &[u8]) {
        self.write_vectored(&[line, delimiter]);
    }

    #[inline]
    pub(crate) fn lose_connection(self) {
        if let Some(t) = self.transport {
            t.lose_connection();
        }
    }

    /// Whether the connection is closing (or closed): nothing more is to be delivered.
    #[inline]
    pub(crate) fn is_closing(self) -> bool {
        self.transport.is_some_and(|t| t.is_closing())
    }
}

/// What a receiver without pausing owns: its handler, its connection, the bytes held
/// between chunks and the longest message it accepts.
pub(crate) struct ReceiverCore<H> {
    pub(crate) handler: H,
    transport: Option<TransportRef>,
    /// An unfinished message kept from the last chunk.
    pub(crate) held: Vec<u8>,
    pub(crate) max_length: usize,
}

impl<H> ReceiverCore<H> {
    pub(crate) fn new(handler: H, max_length: usize) -> Self {
        ReceiverCore {
            handler,
            transport: None,
            held: Vec::new(),
            max_length,
        }
    }

    #[inline]
    pub(crate) fn outbox(&self) -> Outbox<'_> {
        Outbox::new(self.transport.as_ref())
    }

    /// Keeps `transport`, for the handler's `connection_made`.
    pub(crate) fn connect(&mut self, transport: TransportRef) -> (&mut H, Outbox<'_>) {
        self.transport = Some(transport);
        self.parts()
    }

    /// The handler beside the outbox, to call it with a control.
    #[inline]
    pub(crate) fn parts(&mut self) -> (&mut H, Outbox<'_>) {
        (&mut self.handler, Outbox::new(self.transport.as_ref()))
    }

    /// The pieces a parsing loop borrows at once.
    #[inline]
    pub(crate) fn parse_parts(&mut self) -> (&mut H, Outbox<'_>, &mut Vec<u8>, usize) {
        (
            &mut self.handler,
            Outbox::new(self.transport.as_ref()),
            &mut self.held,
            self.max_length,
        )
    }

    /// Frees the held bytes, for the handler's `connection_lost`.
    pub(crate) fn disconnect(&mut self) -> &mut H {
        self.held = Vec::new();
        &mut self.handler
    }
}

/// Takes the held bytes and appends `data` to them, if there are any. The flag says
/// which to parse: the returned buffer (`true`), or `data` in place (`false`, and the
/// buffer is the held one's empty allocation).
#[inline]
pub(crate) fn take_held(held: &mut Vec<u8>, data: &[u8]) -> (Vec<u8>, bool) {
    let mut buf = std::mem::take(held);
    let in_buf = !buf.is_empty();
    if in_buf {
        buf.extend_from_slice(data);
    }
    (buf, in_buf)
}

/// Ends a chunk: keeps what follows `pos` in the parsed bytes (`buf` if `in_buf`, else
/// `data`), or nothing unless `keep`, reusing `buf`'s allocation; returns the new held
/// buffer.
#[inline]
pub(crate) fn keep_rest(
    mut buf: Vec<u8>,
    in_buf: bool,
    data: &[u8],
    pos: usize,
    keep: bool,
) -> Vec<u8> {
    if !keep {
        buf.clear();
    } else if in_buf {
        buf.drain(..pos);
    } else {
        buf.clear();
        buf.extend_from_slice(&data[pos.min(data.len())..]);
    }
    buf
}

/// Parses `held ++ data` with `parse`, which returns how many bytes it consumed and
/// whether to keep the rest, between [`take_held`] and [`keep_rest`]. When nothing is
/// held, `data` is parsed in place.
#[inline]
pub(crate) fn parse_buffered<R>(
    held: &mut Vec<u8>,
    data: &[u8],
    parse: impl FnOnce(&[u8]) -> (usize, bool, R),
) -> R {
    let (buf, in_buf) = take_held(held, data);
    let src: &[u8] = if in_buf { &buf } else { data };
    let (pos, keep, r) = parse(src);
    *held = keep_rest(buf, in_buf, data, pos, keep);
    r
}

#[cfg(test)]
mod tests {
    use super::parse_buffered;

    #[test]
    fn a_chunk_is_parsed_in_place_and_its_tail_kept() {
        let mut held = Vec::new();
        let seen = parse_buffered(&mut held, b"abcde", |src| (3, true, src.to_vec()));
        assert_eq!(seen, b"abcde");
        assert_eq!(held, b"de");
        let seen = parse_buffered(&mut held, b"fg", |src| (1, true, src.to_vec()));
        assert_eq!(seen, b"defg");
        assert_eq!(held, b"efg");
        parse_buffered(&mut held, b"h", |_| (0, false, ()));
        assert!(held.is_empty());
    }
}
