//! [`LineOnlyReceiver`]: lines and nothing else, for speed (Twisted's
//! `twisted.protocols.basic.LineOnlyReceiver`).
//!
//! No raw mode, no pausing, no shared state: the receiver owns its handler and buffer, and
//! a chunk with no partial line held before it is split in place, without a copy. What it
//! owns and how it keeps an unfinished line are the string receivers' too (the private
//! `receiver` module); only the line splitting and its limit are here.

use std::fmt;

use ropewalk_deferred::Failure;
use ropewalk_reactor::{Protocol, TransportRef};

use crate::line::{find, DEFAULT_DELIMITER, DEFAULT_MAX_LENGTH};
use crate::receiver::{parse_buffered, Outbox, ReceiverCore};

/// The code that handles lines for a [`LineOnlyReceiver`].
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::testing::StringTransport;
/// use ropewalk_reactor::Protocol;
///
/// struct Reverse;
/// impl LineOnlyHandler for Reverse {
///     fn line_received(&mut self, line: &[u8], ctl: &mut LineOnlyControl<'_>) -> Result<(), Failure> {
///         let mut l = line.to_vec();
///         l.reverse();
///         ctl.send_line(&l);
///         Ok(())
///     }
/// }
///
/// let mut p = LineOnlyReceiver::new(Reverse);
/// let t = StringTransport::connect(&mut p);
/// p.data_received(b"abc\r\n").unwrap();
/// assert_eq!(t.value(), b"cba\r\n");
/// ```
pub trait LineOnlyHandler: 'static {
    /// The connection is up.
    ///
    /// # Examples
    ///
    /// See [`LineHandler::connection_made`](crate::line::LineHandler::connection_made), which works the same.
    fn connection_made(&mut self, ctl: &mut LineOnlyControl<'_>) {
        let _ = ctl;
    }

    /// A line arrived, without its delimiter.
    ///
    /// # Errors
    ///
    /// Whatever the handler finds wrong: the rest of the chunk is dropped and the
    /// connection closed with that failure.
    ///
    /// # Examples
    ///
    /// See [`LineOnlyHandler`].
    fn line_received(&mut self, line: &[u8], ctl: &mut LineOnlyControl<'_>) -> Result<(), Failure>;

    /// A line is longer than `max_length`. `line` is that line alone (or the unfinished
    /// line, once it cannot fit any more); what followed it in the chunk is dropped. The
    /// default closes the connection.
    ///
    /// # Errors
    ///
    /// An `Err` closes the connection with that failure.
    ///
    /// # Examples
    ///
    /// See [`LineOnlyReceiver::with_max_length`] (the default closing).
    fn line_length_exceeded(
        &mut self,
        line: &[u8],
        ctl: &mut LineOnlyControl<'_>,
    ) -> Result<(), Failure> {
        let _ = line;
        ctl.lose_connection();
        Ok(())
    }

    /// The peer shut down its sending side; see [`Protocol::eof_received`].
    ///
    /// # Examples
    ///
    /// See [`Protocol::eof_received`].
    fn eof_received(&mut self, ctl: &mut LineOnlyControl<'_>) -> bool {
        let _ = ctl;
        false
    }

    /// The connection is gone.
    ///
    /// # Examples
    ///
    /// See [`Protocol::connection_lost`].
    fn connection_lost(&mut self, reason: Failure) {
        let _ = reason;
    }
}

/// What a [`LineOnlyHandler`] callback can do: write and close.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::testing::StringTransport;
/// use ropewalk_reactor::Protocol;
///
/// struct Bye;
/// impl LineOnlyHandler for Bye {
///     fn line_received(&mut self, _: &[u8], ctl: &mut LineOnlyControl<'_>) -> Result<(), Failure> {
///         ctl.write(b"bye");
///         ctl.lose_connection();
///         Ok(())
///     }
/// }
/// let mut p = LineOnlyReceiver::new(Bye);
/// let t = StringTransport::connect(&mut p);
/// p.data_received(b"x\r\n").unwrap();
/// assert!(t.is_disconnecting());
/// assert_eq!(t.value(), b"bye");
/// ```
pub struct LineOnlyControl<'a> {
    out: Outbox<'a>,
    delimiter: &'a [u8],
}

impl LineOnlyControl<'_> {
    /// The connection, once `connection_made` has run.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// struct Peer;
    /// impl LineOnlyHandler for Peer {
    ///     fn line_received(&mut self, _: &[u8], ctl: &mut LineOnlyControl<'_>) -> Result<(), Failure> {
    ///         assert!(ctl.transport().is_some());
    ///         Ok(())
    ///     }
    /// }
    /// let mut p = LineOnlyReceiver::new(Peer);
    /// StringTransport::connect(&mut p);
    /// p.data_received(b"x\r\n").unwrap();
    /// ```
    pub fn transport(&self) -> Option<&TransportRef> {
        self.out.transport()
    }

    /// Writes `line` and the delimiter, in one vectored write.
    ///
    /// # Examples
    ///
    /// See [`LineOnlyHandler`].
    ///
    /// ```
    /// # use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// struct Hi;
    /// impl LineOnlyHandler for Hi {
    ///     fn connection_made(&mut self, ctl: &mut LineOnlyControl<'_>) { ctl.send_line(b"hi"); }
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// }
    /// let mut p = LineOnlyReceiver::new(Hi);
    /// assert_eq!(StringTransport::connect(&mut p).value(), b"hi\r\n");
    /// ```
    pub fn send_line(&self, line: &[u8]) {
        self.out.send_line(line, self.delimiter);
    }

    /// Writes `data` as it is.
    ///
    /// # Examples
    ///
    /// See [`LineOnlyControl`].
    ///
    /// ```
    /// # use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// struct Prompt;
    /// impl LineOnlyHandler for Prompt {
    ///     fn connection_made(&mut self, ctl: &mut LineOnlyControl<'_>) { ctl.write(b"> "); }
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// }
    /// let mut p = LineOnlyReceiver::new(Prompt);
    /// assert_eq!(StringTransport::connect(&mut p).value(), b"> ");
    /// ```
    pub fn write(&self, data: &[u8]) {
        self.out.write(data);
    }

    /// Closes the connection once what is queued is sent; the lines after this one in the
    /// same chunk are dropped.
    ///
    /// # Examples
    ///
    /// See [`LineOnlyControl`].
    ///
    /// ```
    /// # use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// struct Close;
    /// impl LineOnlyHandler for Close {
    ///     fn connection_made(&mut self, ctl: &mut LineOnlyControl<'_>) { ctl.lose_connection(); }
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// }
    /// let mut p = LineOnlyReceiver::new(Close);
    /// assert!(StringTransport::connect(&mut p).is_disconnecting());
    /// ```
    pub fn lose_connection(&self) {
        self.out.lose_connection();
    }

    /// The delimiter.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, Protocol};
    /// struct D;
    /// impl LineOnlyHandler for D {
    ///     fn line_received(&mut self, _: &[u8], ctl: &mut LineOnlyControl<'_>) -> Result<(), Failure> {
    ///         assert_eq!(ctl.delimiter(), b"\n");
    ///         Ok(())
    ///     }
    /// }
    /// LineOnlyReceiver::new(D).with_delimiter(b"\n").data_received(b"x\n").unwrap();
    /// ```
    pub fn delimiter(&self) -> &[u8] {
        self.delimiter
    }
}

impl fmt::Debug for LineOnlyControl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineOnlyControl")
            .field("connected", &self.out.transport().is_some())
            .finish()
    }
}

/// A [`Protocol`] that splits what it receives into lines for a [`LineOnlyHandler`]
/// (Twisted's `LineOnlyReceiver`): no raw mode and no pausing, in exchange for less work
/// per line than [`LineReceiver`](crate::line::LineReceiver).
///
/// Limits: a complete line longer than `max_length` goes to
/// [`LineOnlyHandler::line_length_exceeded`] alone. An unfinished line is exceeded as soon
/// as it cannot become a line of at most `max_length` bytes: more than `max_length` bytes
/// held, unless the bytes past `max_length` could be the start of the delimiter. So a line
/// of exactly `max_length` bytes whose delimiter is split across chunks is delivered —
/// the case Twisted's `LineOnlyReceiver` gets wrong.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::testing::StringTransport;
/// use ropewalk_reactor::Protocol;
///
/// #[derive(Default)]
/// struct Collect(Vec<Vec<u8>>);
/// impl LineOnlyHandler for Collect {
///     fn line_received(&mut self, l: &[u8], _: &mut LineOnlyControl<'_>) -> Result<(), Failure> {
///         self.0.push(l.to_vec());
///         Ok(())
///     }
/// }
///
/// let mut p = LineOnlyReceiver::new(Collect::default()).with_max_length(8);
/// let t = StringTransport::connect(&mut p);
/// p.data_received(b"12345678\r").unwrap();
/// p.data_received(b"\n").unwrap();
/// assert_eq!(p.handler().0, [b"12345678".to_vec()]);
/// assert!(!t.is_disconnecting());
/// ```
pub struct LineOnlyReceiver<H> {
    core: ReceiverCore<H>,
    /// How many bytes at the start of the held ones were searched and hold no delimiter
    /// start (none when nothing is held).
    scanned: usize,
    delimiter: Vec<u8>,
}

/// Whether an unfinished line can no longer become a line of at most `max` bytes.
#[inline]
fn unfinished_too_long(tail: &[u8], max: usize, delimiter: &[u8]) -> bool {
    if tail.len() <= max {
        return false;
    }
    // The line could still end at `k <= max` only if the bytes from `k` start the
    // delimiter (the delimiter is not in `tail`, so `k` is within its last bytes).
    let lo = tail.len().saturating_sub(delimiter.len() - 1);
    !(lo..=max).any(|k| delimiter.starts_with(&tail[k..]))
}

impl<H: LineOnlyHandler> LineOnlyReceiver<H> {
    /// A receiver for `handler`, with delimiter `b"\r\n"` and `max_length` 16384.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # struct P;
    /// # impl LineOnlyHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let p = LineOnlyReceiver::new(P);
    /// assert_eq!(p.delimiter(), b"\r\n");
    /// assert_eq!(p.max_length(), 16384);
    /// ```
    pub fn new(handler: H) -> Self {
        LineOnlyReceiver {
            core: ReceiverCore::new(handler, DEFAULT_MAX_LENGTH),
            scanned: 0,
            delimiter: DEFAULT_DELIMITER.to_vec(),
        }
    }

    /// Splits on `delimiter` instead of `b"\r\n"`.
    ///
    /// # Panics
    ///
    /// If `delimiter` is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # struct P;
    /// # impl LineOnlyHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// assert_eq!(LineOnlyReceiver::new(P).with_delimiter(b"\n").delimiter(), b"\n");
    /// ```
    pub fn with_delimiter(mut self, delimiter: &[u8]) -> Self {
        assert!(!delimiter.is_empty(), "a line delimiter cannot be empty");
        self.delimiter = delimiter.to_vec();
        self.scanned = 0;
        self
    }

    /// Sets the longest line accepted, in bytes without the delimiter (default 16384).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// # struct P;
    /// # impl LineOnlyHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let mut p = LineOnlyReceiver::new(P).with_max_length(8);
    /// let t = StringTransport::connect(&mut p);
    /// p.data_received(b"123456789").unwrap(); // can no longer end within 8 bytes
    /// assert!(t.is_disconnecting());
    /// ```
    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.core.max_length = max_length;
        self
    }

    /// The delimiter.
    ///
    /// # Examples
    ///
    /// See [`new`](Self::new).
    ///
    /// ```
    /// # use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # struct P;
    /// # impl LineOnlyHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// assert_eq!(LineOnlyReceiver::new(P).delimiter(), b"\r\n");
    /// ```
    pub fn delimiter(&self) -> &[u8] {
        &self.delimiter
    }

    /// The longest line accepted.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # struct P;
    /// # impl LineOnlyHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// assert_eq!(LineOnlyReceiver::new(P).with_max_length(5).max_length(), 5);
    /// ```
    pub fn max_length(&self) -> usize {
        self.core.max_length
    }

    /// The handler.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, Protocol};
    /// #[derive(Default)]
    /// struct Count(usize);
    /// impl LineOnlyHandler for Count {
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) -> Result<(), Failure> {
    ///         self.0 += 1;
    ///         Ok(())
    ///     }
    /// }
    /// let mut p = LineOnlyReceiver::new(Count::default());
    /// p.data_received(b"a\r\nb\r\nc").unwrap();
    /// assert_eq!(p.handler().0, 2);
    /// ```
    pub fn handler(&self) -> &H {
        &self.core.handler
    }

    /// The handler, to change it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # #[derive(Default)] struct Count(usize);
    /// # impl LineOnlyHandler for Count {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let mut p = LineOnlyReceiver::new(Count::default());
    /// p.handler_mut().0 = 3;
    /// assert_eq!(p.handler().0, 3);
    /// ```
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.core.handler
    }

    /// Writes `line` and the delimiter.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport};
    /// # struct P;
    /// # impl LineOnlyHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let mut p = LineOnlyReceiver::new(P);
    /// let t = StringTransport::connect(&mut p);
    /// p.send_line(b"NICK rope");
    /// assert_eq!(t.value(), b"NICK rope\r\n");
    /// ```
    pub fn send_line(&self, line: &[u8]) {
        self.core.outbox().send_line(line, &self.delimiter);
    }
}

impl<H: LineOnlyHandler> Protocol for LineOnlyReceiver<H> {
    fn connection_made(&mut self, transport: TransportRef) {
        let (handler, out) = self.core.connect(transport);
        handler.connection_made(&mut LineOnlyControl {
            out,
            delimiter: &self.delimiter,
        });
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        let (handler, out, held, max_length) = self.core.parse_parts();
        let delimiter: &[u8] = &self.delimiter;
        let mut ctl = LineOnlyControl { out, delimiter };
        let dlen = delimiter.len();
        // What an earlier chunk searched of the held bytes (0 when none are held).
        let mut from = std::mem::take(&mut self.scanned);

        // Split `data` in place unless part of a line is held from before.
        let outcome = parse_buffered(held, data, |src| {
            let mut pos = 0;
            while let Some(i) = find(&src[from..], delimiter) {
                let end = from + i;
                if out.is_closing() {
                    // Lines after a disconnect in the same chunk are dropped.
                    return (pos, false, Ok(()));
                }
                let line = &src[pos..end];
                if line.len() > max_length {
                    return (pos, false, handler.line_length_exceeded(line, &mut ctl));
                }
                if let Err(f) = handler.line_received(line, &mut ctl) {
                    return (pos, false, Err(f));
                }
                pos = end + dlen;
                from = pos;
            }
            let tail = &src[pos..];
            if unfinished_too_long(tail, max_length, delimiter) && !out.is_closing() {
                return (pos, false, handler.line_length_exceeded(tail, &mut ctl));
            }
            (pos, true, Ok(()))
        });
        self.scanned = held.len().saturating_sub(dlen - 1);
        outcome
    }

    fn eof_received(&mut self) -> bool {
        let (handler, out) = self.core.parts();
        handler.eof_received(&mut LineOnlyControl {
            out,
            delimiter: &self.delimiter,
        })
    }

    fn connection_lost(&mut self, reason: Failure) {
        self.scanned = 0;
        self.core.disconnect().connection_lost(reason);
    }
}

impl<H> fmt::Debug for LineOnlyReceiver<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineOnlyReceiver")
            .field("buffered", &self.core.held.len())
            .field("max_length", &self.core.max_length)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::unfinished_too_long;

    #[test]
    fn unfinished_limits() {
        assert!(!unfinished_too_long(b"12345678", 8, b"\r\n"));
        assert!(!unfinished_too_long(b"12345678\r", 8, b"\r\n"));
        assert!(unfinished_too_long(b"123456789", 8, b"\r\n"));
        assert!(unfinished_too_long(b"12345678\r\r", 8, b"\r\n"));
        // A longer delimiter whose start repeats inside itself.
        assert!(!unfinished_too_long(b"1234567aba", 8, b"abab"));
        assert!(!unfinished_too_long(b"12345678aba", 8, b"abab"));
        assert!(unfinished_too_long(b"123456789aba", 8, b"abab"));
        assert!(unfinished_too_long(b"123456789", 8, b"\n"));
    }
}
