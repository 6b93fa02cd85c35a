//! [`LineReceiver`]: splits a byte stream into lines, with a raw mode, a line length limit
//! and pausing (Twisted's `twisted.protocols.basic.LineReceiver`).
//!
//! # Implementation
//!
//! The user's code is a [`LineHandler`]; [`LineReceiver`] wraps it and is the
//! [`Protocol`]. Each callback gets a [`LineControl`], through which the handler switches
//! modes, pauses, clears the buffer and writes. The control only *records* what was asked;
//! the receiver's one parsing loop reads it back after the callback returns and goes on
//! from there. So a mode switch inside `line_received` applies to the rest of the same
//! chunk, and `set_line_mode(extra)` re-feeds `extra` in the same loop: no callback ever
//! calls back into the parser, and switching modes a million times in one chunk uses no
//! stack.
//!
//! The common case copies nothing: when no partial line is held from an earlier chunk,
//! lines are handed out as slices of the chunk the transport read, and only the unfinished
//! tail is kept (the held-bytes steps and the control's writes are the ones every
//! receiver shares, in the private `receiver` module).
//!
//! Pausing keeps complete lines buffered. Resuming usually happens outside `data_received`
//! (a timer, a consumer that drained), so the receiver's body sits behind an `Rc` that a
//! [`PauseHandle`] (also a [`Producer`]) can reach: the flow state (paused, stopped, the
//! transport) in cells any holder may touch, and the parser (handler, buffer, mode,
//! limits) in a `RefCell` borrowed while it runs. `resume()` delivers what was held at
//! once if the receiver is idle, or, if called from inside one of its own callbacks, just
//! lets the running loop go on.

use std::cell::{Cell, OnceCell, Ref, RefCell, RefMut};
use std::fmt;
use std::rc::{Rc, Weak};

use ropewalk_deferred::Failure;
use ropewalk_reactor::{Producer, Protocol, TransportRef};

use crate::receiver::{keep_rest, take_held, Outbox};

/// The default line delimiter, `b"\r\n"`.
///
/// # Examples
///
/// ```
/// assert_eq!(ropewalk_protocols::line::DEFAULT_DELIMITER, b"\r\n");
/// ```
pub const DEFAULT_DELIMITER: &[u8] = b"\r\n";

/// The default longest line, in bytes without the delimiter: 16384 (Twisted's
/// `MAX_LENGTH`).
///
/// # Examples
///
/// ```
/// assert_eq!(ropewalk_protocols::line::DEFAULT_MAX_LENGTH, 16384);
/// ```
pub const DEFAULT_MAX_LENGTH: usize = 16384;

/// Errors of the line receivers.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::line::LineError;
/// assert_eq!(
///     LineError::RawModeNotImplemented.to_string(),
///     "raw data received but the handler does not implement raw_data_received"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// The handler switched to raw mode without implementing
    /// [`LineHandler::raw_data_received`].
    #[error("raw data received but the handler does not implement raw_data_received")]
    RawModeNotImplemented,
}

/// The code that handles lines (and raw data) for a [`LineReceiver`].
///
/// Only [`line_received`](Self::line_received) is required. A callback that returns `Err`
/// stops processing: the rest of the chunk is dropped and the connection is closed with
/// that failure (it is the reason given to `connection_lost`).
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::testing::StringTransport;
/// use ropewalk_reactor::Protocol;
///
/// /// Answers each line with its length.
/// struct Lengths;
///
/// impl LineHandler for Lengths {
///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
///         ctl.send_line(line.len().to_string().as_bytes());
///         Ok(())
///     }
/// }
///
/// let mut p = LineReceiver::new(Lengths);
/// let t = StringTransport::connect(&mut p);
/// p.data_received(b"hello\r\nhi\r\npartial").unwrap();
/// assert_eq!(t.value(), b"5\r\n2\r\n");
/// ```
pub trait LineHandler: 'static {
    /// The connection is up. `ctl` can already write, pause or switch modes.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::testing::StringTransport;
    ///
    /// struct Prompt;
    /// impl LineHandler for Prompt {
    ///     fn connection_made(&mut self, ctl: &mut LineControl<'_>) {
    ///         ctl.send_line(b"welcome; type QUIT to leave");
    ///     }
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let t = StringTransport::connect(&mut LineReceiver::new(Prompt));
    /// assert_eq!(t.value(), b"welcome; type QUIT to leave\r\n");
    /// ```
    fn connection_made(&mut self, ctl: &mut LineControl<'_>) {
        let _ = ctl;
    }

    /// A line arrived, without its delimiter (an empty line is `b""`).
    ///
    /// # Errors
    ///
    /// Whatever the handler finds wrong; the connection is closed with it.
    ///
    /// # Examples
    ///
    /// See [`LineHandler`].
    fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure>;

    /// Bytes arrived in raw mode: everything buffered, as one slice.
    ///
    /// # Errors
    ///
    /// The default returns [`LineError::RawModeNotImplemented`], which closes the
    /// connection: a handler that calls [`LineControl::set_raw_mode`] must implement this.
    ///
    /// # Examples
    ///
    /// See [`LineControl`] (a header line, then a raw blob).
    fn raw_data_received(&mut self, data: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
        let _ = (data, ctl);
        Err(Failure::new(LineError::RawModeNotImplemented))
    }

    /// A line is longer than the receiver's `max_length`. `data` is everything that was
    /// buffered from the start of that line on (possibly several lines, or only the start
    /// of the long one); the buffer is now empty, and
    /// [`set_line_mode(extra)`](LineControl::set_line_mode) can hand part of it back.
    ///
    /// The default closes the connection (`lose_connection`).
    ///
    /// # Errors
    ///
    /// An `Err` closes the connection with that failure.
    ///
    /// # Examples
    ///
    /// Refuse the long line but keep the connection:
    ///
    /// ```
    /// use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::Protocol;
    ///
    /// struct Lenient;
    /// impl LineHandler for Lenient {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         ctl.send_line(line);
    ///         Ok(())
    ///     }
    ///     fn line_length_exceeded(&mut self, _: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         ctl.send_line(b"! line too long");
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let mut p = LineReceiver::new(Lenient).with_max_length(4);
    /// let t = StringTransport::connect(&mut p);
    /// p.data_received(b"much too long\r\n").unwrap();
    /// p.data_received(b"ok\r\n").unwrap();
    /// assert_eq!(t.value(), b"! line too long\r\nok\r\n");
    /// assert!(!t.is_disconnecting());
    /// ```
    fn line_length_exceeded(
        &mut self,
        data: &[u8],
        ctl: &mut LineControl<'_>,
    ) -> Result<(), Failure> {
        let _ = data;
        ctl.lose_connection();
        Ok(())
    }

    /// The peer shut down its sending side; see [`Protocol::eof_received`]. An unfinished
    /// line still buffered is not delivered. The default returns `false` (close).
    ///
    /// # Examples
    ///
    /// See [`Protocol::eof_received`].
    fn eof_received(&mut self, ctl: &mut LineControl<'_>) -> bool {
        let _ = ctl;
        false
    }

    /// The connection is gone (see [`Protocol::connection_lost`]).
    ///
    /// # Examples
    ///
    /// See [`Protocol::connection_lost`].
    fn connection_lost(&mut self, reason: Failure) {
        let _ = reason;
    }
}

/// What a [`LineHandler`] callback can do to its receiver and connection.
///
/// Requests take effect when the callback returns, for the rest of the same chunk:
/// after `set_raw_mode()` in `line_received`, the bytes after that line go to
/// `raw_data_received`; after `pause()`, nothing more is delivered until resumed.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::testing::StringTransport;
/// use ropewalk_reactor::Protocol;
///
/// /// `DATA n` announces n raw bytes.
/// #[derive(Default)]
/// struct Blobs { want: usize, blobs: Vec<Vec<u8>> }
///
/// impl LineHandler for Blobs {
///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
///         if let Some(n) = line.strip_prefix(b"DATA ") {
///             self.want = std::str::from_utf8(n).map_err(Failure::new)?.parse().map_err(Failure::new)?;
///             self.blobs.push(Vec::new());
///             ctl.set_raw_mode();
///         }
///         Ok(())
///     }
///     fn raw_data_received(&mut self, data: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
///         let n = data.len().min(self.want);
///         self.blobs.last_mut().unwrap().extend_from_slice(&data[..n]);
///         self.want -= n;
///         if self.want == 0 {
///             ctl.set_line_mode(&data[n..]);
///         }
///         Ok(())
///     }
/// }
///
/// let mut p = LineReceiver::new(Blobs::default());
/// StringTransport::connect(&mut p);
/// p.data_received(b"DATA 3\r\nabcDATA 1\r\nz").unwrap();
/// assert_eq!(p.handler().blobs, [b"abc".to_vec(), b"z".to_vec()]);
/// ```
pub struct LineControl<'a> {
    flow: &'a Flow,
    raw: &'a mut bool,
    delimiter: &'a [u8],
    /// The bytes handed to a raw or exceeded callback, which end where the buffer ends.
    input: &'a [u8],
    /// The unhandled bytes after the current line.
    rest: &'a [u8],
    cleared: bool,
    extra: Extra,
}

/// Bytes given back by `set_line_mode(extra)`.
enum Extra {
    None,
    /// The last `n` bytes of the callback's input: re-parsed in place, with no copy.
    Tail(usize),
    Owned(Vec<u8>),
}

impl<'a> LineControl<'a> {
    fn new(
        flow: &'a Flow,
        raw: &'a mut bool,
        delimiter: &'a [u8],
        input: &'a [u8],
        rest: &'a [u8],
    ) -> Self {
        LineControl {
            flow,
            raw,
            delimiter,
            input,
            rest,
            cleared: false,
            extra: Extra::None,
        }
    }

    /// The extra bytes as an owned buffer.
    fn take_extra(&mut self) -> Vec<u8> {
        match std::mem::replace(&mut self.extra, Extra::None) {
            Extra::None => Vec::new(),
            Extra::Tail(n) => self.input[self.input.len() - n..].to_vec(),
            Extra::Owned(v) => v,
        }
    }

    /// The connection, once `connection_made` has run.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// struct Peer;
    /// impl LineHandler for Peer {
    ///     fn line_received(&mut self, _: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         let peer = ctl.transport().unwrap().peer_addr();
    ///         ctl.send_line(peer.to_string().as_bytes());
    ///         Ok(())
    ///     }
    /// }
    /// let mut p = LineReceiver::new(Peer);
    /// let t = StringTransport::connect(&mut p);
    /// p.data_received(b"who\r\n").unwrap();
    /// assert_eq!(t.value(), b"test\r\n");
    /// ```
    pub fn transport(&self) -> Option<&TransportRef> {
        self.out().transport()
    }

    #[inline]
    fn out(&self) -> Outbox<'a> {
        Outbox::new(self.flow.transport.get())
    }

    /// Writes `line` and the delimiter, in one write.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// struct Hello;
    /// impl LineHandler for Hello {
    ///     fn connection_made(&mut self, ctl: &mut LineControl<'_>) { ctl.send_line(b"hello"); }
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// }
    /// let mut p = LineReceiver::new(Hello);
    /// let t = StringTransport::connect(&mut p);
    /// assert_eq!(t.value(), b"hello\r\n");
    /// ```
    pub fn send_line(&self, line: &[u8]) {
        self.out().send_line(line, self.delimiter);
    }

    /// A handle that sends lines on this connection later, after the callback returned:
    /// from a Deferred's callback, a timer or a task (Twisted's `self.sendLine` works at
    /// any time; a `LineControl` lives for one callback only).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// use ropewalk_reactor::{defer_later, deferred::Failure, testing::StringTransport};
    /// use ropewalk_reactor::{ManualClock, Protocol};
    ///
    /// /// Answers every line a second later.
    /// struct Slow(ManualClock);
    /// impl LineHandler for Slow {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         let (line, out) = (line.to_vec(), ctl.sender());
    ///         defer_later(&self.0, Duration::from_secs(1), move || Ok(line))
    ///             .add_callback(move |line| out.send_line(line));
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let clock = ManualClock::new();
    /// let mut p = LineReceiver::new(Slow(clock.clone()));
    /// let t = StringTransport::connect(&mut p);
    /// p.data_received(b"hi\r\n").unwrap();
    /// assert_eq!(t.value(), b"");
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(t.value(), b"hi\r\n");
    /// ```
    pub fn sender(&self) -> LineSender {
        LineSender {
            transport: self.transport().cloned(),
            delimiter: self.delimiter.into(),
        }
    }

    /// Writes `data` as it is.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// struct Prompt;
    /// impl LineHandler for Prompt {
    ///     fn connection_made(&mut self, ctl: &mut LineControl<'_>) { ctl.write(b"> "); }
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// }
    /// let mut p = LineReceiver::new(Prompt);
    /// assert_eq!(StringTransport::connect(&mut p).value(), b"> ");
    /// ```
    pub fn write(&self, data: &[u8]) {
        self.out().write(data);
    }

    /// Closes the connection once what is queued is sent. The lines after this one in
    /// the same chunk are dropped, and so is everything received later.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// #[derive(Default)]
    /// struct Quit(Vec<Vec<u8>>);
    /// impl LineHandler for Quit {
    ///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         self.0.push(line.to_vec());
    ///         if line == b"QUIT" { ctl.lose_connection(); }
    ///         Ok(())
    ///     }
    /// }
    /// let mut p = LineReceiver::new(Quit::default());
    /// let t = StringTransport::connect(&mut p);
    /// p.data_received(b"a\r\nQUIT\r\nb\r\n").unwrap();
    /// assert!(t.is_disconnecting());
    /// assert_eq!(p.handler().0, [b"a".to_vec(), b"QUIT".to_vec()]);
    /// ```
    pub fn lose_connection(&self) {
        self.out().lose_connection();
    }

    /// Sends what follows to [`LineHandler::raw_data_received`], starting with the rest
    /// of the current chunk.
    ///
    /// # Examples
    ///
    /// See [`LineControl`].
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// #[derive(Default)]
    /// struct Tail(Vec<u8>);
    /// impl LineHandler for Tail {
    ///     fn line_received(&mut self, _: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         ctl.set_raw_mode();
    ///         assert!(ctl.is_raw_mode());
    ///         Ok(())
    ///     }
    ///     fn raw_data_received(&mut self, d: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         self.0.extend_from_slice(d);
    ///         Ok(())
    ///     }
    /// }
    /// let mut p = LineReceiver::new(Tail::default());
    /// StringTransport::connect(&mut p);
    /// p.data_received(b"head\r\nbody\r\nmore").unwrap();
    /// assert_eq!(p.handler().0, b"body\r\nmore");
    /// ```
    pub fn set_raw_mode(&mut self) {
        *self.raw = true;
    }

    /// Goes back to line mode. `extra` (bytes a raw handler did not consume) is parsed
    /// for lines first, before anything still buffered, in the same loop.
    ///
    /// # Examples
    ///
    /// See [`LineControl`].
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// #[derive(Default)]
    /// struct OneRawByte(Vec<Vec<u8>>);
    /// impl LineHandler for OneRawByte {
    ///     fn line_received(&mut self, l: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         self.0.push(l.to_vec());
    ///         ctl.set_raw_mode();
    ///         Ok(())
    ///     }
    ///     fn raw_data_received(&mut self, d: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         ctl.set_line_mode(&d[1..]); // skip one byte
    ///         Ok(())
    ///     }
    /// }
    /// let mut p = LineReceiver::new(OneRawByte::default());
    /// StringTransport::connect(&mut p);
    /// p.data_received(b"a\r\n-b\r\n-c\r\n").unwrap();
    /// assert_eq!(p.handler().0, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    /// ```
    pub fn set_line_mode(&mut self, extra: &[u8]) {
        *self.raw = false;
        if extra.is_empty() {
            return;
        }
        // The usual call hands back a tail of the raw data: then nothing is copied.
        let (start, end) = (
            self.input.as_ptr() as usize,
            self.input.as_ptr() as usize + self.input.len(),
        );
        let at = extra.as_ptr() as usize;
        if matches!(self.extra, Extra::None) && at >= start && at + extra.len() == end {
            self.extra = Extra::Tail(extra.len());
            return;
        }
        let mut owned = self.take_extra();
        owned.extend_from_slice(extra);
        self.extra = Extra::Owned(owned);
    }

    /// Whether the receiver is in raw mode.
    ///
    /// # Examples
    ///
    /// See [`set_raw_mode`](Self::set_raw_mode).
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// struct Check;
    /// impl LineHandler for Check {
    ///     fn line_received(&mut self, _: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         assert!(!ctl.is_raw_mode());
    ///         Ok(())
    ///     }
    /// }
    /// let mut p = LineReceiver::new(Check);
    /// p.data_received(b"x\r\n").unwrap();
    /// ```
    pub fn is_raw_mode(&self) -> bool {
        *self.raw
    }

    /// Empties the buffer and returns what was in it: the bytes after the current line
    /// that were not yet handled (and any `extra` given to `set_line_mode` in this
    /// callback).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// #[derive(Default)]
    /// struct Grab(Vec<u8>);
    /// impl LineHandler for Grab {
    ///     fn line_received(&mut self, _: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         self.0 = ctl.clear_line_buffer();
    ///         Ok(())
    ///     }
    /// }
    /// let mut p = LineReceiver::new(Grab::default());
    /// p.data_received(b"foo\r\nbar\r\nbaz").unwrap();
    /// assert_eq!(p.handler().0, b"bar\r\nbaz");
    /// ```
    pub fn clear_line_buffer(&mut self) -> Vec<u8> {
        let mut out = self.take_extra();
        if !self.cleared {
            out.extend_from_slice(self.rest);
            self.cleared = true;
        }
        out
    }

    /// The delimiter this receiver splits on.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, Protocol};
    /// struct D;
    /// impl LineHandler for D {
    ///     fn line_received(&mut self, _: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         assert_eq!(ctl.delimiter(), b"\n");
    ///         Ok(())
    ///     }
    /// }
    /// LineReceiver::new(D).with_delimiter(b"\n").data_received(b"x\n").unwrap();
    /// ```
    pub fn delimiter(&self) -> &[u8] {
        self.delimiter
    }

    /// Stops delivering lines (they stay buffered) and stops reading from the transport,
    /// until [`resume`](Self::resume) or [`PauseHandle::resume`].
    ///
    /// # Examples
    ///
    /// See [`PauseHandle`].
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// #[derive(Default)]
    /// struct OneAtATime(Vec<Vec<u8>>);
    /// impl LineHandler for OneAtATime {
    ///     fn line_received(&mut self, l: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         self.0.push(l.to_vec());
    ///         ctl.pause();
    ///         Ok(())
    ///     }
    /// }
    /// let mut p = LineReceiver::new(OneAtATime::default());
    /// let t = StringTransport::connect(&mut p);
    /// p.data_received(b"1\r\n2\r\n").unwrap();
    /// assert_eq!(p.handler().0.len(), 1);
    /// assert!(t.is_reading_paused());
    /// p.resume().unwrap();
    /// assert_eq!(p.handler().0.len(), 2);
    /// ```
    pub fn pause(&self) {
        self.flow.pause();
    }

    /// Undoes [`pause`](Self::pause): the loop that called this callback goes on
    /// delivering.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, Protocol};
    /// #[derive(Default)]
    /// struct Undecided(usize);
    /// impl LineHandler for Undecided {
    ///     fn line_received(&mut self, _: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         self.0 += 1;
    ///         ctl.pause();
    ///         ctl.resume();
    ///         assert!(!ctl.is_paused());
    ///         Ok(())
    ///     }
    /// }
    /// let mut p = LineReceiver::new(Undecided::default());
    /// p.data_received(b"1\r\n2\r\n").unwrap();
    /// assert_eq!(p.handler().0, 2);
    /// ```
    pub fn resume(&self) {
        self.flow.resume();
    }

    /// Stops for good (Twisted's `stopProducing`): nothing more is delivered, and the
    /// connection is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// #[derive(Default)]
    /// struct Stop(usize);
    /// impl LineHandler for Stop {
    ///     fn line_received(&mut self, _: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         self.0 += 1;
    ///         ctl.stop();
    ///         Ok(())
    ///     }
    /// }
    /// let mut p = LineReceiver::new(Stop::default());
    /// let t = StringTransport::connect(&mut p);
    /// p.data_received(b"1\r\n2\r\n").unwrap();
    /// p.resume().unwrap();
    /// assert_eq!(p.handler().0, 1);
    /// assert!(t.is_disconnecting());
    /// ```
    pub fn stop(&self) {
        self.flow.stop();
    }

    /// Whether delivery is paused.
    ///
    /// # Examples
    ///
    /// See [`resume`](Self::resume).
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, Protocol};
    /// struct P;
    /// impl LineHandler for P {
    ///     fn line_received(&mut self, _: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         assert!(!ctl.is_paused());
    ///         Ok(())
    ///     }
    /// }
    /// LineReceiver::new(P).data_received(b"x\r\n").unwrap();
    /// ```
    pub fn is_paused(&self) -> bool {
        self.flow.paused.get()
    }

    /// A handle that pauses and resumes this receiver from outside its callbacks (a
    /// timer, a consumer); keep it in the handler.
    ///
    /// # Examples
    ///
    /// See [`PauseHandle`].
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver, PauseHandle};
    /// # use ropewalk_reactor::{deferred::Failure, Protocol};
    /// #[derive(Default)]
    /// struct Keep(Option<PauseHandle>);
    /// impl LineHandler for Keep {
    ///     fn connection_made(&mut self, ctl: &mut LineControl<'_>) {
    ///         self.0 = Some(ctl.pause_handle());
    ///     }
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// }
    /// let mut p = LineReceiver::new(Keep::default());
    /// ropewalk_reactor::testing::StringTransport::connect(&mut p);
    /// assert!(p.handler().0.is_some());
    /// ```
    pub fn pause_handle(&self) -> PauseHandle {
        PauseHandle {
            target: self.flow.me.clone(),
        }
    }

    fn finish(self) -> (bool, Extra) {
        (self.cleared, self.extra)
    }
}

impl fmt::Debug for LineControl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineControl")
            .field("raw", &*self.raw)
            .field("paused", &self.flow.paused.get())
            .field("rest", &self.rest.len())
            .finish()
    }
}

/// Pauses, resumes and stops a [`LineReceiver`] from anywhere on its thread (Twisted's
/// `pauseProducing` / `resumeProducing` / `stopProducing`). It is also a [`Producer`], so
/// a receiver can be registered as the producer of another transport and be paused when
/// that one's buffer fills.
///
/// `resume` delivers the lines held while paused, at once, when called from outside the
/// receiver's callbacks; from inside one, it lets the running loop go on. A handler
/// failure during such a delivery aborts the connection, and `connection_lost` gets that
/// failure as its reason. After the receiver is dropped a handle does nothing.
///
/// # Examples
///
/// Pause on a line and resume from a timer, as Twisted's `test_pausing` does:
///
/// ```
/// use std::time::Duration;
/// use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::testing::StringTransport;
/// use ropewalk_reactor::{Clock, ManualClock, Protocol};
///
/// struct Slow { clock: ManualClock, lines: Vec<Vec<u8>> }
///
/// impl LineHandler for Slow {
///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
///         self.lines.push(line.to_vec());
///         if line == b"pause" {
///             ctl.pause();
///             let handle = ctl.pause_handle();
///             self.clock.call_later(Duration::ZERO, move || handle.resume());
///         }
///         Ok(())
///     }
/// }
///
/// let clock = ManualClock::new();
/// let mut p = LineReceiver::new(Slow { clock: clock.clone(), lines: vec![] });
/// StringTransport::connect(&mut p);
/// p.data_received(b"a\r\npause\r\nb\r\n").unwrap();
/// assert_eq!(p.handler().lines.len(), 2);
/// clock.advance(Duration::ZERO);
/// assert_eq!(p.handler().lines.len(), 3);
/// ```
#[derive(Clone)]
pub struct PauseHandle {
    target: Weak<dyn FlowTarget>,
}

impl PauseHandle {
    /// Pauses delivery and reading, as [`LineControl::pause`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// # #[derive(Default)] struct Count(usize);
    /// # impl LineHandler for Count {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { self.0 += 1; Ok(()) }
    /// # }
    /// let mut p = LineReceiver::new(Count::default());
    /// let t = StringTransport::connect(&mut p);
    /// let h = p.pause_handle();
    /// h.pause();
    /// p.data_received(b"1\r\n2\r\n").unwrap();
    /// assert_eq!(p.handler().0, 0);
    /// h.resume();
    /// assert_eq!(p.handler().0, 2);
    /// ```
    pub fn pause(&self) {
        if let Some(t) = self.target.upgrade() {
            t.flow().pause();
        }
    }

    /// Resumes, delivering what was held (see the type's docs).
    ///
    /// # Examples
    ///
    /// See [`pause`](Self::pause).
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, Protocol};
    /// # struct P;
    /// # impl LineHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let p = LineReceiver::new(P);
    /// let h = p.pause_handle();
    /// h.pause();
    /// h.resume();
    /// assert!(!h.is_paused());
    /// ```
    pub fn resume(&self) {
        if let Some(t) = self.target.upgrade() {
            if t.flow().resume() {
                t.deliver();
            }
        }
    }

    /// Stops for good, as [`LineControl::stop`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// # struct P;
    /// # impl LineHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let mut p = LineReceiver::new(P);
    /// let t = StringTransport::connect(&mut p);
    /// p.pause_handle().stop();
    /// assert!(t.is_disconnecting());
    /// ```
    pub fn stop(&self) {
        if let Some(t) = self.target.upgrade() {
            t.flow().stop();
        }
    }

    /// Whether the receiver is paused (or stopped); `false` once it is dropped.
    ///
    /// # Examples
    ///
    /// See [`resume`](Self::resume).
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, Protocol};
    /// # struct P;
    /// # impl LineHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let p = LineReceiver::new(P);
    /// let h = p.pause_handle();
    /// h.pause();
    /// assert!(h.is_paused());
    /// drop(p);
    /// assert!(!h.is_paused());
    /// ```
    pub fn is_paused(&self) -> bool {
        self.target.upgrade().is_some_and(|t| t.flow().paused.get())
    }
}

impl Producer for PauseHandle {
    fn pause_producing(&self) {
        self.pause();
    }

    fn resume_producing(&self) {
        self.resume();
    }

    fn stop_producing(&self) {
        self.stop();
    }
}

impl fmt::Debug for PauseHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PauseHandle")
            .field("paused", &self.is_paused())
            .finish()
    }
}

/// Flow-control state that handles and callbacks reach while the parser is busy.
struct Flow {
    paused: Cell<bool>,
    stopped: Cell<bool>,
    transport: OnceCell<TransportRef>,
    me: Weak<dyn FlowTarget>,
}

impl Flow {
    /// Whether nothing more is to be delivered: stopped, or the connection closing.
    fn closing(&self) -> bool {
        self.stopped.get() || self.transport.get().is_some_and(|t| t.is_closing())
    }

    fn pause(&self) {
        if !self.paused.replace(true) {
            if let Some(t) = self.transport.get() {
                t.pause_reading();
            }
        }
    }

    /// Clears the pause; whether there may be held data to deliver.
    fn resume(&self) -> bool {
        if self.stopped.get() {
            return false;
        }
        if self.paused.replace(false) {
            if let Some(t) = self.transport.get() {
                t.resume_reading();
            }
        }
        true
    }

    fn stop(&self) {
        self.paused.set(true);
        if !self.stopped.replace(true) {
            if let Some(t) = self.transport.get() {
                t.lose_connection();
            }
        }
    }
}

/// What a [`PauseHandle`] needs of a receiver, whatever its handler type.
trait FlowTarget {
    fn flow(&self) -> &Flow;
    /// Delivers held data, unless the receiver is busy (then its own loop will).
    fn deliver(&self);
}

/// The receiver's body, shared with its [`PauseHandle`]s: the flow state they may touch
/// at any time, and the parser, borrowed while it runs.
struct Core<H> {
    flow: Flow,
    parser: RefCell<Parser<H>>,
}

impl<H: LineHandler> FlowTarget for Core<H> {
    fn flow(&self) -> &Flow {
        &self.flow
    }

    fn deliver(&self) {
        // Busy: we are inside one of its callbacks, and its loop sees the flag.
        let Ok(mut parser) = self.parser.try_borrow_mut() else {
            return;
        };
        if let Err(failure) = parser.feed(&self.flow, b"") {
            log::warn!("line handler failed on resume, aborting its connection: {failure}");
            parser.failure = Some(failure);
            if let Some(t) = self.flow.transport.get() {
                t.abort_connection();
            }
        }
    }
}

/// The parsing state and the handler it delivers to; its `feed` is the one parsing loop.
struct Parser<H> {
    handler: H,
    /// Unhandled bytes kept between chunks.
    buf: Vec<u8>,
    /// How many bytes at the start of `buf` were searched and hold no delimiter start.
    scanned: usize,
    raw: bool,
    delimiter: Vec<u8>,
    max_length: usize,
    /// A failure from a delivery outside `data_received`, for `connection_lost`.
    failure: Option<Failure>,
}

/// Where `needle` first occurs in `hay`.
#[inline]
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, tail) = needle.split_first()?;
    let mut from = 0;
    while let Some(i) = find_byte(&hay[from..], first) {
        let at = from + i;
        let end = at + needle.len();
        if end > hay.len() {
            return None;
        }
        let matches = match tail {
            [] => true,
            [b] => hay[at + 1] == *b,
            _ => &hay[at + 1..end] == tail,
        };
        if matches {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Where `byte` first occurs in `hay`, eight bytes at a time.
///
/// A word-at-a-time search in safe Rust: `x ^ pattern` has a zero byte where `byte` is,
/// and `(v - 0x01..) & !v & 0x80..` flags zero bytes (a borrow can flag a byte above a
/// zero byte, never below one, so the lowest flag is exact). About 2 instructions a
/// byte where `iter().position` takes 5; as fast as the `memchr` crate on lines of
/// tens of bytes, where its per-call setup is as large as its scan.
#[inline]
fn find_byte(hay: &[u8], byte: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(byte);
    let mut words = hay.chunks_exact(8);
    let mut base = 0;
    for word in &mut words {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(word);
        let x = u64::from_le_bytes(bytes) ^ pattern;
        let zeros = x.wrapping_sub(LO) & !x & HI;
        if zeros != 0 {
            return Some(base + (zeros.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == byte)
        .map(|i| base + i)
}

impl<H: LineHandler> Parser<H> {
    /// The parsing loop: appends `data` to what is held and delivers until the data runs
    /// out, the receiver pauses, or the connection closes. Callbacks only record requests
    /// in their [`LineControl`]; they are applied here, so nothing recurses.
    fn feed(&mut self, flow: &Flow, data: &[u8]) -> Result<(), Failure> {
        if flow.closing() {
            self.buf.clear();
            return Ok(());
        }
        let Parser {
            handler,
            buf,
            scanned,
            raw,
            delimiter,
            max_length,
            ..
        } = self;
        let delimiter: &[u8] = delimiter;
        let max_length = *max_length;
        let dlen = delimiter.len();

        // The bytes to parse: `data` in place when nothing is held (no copy), else the
        // held bytes with `data` appended.
        let (mut owned, mut in_owned) = take_held(buf, data);
        let mut skip = std::mem::take(scanned);
        let mut pos = 0;
        let mut waiting_scanned = 0;
        let mut drop_rest = false;
        let mut outcome = Ok(());

        loop {
            let src: &[u8] = if in_owned { &owned } else { data };
            if pos >= src.len() || flow.paused.get() {
                break;
            }
            // What was searched before applies only to the first search of this call.
            let skip_now = std::mem::take(&mut skip);
            let mut next = src.len();
            let (result, (cleared, extra)) = if *raw {
                let input = &src[pos..];
                let mut ctl = LineControl::new(flow, raw, delimiter, input, &[]);
                let r = handler.raw_data_received(input, &mut ctl);
                (r, ctl.finish())
            } else {
                let from = pos + skip_now;
                match find(&src[from..], delimiter) {
                    Some(i) if from + i - pos <= max_length => {
                        let end = from + i;
                        next = end + dlen;
                        let rest = &src[next..];
                        let mut ctl = LineControl::new(flow, raw, delimiter, &[], rest);
                        let r = handler.line_received(&src[pos..end], &mut ctl);
                        (r, ctl.finish())
                    }
                    found => {
                        if found.is_none() && src.len() - pos < max_length + dlen {
                            // An unfinished line that may still fit: wait for more.
                            waiting_scanned = (src.len() - pos).saturating_sub(dlen - 1);
                            break;
                        }
                        // Too long: everything from this line on goes to the handler.
                        let input = &src[pos..];
                        let mut ctl = LineControl::new(flow, raw, delimiter, input, &[]);
                        let r = handler.line_length_exceeded(input, &mut ctl);
                        (r, ctl.finish())
                    }
                }
            };
            if let Err(f) = result {
                outcome = Err(f);
                drop_rest = true;
                break;
            }
            if flow.closing() {
                // Lines after a disconnect in the same chunk are dropped.
                drop_rest = true;
                break;
            }
            pos = if cleared { src.len() } else { next };
            match extra {
                Extra::None => {}
                // A tail of input that ran to the end of `src`: parse it again in place.
                Extra::Tail(n) => pos = src.len() - n,
                Extra::Owned(mut extra) => {
                    extra.extend_from_slice(&src[pos..]);
                    owned = extra;
                    in_owned = true;
                    pos = 0;
                }
            }
        }

        // Keep what is left, reusing the held buffer's allocation.
        *buf = keep_rest(owned, in_owned, data, pos, !drop_rest);
        *scanned = waiting_scanned.min(buf.len());
        outcome
    }

    fn control<R>(
        &mut self,
        flow: &Flow,
        f: impl FnOnce(&mut H, &mut LineControl<'_>) -> R,
    ) -> (R, Option<Vec<u8>>) {
        let mut ctl = LineControl::new(flow, &mut self.raw, &self.delimiter, &[], &[]);
        let r = f(&mut self.handler, &mut ctl);
        let extra = ctl.take_extra();
        (r, (!extra.is_empty()).then_some(extra))
    }
}

/// A [`Protocol`] that splits what it receives into lines for a [`LineHandler`], with a
/// raw mode for bytes that are not lines (Twisted's `LineReceiver`).
///
/// - Lines end with the delimiter (default `b"\r\n"`, exactly: a bare `\n` is part of the
///   line); the handler gets them without it.
/// - A line longer than `max_length` (default 16384) goes to
///   [`LineHandler::line_length_exceeded`] (the default closes the connection). An
///   unfinished line is too long once `max_length + delimiter.len()` bytes are buffered
///   without a delimiter; a line of exactly `max_length` bytes whose delimiter is split
///   across chunks is delivered.
/// - After the handler closes the connection, the lines that follow in the same chunk,
///   and anything received later, are dropped.
/// - Pausing holds complete lines until resumed (see [`PauseHandle`]).
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::testing::StringTransport;
/// use ropewalk_reactor::{Address, Protocol};
///
/// struct Upper;
/// impl LineHandler for Upper {
///     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
///         ctl.send_line(&line.to_ascii_uppercase());
///         Ok(())
///     }
/// }
///
/// // A factory for a server: `reactor.listen_tcp(addr, factory)`.
/// let factory = |_: &Address| Some(LineReceiver::new(Upper).with_delimiter(b"\n"));
///
/// let mut p = factory(&Address::Test).unwrap();
/// let t = StringTransport::connect(&mut p);
/// p.data_received(b"one\ntw").unwrap();
/// p.data_received(b"o\n").unwrap();
/// assert_eq!(t.value(), b"ONE\nTWO\n");
/// ```
pub struct LineReceiver<H> {
    core: Rc<Core<H>>,
}

impl<H: LineHandler> LineReceiver<H> {
    /// A receiver for `handler`, with delimiter `b"\r\n"` and `max_length` 16384.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # struct P;
    /// # impl LineHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let p = LineReceiver::new(P);
    /// assert_eq!(p.delimiter(), b"\r\n");
    /// assert_eq!(p.max_length(), 16384);
    /// ```
    pub fn new(handler: H) -> Self {
        let core = Rc::new_cyclic(|me: &Weak<Core<H>>| {
            let me: Weak<dyn FlowTarget> = me.clone();
            Core {
                flow: Flow {
                    paused: Cell::new(false),
                    stopped: Cell::new(false),
                    transport: OnceCell::new(),
                    me,
                },
                parser: RefCell::new(Parser {
                    handler,
                    buf: Vec::new(),
                    scanned: 0,
                    raw: false,
                    delimiter: DEFAULT_DELIMITER.to_vec(),
                    max_length: DEFAULT_MAX_LENGTH,
                    failure: None,
                }),
            }
        });
        LineReceiver { core }
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
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # struct P;
    /// # impl LineHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let p = LineReceiver::new(P).with_delimiter(b"\0");
    /// assert_eq!(p.delimiter(), b"\0");
    /// ```
    pub fn with_delimiter(self, delimiter: &[u8]) -> Self {
        assert!(!delimiter.is_empty(), "a line delimiter cannot be empty");
        {
            let mut parser = self.core.parser.borrow_mut();
            parser.delimiter = delimiter.to_vec();
            parser.scanned = 0;
        }
        self
    }

    /// Sets the longest line accepted, in bytes without the delimiter (default 16384).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// # struct P;
    /// # impl LineHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let mut p = LineReceiver::new(P).with_max_length(4);
    /// let t = StringTransport::connect(&mut p);
    /// p.data_received(b"12345\r\n").unwrap();
    /// assert!(t.is_disconnecting());
    /// ```
    pub fn with_max_length(self, max_length: usize) -> Self {
        self.core.parser.borrow_mut().max_length = max_length;
        self
    }

    /// The delimiter.
    ///
    /// # Examples
    ///
    /// See [`new`](Self::new).
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # struct P;
    /// # impl LineHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// assert_eq!(LineReceiver::new(P).delimiter(), b"\r\n");
    /// ```
    pub fn delimiter(&self) -> Vec<u8> {
        self.core.parser.borrow().delimiter.clone()
    }

    /// The longest line accepted.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # struct P;
    /// # impl LineHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// assert_eq!(LineReceiver::new(P).with_max_length(80).max_length(), 80);
    /// ```
    pub fn max_length(&self) -> usize {
        self.core.parser.borrow().max_length
    }

    /// The handler, to read its state.
    ///
    /// # Panics
    ///
    /// If the handler is borrowed mutably (from [`handler_mut`](Self::handler_mut)).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, Protocol};
    /// #[derive(Default)]
    /// struct Count(usize);
    /// impl LineHandler for Count {
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         self.0 += 1;
    ///         Ok(())
    ///     }
    /// }
    /// let mut p = LineReceiver::new(Count::default());
    /// p.data_received(b"a\r\nb\r\n").unwrap();
    /// assert_eq!(p.handler().0, 2);
    /// ```
    pub fn handler(&self) -> Ref<'_, H> {
        Ref::map(self.core.parser.borrow(), |i| &i.handler)
    }

    /// The handler, to change it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # #[derive(Default)] struct Count(usize);
    /// # impl LineHandler for Count {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let mut p = LineReceiver::new(Count::default());
    /// p.handler_mut().0 = 7;
    /// assert_eq!(p.handler().0, 7);
    /// ```
    pub fn handler_mut(&mut self) -> RefMut<'_, H> {
        RefMut::map(self.core.parser.borrow_mut(), |i| &mut i.handler)
    }

    /// The connection, once `connection_made` has run.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport};
    /// # struct P;
    /// # impl LineHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let mut p = LineReceiver::new(P);
    /// assert!(p.transport().is_none());
    /// StringTransport::connect(&mut p);
    /// assert!(p.transport().is_some());
    /// ```
    pub fn transport(&self) -> Option<&TransportRef> {
        self.core.flow.transport.get()
    }

    /// Writes `line` and the delimiter.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport};
    /// # struct P;
    /// # impl LineHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let mut p = LineReceiver::new(P);
    /// let t = StringTransport::connect(&mut p);
    /// p.send_line(b"HELO example.org");
    /// assert_eq!(t.value(), b"HELO example.org\r\n");
    /// ```
    pub fn send_line(&self, line: &[u8]) {
        if let Some(t) = self.transport() {
            let parser = self.core.parser.borrow();
            t.write_vectored(&[line, &parser.delimiter]);
        }
    }

    /// A handle to pause and resume this receiver from outside its callbacks.
    ///
    /// # Examples
    ///
    /// See [`PauseHandle`].
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # struct P;
    /// # impl LineHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let p = LineReceiver::new(P);
    /// p.pause_handle().pause();
    /// assert!(p.is_paused());
    /// ```
    pub fn pause_handle(&self) -> PauseHandle {
        PauseHandle {
            target: self.core.flow.me.clone(),
        }
    }

    /// Pauses delivery and reading (Twisted's `pauseProducing`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// # #[derive(Default)] struct Count(usize);
    /// # impl LineHandler for Count {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { self.0 += 1; Ok(()) }
    /// # }
    /// let mut p = LineReceiver::new(Count::default());
    /// let t = StringTransport::connect(&mut p);
    /// p.pause();
    /// assert!(t.is_reading_paused());
    /// p.data_received(b"held\r\n").unwrap();
    /// assert_eq!(p.handler().0, 0);
    /// ```
    pub fn pause(&self) {
        self.core.flow.pause();
    }

    /// Resumes, and delivers the lines held while paused (Twisted's `resumeProducing`).
    ///
    /// # Errors
    ///
    /// The failure a handler callback returned while delivering; the caller should close
    /// the connection, as the reactor does when `data_received` fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// # #[derive(Default)] struct Count(usize);
    /// # impl LineHandler for Count {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { self.0 += 1; Ok(()) }
    /// # }
    /// let mut p = LineReceiver::new(Count::default());
    /// let t = StringTransport::connect(&mut p);
    /// p.pause();
    /// p.data_received(b"held\r\n").unwrap();
    /// p.resume().unwrap();
    /// assert_eq!(p.handler().0, 1);
    /// assert!(!t.is_reading_paused());
    /// ```
    pub fn resume(&mut self) -> Result<(), Failure> {
        if !self.core.flow.resume() {
            return Ok(());
        }
        self.core.parser.borrow_mut().feed(&self.core.flow, b"")
    }

    /// Stops for good (Twisted's `stopProducing`): drops what is held, delivers nothing
    /// more, and closes the connection.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// # #[derive(Default)] struct Count(usize);
    /// # impl LineHandler for Count {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { self.0 += 1; Ok(()) }
    /// # }
    /// let mut p = LineReceiver::new(Count::default());
    /// let t = StringTransport::connect(&mut p);
    /// p.stop();
    /// p.data_received(b"late\r\n").unwrap();
    /// assert_eq!(p.handler().0, 0);
    /// assert!(t.is_disconnecting());
    /// ```
    pub fn stop(&self) {
        self.core.flow.stop();
    }

    /// Whether delivery is paused (or stopped).
    ///
    /// # Examples
    ///
    /// See [`pause_handle`](Self::pause_handle).
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # struct P;
    /// # impl LineHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// assert!(!LineReceiver::new(P).is_paused());
    /// ```
    pub fn is_paused(&self) -> bool {
        self.core.flow.paused.get()
    }

    /// Whether the receiver is in raw mode.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # struct P;
    /// # impl LineHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let mut p = LineReceiver::new(P);
    /// p.set_raw_mode();
    /// assert!(p.is_raw_mode());
    /// ```
    pub fn is_raw_mode(&self) -> bool {
        self.core.parser.borrow().raw
    }

    /// Switches to raw mode from outside a callback.
    ///
    /// # Examples
    ///
    /// See [`is_raw_mode`](Self::is_raw_mode).
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, Protocol};
    /// #[derive(Default)]
    /// struct Raw(Vec<u8>);
    /// impl LineHandler for Raw {
    ///     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    ///     fn raw_data_received(&mut self, d: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> {
    ///         self.0.extend_from_slice(d);
    ///         Ok(())
    ///     }
    /// }
    /// let mut p = LineReceiver::new(Raw::default());
    /// p.set_raw_mode();
    /// p.data_received(b"a\r\nb").unwrap();
    /// assert_eq!(p.handler().0, b"a\r\nb");
    /// ```
    pub fn set_raw_mode(&mut self) {
        self.core.parser.borrow_mut().raw = true;
    }

    /// Switches to line mode from outside a callback, and parses `extra` for lines at
    /// once (before anything still buffered).
    ///
    /// # Errors
    ///
    /// The failure a handler callback returned while parsing.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # #[derive(Default)] struct Count(usize);
    /// # impl LineHandler for Count {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { self.0 += 1; Ok(()) }
    /// # }
    /// let mut p = LineReceiver::new(Count::default());
    /// p.set_raw_mode();
    /// p.set_line_mode(b"x\r\ny\r\n").unwrap();
    /// assert_eq!(p.handler().0, 2);
    /// ```
    pub fn set_line_mode(&mut self, extra: &[u8]) -> Result<(), Failure> {
        let mut parser = self.core.parser.borrow_mut();
        parser.raw = false;
        if extra.is_empty() {
            return Ok(());
        }
        let held = std::mem::take(&mut parser.buf);
        parser.scanned = 0;
        let mut data = extra.to_vec();
        data.extend_from_slice(&held);
        parser.feed(&self.core.flow, &data)
    }

    /// Empties the buffer and returns what was in it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, Protocol};
    /// # struct P;
    /// # impl LineHandler for P {
    /// #     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let mut p = LineReceiver::new(P);
    /// p.data_received(b"unfinished").unwrap();
    /// assert_eq!(p.clear_line_buffer(), b"unfinished");
    /// assert!(p.clear_line_buffer().is_empty());
    /// ```
    pub fn clear_line_buffer(&mut self) -> Vec<u8> {
        let mut parser = self.core.parser.borrow_mut();
        parser.scanned = 0;
        std::mem::take(&mut parser.buf)
    }
}

impl<H: LineHandler> Protocol for LineReceiver<H> {
    fn connection_made(&mut self, transport: TransportRef) {
        let flow = &self.core.flow;
        if flow.transport.set(transport).is_err() {
            log::warn!("LineReceiver connected twice: keeping the first transport");
        }
        if flow.paused.get() {
            // Paused before the connection existed.
            if let Some(t) = flow.transport.get() {
                t.pause_reading();
            }
        }
        let mut parser = self.core.parser.borrow_mut();
        let ((), extra) = parser.control(flow, |h, ctl| h.connection_made(ctl));
        if let Some(extra) = extra {
            if let Err(f) = parser.feed(flow, &extra) {
                log::warn!("line handler failed in connection_made, aborting: {f}");
                parser.failure = Some(f);
                if let Some(t) = flow.transport.get() {
                    t.abort_connection();
                }
            }
        }
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        self.core.parser.borrow_mut().feed(&self.core.flow, data)
    }

    fn eof_received(&mut self) -> bool {
        let flow = &self.core.flow;
        let mut parser = self.core.parser.borrow_mut();
        parser.control(flow, |h, ctl| h.eof_received(ctl)).0
    }

    fn connection_lost(&mut self, reason: Failure) {
        let flow = &self.core.flow;
        flow.stopped.set(true);
        let mut parser = self.core.parser.borrow_mut();
        parser.buf = Vec::new();
        let reason = parser.failure.take().unwrap_or(reason);
        parser.handler.connection_lost(reason);
    }
}

impl<H> fmt::Debug for LineReceiver<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("LineReceiver");
        d.field("paused", &self.core.flow.paused.get())
            .field("stopped", &self.core.flow.stopped.get());
        if let Ok(parser) = self.core.parser.try_borrow() {
            d.field("raw", &parser.raw)
                .field("buffered", &parser.buf.len())
                .field("max_length", &parser.max_length);
        }
        d.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{find, find_byte};

    #[test]
    fn find_delimiters() {
        assert_eq!(find(b"abc\r\n", b"\r\n"), Some(3));
        assert_eq!(find(b"a\rb\r\n", b"\r\n"), Some(3));
        assert_eq!(find(b"abc\r", b"\r\n"), None);
        assert_eq!(find(b"\n", b"\n"), Some(0));
        assert_eq!(find(b"", b"\n"), None);
        assert_eq!(find(b"xxababc", b"abc"), Some(4));
        assert_eq!(find(b"0123456789abcdef\r\r\n", b"\r\n"), Some(17));
        assert_eq!(find(b"0123456\r\n", b"\r\n"), Some(7));
    }

    #[test]
    fn find_bytes_at_every_offset() {
        for len in 0..40 {
            // 0x8d is `\r` with the high bit set: it must not match.
            assert_eq!(find_byte(&vec![0x8d; len], b'\r'), None);
            assert_eq!(find_byte(&vec![0; len], 0xff), None);
            for at in 0..len {
                let mut hay = vec![b'x'; len];
                hay[at] = b'\r';
                if at + 1 < len {
                    // A byte just below the pattern after it (a borrow across bytes).
                    hay[at + 1] = b'\r' - 1;
                }
                if at + 3 < len {
                    hay[at + 3] = b'\r';
                }
                assert_eq!(find_byte(&hay, b'\r'), Some(at), "len {len} at {at}");
                hay[at] = 0;
                assert_eq!(find_byte(&hay, 0), Some(at), "len {len} at {at}");
            }
        }
    }
}

/// Sends lines on a connection at any time: made by [`LineControl::sender`], for answers
/// that come later (from a Deferred, a timer, a task). Cheap to clone. Once the connection
/// closed, sending does nothing.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver, LineSender};
/// use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
///
/// /// Keeps a sender to greet with later.
/// #[derive(Default)]
/// struct Later(Option<LineSender>);
/// impl LineHandler for Later {
///     fn connection_made(&mut self, ctl: &mut LineControl<'_>) { self.0 = Some(ctl.sender()); }
///     fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> { Ok(()) }
/// }
///
/// let mut p = LineReceiver::new(Later::default());
/// let t = StringTransport::connect(&mut p);
/// p.handler().0.as_ref().unwrap().send_line("hello");
/// assert_eq!(t.value(), b"hello\r\n");
/// ```
#[derive(Clone)]
pub struct LineSender {
    transport: Option<TransportRef>,
    delimiter: Rc<[u8]>,
}

impl LineSender {
    /// Writes `line` and the delimiter, in one write.
    ///
    /// # Examples
    ///
    /// See [`LineControl::sender`].
    pub fn send_line(&self, line: impl AsRef<[u8]>) {
        if let Some(t) = &self.transport {
            t.write_vectored(&[line.as_ref(), &self.delimiter]);
        }
    }

    /// Closes the connection once everything queued has been sent.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// # struct Q;
    /// # impl LineHandler for Q {
    /// #     fn line_received(&mut self, _: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
    /// #         let out = ctl.sender();
    /// out.send_line("bye");
    /// out.lose_connection();
    /// #         Ok(())
    /// #     }
    /// # }
    /// # let mut p = LineReceiver::new(Q);
    /// # let t = StringTransport::connect(&mut p);
    /// # p.data_received(b"x\r\n").unwrap();
    /// # assert!(t.is_disconnecting());
    /// ```
    pub fn lose_connection(&self) {
        if let Some(t) = &self.transport {
            t.lose_connection();
        }
    }

    /// The connection (`None` for a sender made before `connection_made`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// # struct Q;
    /// # impl LineHandler for Q {
    /// #     fn line_received(&mut self, _: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
    /// assert!(ctl.sender().transport().is_some());
    /// #         Ok(())
    /// #     }
    /// # }
    /// # let mut p = LineReceiver::new(Q);
    /// # StringTransport::connect(&mut p);
    /// # p.data_received(b"x\r\n").unwrap();
    /// ```
    pub fn transport(&self) -> Option<&TransportRef> {
        self.transport.as_ref()
    }
}

impl fmt::Debug for LineSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineSender")
            .field("peer", &self.transport.as_ref().map(|t| t.peer_addr()))
            .field("delimiter", &self.delimiter)
            .finish()
    }
}
