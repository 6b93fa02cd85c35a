//! Framed strings: length-prefixed ([`IntNStringReceiver`], Twisted's
//! `Int32StringReceiver` / `Int16StringReceiver` / `Int8StringReceiver`) and netstrings
//! ([`NetstringReceiver`], <http://cr.yp.to/proto/netstrings.txt>).
//!
//! Both hand each complete string to a [`StringHandler`]; the handler answers through a
//! [`StringControl`], whose `send_string` frames the same way. As with the line receivers,
//! a chunk with nothing held before it is parsed in place, and only an unfinished string
//! is copied. The two receivers share one core (handler, connection, held bytes, limit,
//! and whether the stream broke); each adds its own header parsing and `send_string`.
//!
//! Parsing is strict. A netstring whose length is not a plain decimal number (no digits,
//! a leading zero, another character before `:`), is longer than `max_length`, or does
//! not end with `,` makes the receiver close the connection and ignore what follows.

use std::fmt;

use ropewalk_deferred::Failure;
use ropewalk_reactor::{Protocol, TransportRef};

use crate::receiver::{parse_buffered, Outbox, ReceiverCore};

/// The default longest string, in bytes: 99999 (Twisted's `MAX_LENGTH` for both framings).
///
/// # Examples
///
/// ```
/// assert_eq!(ropewalk_protocols::framing::DEFAULT_MAX_STRING, 99_999);
/// ```
pub const DEFAULT_MAX_STRING: usize = 99_999;

/// Errors of the framed-string receivers.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::framing::FramingError;
/// let e = FramingError::TooLongToSend { len: 300, max: 255 };
/// assert_eq!(e.to_string(), "a string of 300 bytes is too long to send (at most 255)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// `send_string` was given more than the length prefix can describe.
    #[error("a string of {len} bytes is too long to send (at most {max})")]
    TooLongToSend {
        /// The string's length.
        len: usize,
        /// The longest the prefix allows.
        max: usize,
    },
    /// A netstring's length is not a decimal number followed by `:`.
    #[error("bad netstring length")]
    BadLength,
    /// A received string is longer than the receiver's `max_length`.
    #[error("the received string is longer than the maximum {max}")]
    TooLong {
        /// The receiver's `max_length`.
        max: usize,
    },
    /// A netstring does not end with `,`.
    #[error("the received netstring is not terminated by a comma")]
    MissingComma,
}

/// The width of a length prefix: an unsigned big-endian integer of 1, 2 or 4 bytes.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::framing::Prefix;
/// assert_eq!(Prefix::U16.len(), 2);
/// assert_eq!(Prefix::U8.max_string(), 255);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// One byte (Twisted's `Int8StringReceiver`).
    U8,
    /// Two bytes (`Int16StringReceiver`).
    U16,
    /// Four bytes (`Int32StringReceiver`).
    U32,
}

impl Prefix {
    /// The prefix's size in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ropewalk_protocols::framing::Prefix::U32.len(), 4);
    /// ```
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> usize {
        match self {
            Prefix::U8 => 1,
            Prefix::U16 => 2,
            Prefix::U32 => 4,
        }
    }

    /// The longest string the prefix can describe.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ropewalk_protocols::framing::Prefix::U16.max_string(), 65535);
    /// ```
    pub fn max_string(self) -> usize {
        match self {
            Prefix::U8 => u8::MAX as usize,
            Prefix::U16 => u16::MAX as usize,
            Prefix::U32 => u32::MAX as usize,
        }
    }

    fn decode(self, b: &[u8]) -> usize {
        b[..self.len()]
            .iter()
            .fold(0usize, |n, &byte| (n << 8) | byte as usize)
    }

    fn encode(self, len: usize) -> ([u8; 4], usize) {
        let n = self.len();
        let be = (len as u32).to_be_bytes();
        let mut out = [0; 4];
        out[..n].copy_from_slice(&be[4 - n..]);
        (out, n)
    }
}

/// How a receiver frames the strings it sends: behind a length prefix, or as netstrings.
#[derive(Debug, Clone, Copy)]
enum StringFraming {
    Prefix(Prefix),
    Netstring,
}

/// The code that handles framed strings for an [`IntNStringReceiver`] or a
/// [`NetstringReceiver`].
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::framing::{NetstringReceiver, StringControl, StringHandler};
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::testing::StringTransport;
/// use ropewalk_reactor::Protocol;
///
/// /// Echoes each string back.
/// struct Echo;
/// impl StringHandler for Echo {
///     fn string_received(&mut self, s: &[u8], ctl: &mut StringControl<'_>) -> Result<(), Failure> {
///         ctl.send_string(s)?;
///         Ok(())
///     }
/// }
///
/// let mut p = NetstringReceiver::new(Echo);
/// let t = StringTransport::connect(&mut p);
/// p.data_received(b"5:hello,").unwrap();
/// assert_eq!(t.value(), b"5:hello,");
/// ```
pub trait StringHandler: 'static {
    /// The connection is up.
    ///
    /// # Examples
    ///
    /// See [`LineHandler::connection_made`](crate::line::LineHandler::connection_made), which works the same.
    fn connection_made(&mut self, ctl: &mut StringControl<'_>) {
        let _ = ctl;
    }

    /// A complete string arrived, without its framing.
    ///
    /// # Errors
    ///
    /// Whatever the handler finds wrong: the rest of the chunk is dropped and the
    /// connection closed with that failure.
    ///
    /// # Examples
    ///
    /// See [`StringHandler`].
    fn string_received(
        &mut self,
        string: &[u8],
        ctl: &mut StringControl<'_>,
    ) -> Result<(), Failure>;

    /// A length prefix announced `length` bytes, more than `max_length` (length-prefixed
    /// receivers only; a netstring that is too long is a parse error). The receiver
    /// ignores everything after it. The default closes the connection.
    ///
    /// # Errors
    ///
    /// An `Err` closes the connection with that failure.
    ///
    /// # Examples
    ///
    /// See [`IntNStringReceiver::with_max_length`] (the default closing).
    fn length_limit_exceeded(
        &mut self,
        length: usize,
        ctl: &mut StringControl<'_>,
    ) -> Result<(), Failure> {
        let _ = length;
        ctl.lose_connection();
        Ok(())
    }

    /// The peer shut down its sending side; see [`Protocol::eof_received`].
    ///
    /// # Examples
    ///
    /// See [`Protocol::eof_received`].
    fn eof_received(&mut self, ctl: &mut StringControl<'_>) -> bool {
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

/// What a [`StringHandler`] callback can do: send framed strings, write, close.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::framing::{IntNStringReceiver, StringControl, StringHandler};
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::testing::StringTransport;
///
/// struct Greet;
/// impl StringHandler for Greet {
///     fn connection_made(&mut self, ctl: &mut StringControl<'_>) {
///         ctl.send_string(b"hi").unwrap();
///     }
///     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> {
///         Ok(())
///     }
/// }
/// let mut p = IntNStringReceiver::int16(Greet);
/// assert_eq!(StringTransport::connect(&mut p).value(), b"\x00\x02hi");
/// ```
pub struct StringControl<'a> {
    out: Outbox<'a>,
    framing: StringFraming,
}

impl StringControl<'_> {
    /// The connection, once `connection_made` has run.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{NetstringReceiver, StringControl, StringHandler};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport};
    /// struct P;
    /// impl StringHandler for P {
    ///     fn connection_made(&mut self, ctl: &mut StringControl<'_>) {
    ///         assert!(ctl.transport().is_some());
    ///     }
    ///     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// }
    /// StringTransport::connect(&mut NetstringReceiver::new(P));
    /// ```
    pub fn transport(&self) -> Option<&TransportRef> {
        self.out.transport()
    }

    /// Sends `string`, framed as this receiver frames (in one vectored write).
    ///
    /// # Errors
    ///
    /// [`FramingError::TooLongToSend`] if a length prefix cannot describe `string`;
    /// nothing is written then.
    ///
    /// # Examples
    ///
    /// See [`StringControl`].
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{IntNStringReceiver, FramingError, StringControl, StringHandler};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport};
    /// struct Big;
    /// impl StringHandler for Big {
    ///     fn connection_made(&mut self, ctl: &mut StringControl<'_>) {
    ///         let e = ctl.send_string(&[0; 256]).unwrap_err();
    ///         assert_eq!(e, FramingError::TooLongToSend { len: 256, max: 255 });
    ///     }
    ///     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// }
    /// assert!(StringTransport::connect(&mut IntNStringReceiver::int8(Big)).value().is_empty());
    /// ```
    pub fn send_string(&self, string: &[u8]) -> Result<(), FramingError> {
        send_framed(self.out, self.framing, string)
    }

    /// Writes `data` as it is, unframed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{NetstringReceiver, StringControl, StringHandler};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport};
    /// struct Raw;
    /// impl StringHandler for Raw {
    ///     fn connection_made(&mut self, ctl: &mut StringControl<'_>) { ctl.write(b"0:,"); }
    ///     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// }
    /// assert_eq!(StringTransport::connect(&mut NetstringReceiver::new(Raw)).value(), b"0:,");
    /// ```
    pub fn write(&self, data: &[u8]) {
        self.out.write(data);
    }

    /// Closes the connection once what is queued is sent; the strings after this one in
    /// the same chunk are dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{NetstringReceiver, StringControl, StringHandler};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// #[derive(Default)]
    /// struct One(usize);
    /// impl StringHandler for One {
    ///     fn string_received(&mut self, _: &[u8], ctl: &mut StringControl<'_>) -> Result<(), Failure> {
    ///         self.0 += 1;
    ///         ctl.lose_connection();
    ///         Ok(())
    ///     }
    /// }
    /// let mut p = NetstringReceiver::new(One::default());
    /// let t = StringTransport::connect(&mut p);
    /// p.data_received(b"1:a,1:b,").unwrap();
    /// assert_eq!(p.handler().0, 1);
    /// assert!(t.is_disconnecting());
    /// ```
    pub fn lose_connection(&self) {
        self.out.lose_connection();
    }
}

impl fmt::Debug for StringControl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StringControl")
            .field("framing", &self.framing)
            .field("connected", &self.out.transport().is_some())
            .finish()
    }
}

fn send_framed(out: Outbox<'_>, framing: StringFraming, string: &[u8]) -> Result<(), FramingError> {
    match framing {
        StringFraming::Prefix(prefix) => {
            if string.len() > prefix.max_string() {
                return Err(FramingError::TooLongToSend {
                    len: string.len(),
                    max: prefix.max_string(),
                });
            }
            let (head, n) = prefix.encode(string.len());
            out.write_vectored(&[&head[..n], string]);
        }
        StringFraming::Netstring => {
            let mut head = [0; NETSTRING_HEAD];
            let at = netstring_head(string.len(), &mut head);
            out.write_vectored(&[&head[at..], string, b","]);
        }
    }
    Ok(())
}

/// The longest netstring header, `<digits>:`: the 20 digits of `u64::MAX` and the colon.
const NETSTRING_HEAD: usize = 21;

/// Writes `<len>:` at the end of `head`, on the stack (no allocation per string); returns
/// where it starts.
fn netstring_head(mut len: usize, head: &mut [u8; NETSTRING_HEAD]) -> usize {
    let mut at = NETSTRING_HEAD - 1;
    head[at] = b':';
    loop {
        at -= 1;
        head[at] = b'0' + (len % 10) as u8;
        len /= 10;
        if len == 0 {
            return at;
        }
    }
}

/// What both string receivers own: the shared receiver parts, and whether the stream
/// broke (a bad header or a string over the limit), after which everything is ignored.
struct StringCore<H> {
    receiver: ReceiverCore<H>,
    broken: bool,
}

impl<H: StringHandler> StringCore<H> {
    fn new(handler: H) -> Self {
        StringCore {
            receiver: ReceiverCore::new(handler, DEFAULT_MAX_STRING),
            broken: false,
        }
    }

    fn closing(&self) -> bool {
        self.broken || self.receiver.outbox().is_closing()
    }

    fn connection_made(&mut self, transport: TransportRef, framing: StringFraming) {
        let (handler, out) = self.receiver.connect(transport);
        handler.connection_made(&mut StringControl { out, framing });
    }

    fn eof_received(&mut self, framing: StringFraming) -> bool {
        let (handler, out) = self.receiver.parts();
        handler.eof_received(&mut StringControl { out, framing })
    }

    fn connection_lost(&mut self, reason: Failure) {
        self.broken = true;
        self.receiver.disconnect().connection_lost(reason);
    }
}

/// A [`Protocol`] for strings that each follow a big-endian length prefix of 1, 2 or 4
/// bytes (Twisted's `Int8StringReceiver`, `Int16StringReceiver`, `Int32StringReceiver`).
///
/// A prefix announcing more than `max_length` bytes (default 99999) goes to
/// [`StringHandler::length_limit_exceeded`] (the default closes the connection), and the
/// receiver ignores the rest of the stream: it cannot find the next string's start.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::framing::{IntNStringReceiver, StringControl, StringHandler};
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::testing::StringTransport;
/// use ropewalk_reactor::Protocol;
///
/// #[derive(Default)]
/// struct Collect(Vec<Vec<u8>>);
/// impl StringHandler for Collect {
///     fn string_received(&mut self, s: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> {
///         self.0.push(s.to_vec());
///         Ok(())
///     }
/// }
///
/// let mut p = IntNStringReceiver::int32(Collect::default());
/// let t = StringTransport::connect(&mut p);
/// p.data_received(b"\x00\x00\x00\x04ubar\x00\x00").unwrap();
/// assert_eq!(p.handler().0, [b"ubar".to_vec()]);
/// p.send_string(b"foo").unwrap();
/// assert_eq!(t.value(), b"\x00\x00\x00\x03foo");
/// ```
pub struct IntNStringReceiver<H> {
    core: StringCore<H>,
    prefix: Prefix,
}

impl<H: StringHandler> IntNStringReceiver<H> {
    /// A receiver with a `prefix`-wide length prefix.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{IntNStringReceiver, Prefix, StringControl, StringHandler};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # struct P;
    /// # impl StringHandler for P {
    /// #     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let p = IntNStringReceiver::new(Prefix::U16, P);
    /// assert_eq!(p.prefix(), Prefix::U16);
    /// ```
    pub fn new(prefix: Prefix, handler: H) -> Self {
        IntNStringReceiver {
            core: StringCore::new(handler),
            prefix,
        }
    }

    /// A receiver with a 4-byte prefix (Twisted's `Int32StringReceiver`).
    ///
    /// # Examples
    ///
    /// See [`IntNStringReceiver`].
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{IntNStringReceiver, Prefix, StringControl, StringHandler};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # struct P;
    /// # impl StringHandler for P {
    /// #     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// assert_eq!(IntNStringReceiver::int32(P).prefix(), Prefix::U32);
    /// ```
    pub fn int32(handler: H) -> Self {
        Self::new(Prefix::U32, handler)
    }

    /// A receiver with a 2-byte prefix (Twisted's `Int16StringReceiver`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{IntNStringReceiver, Prefix, StringControl, StringHandler};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # struct P;
    /// # impl StringHandler for P {
    /// #     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// assert_eq!(IntNStringReceiver::int16(P).prefix(), Prefix::U16);
    /// ```
    pub fn int16(handler: H) -> Self {
        Self::new(Prefix::U16, handler)
    }

    /// A receiver with a 1-byte prefix (Twisted's `Int8StringReceiver`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{IntNStringReceiver, Prefix, StringControl, StringHandler};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # struct P;
    /// # impl StringHandler for P {
    /// #     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// assert_eq!(IntNStringReceiver::int8(P).prefix(), Prefix::U8);
    /// ```
    pub fn int8(handler: H) -> Self {
        Self::new(Prefix::U8, handler)
    }

    /// Sets the longest string accepted (default 99999).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{IntNStringReceiver, StringControl, StringHandler};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// # struct P;
    /// # impl StringHandler for P {
    /// #     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let mut p = IntNStringReceiver::int8(P).with_max_length(10);
    /// let t = StringTransport::connect(&mut p);
    /// p.data_received(b"\x0b").unwrap();
    /// assert!(t.is_disconnecting());
    /// ```
    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.core.receiver.max_length = max_length;
        self
    }

    /// The prefix width.
    ///
    /// # Examples
    ///
    /// See [`new`](Self::new).
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{IntNStringReceiver, Prefix, StringControl, StringHandler};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # struct P;
    /// # impl StringHandler for P {
    /// #     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// assert_eq!(IntNStringReceiver::int8(P).prefix().len(), 1);
    /// ```
    pub fn prefix(&self) -> Prefix {
        self.prefix
    }

    /// The handler.
    ///
    /// # Examples
    ///
    /// See [`IntNStringReceiver`].
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{IntNStringReceiver, StringControl, StringHandler};
    /// # use ropewalk_reactor::deferred::Failure;
    /// #[derive(Default)]
    /// struct Count(usize);
    /// # impl StringHandler for Count {
    /// #     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// assert_eq!(IntNStringReceiver::int8(Count::default()).handler().0, 0);
    /// ```
    pub fn handler(&self) -> &H {
        &self.core.receiver.handler
    }

    /// The handler, to change it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{IntNStringReceiver, StringControl, StringHandler};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # #[derive(Default)] struct Count(usize);
    /// # impl StringHandler for Count {
    /// #     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let mut p = IntNStringReceiver::int8(Count::default());
    /// p.handler_mut().0 = 2;
    /// assert_eq!(p.handler().0, 2);
    /// ```
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.core.receiver.handler
    }

    /// Sends `string` with its length prefix.
    ///
    /// # Errors
    ///
    /// [`FramingError::TooLongToSend`] if the prefix cannot describe `string`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{IntNStringReceiver, StringControl, StringHandler};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport};
    /// # struct P;
    /// # impl StringHandler for P {
    /// #     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let mut p = IntNStringReceiver::int8(P);
    /// let t = StringTransport::connect(&mut p);
    /// p.send_string(b"foo").unwrap();
    /// assert_eq!(t.value(), b"\x03foo");
    /// assert!(p.send_string(&[0; 256]).is_err());
    /// ```
    pub fn send_string(&self, string: &[u8]) -> Result<(), FramingError> {
        send_framed(
            self.core.receiver.outbox(),
            StringFraming::Prefix(self.prefix),
            string,
        )
    }
}

impl<H: StringHandler> Protocol for IntNStringReceiver<H> {
    fn connection_made(&mut self, transport: TransportRef) {
        self.core
            .connection_made(transport, StringFraming::Prefix(self.prefix));
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        if self.core.closing() {
            return Ok(());
        }
        let prefix = self.prefix;
        let plen = prefix.len();
        let broken = &mut self.core.broken;
        let (handler, out, held, max_length) = self.core.receiver.parse_parts();
        let mut ctl = StringControl {
            out,
            framing: StringFraming::Prefix(prefix),
        };
        parse_buffered(held, data, |src| {
            let mut pos = 0;
            while src.len() - pos >= plen {
                let len = prefix.decode(&src[pos..]);
                if len > max_length {
                    *broken = true;
                    return (pos, false, handler.length_limit_exceeded(len, &mut ctl));
                }
                let start = pos + plen;
                if src.len() - start < len {
                    break;
                }
                if let Err(f) = handler.string_received(&src[start..start + len], &mut ctl) {
                    return (pos, false, Err(f));
                }
                pos = start + len;
                if out.is_closing() {
                    return (pos, false, Ok(()));
                }
            }
            (pos, true, Ok(()))
        })
    }

    fn eof_received(&mut self) -> bool {
        self.core.eof_received(StringFraming::Prefix(self.prefix))
    }

    fn connection_lost(&mut self, reason: Failure) {
        self.core.connection_lost(reason);
    }
}

impl<H> fmt::Debug for IntNStringReceiver<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntNStringReceiver")
            .field("prefix", &self.prefix)
            .field("buffered", &self.core.receiver.held.len())
            .field("max_length", &self.core.receiver.max_length)
            .finish()
    }
}

/// Reads a netstring's `<digits>:` header: where the payload starts and its length, or
/// `None` if more bytes are needed.
fn netstring_header(b: &[u8], max: usize) -> Result<Option<(usize, usize)>, FramingError> {
    let mut value: usize = 0;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                if i == 1 && b[0] == b'0' {
                    // A leading zero.
                    return Err(FramingError::BadLength);
                }
                value = value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(usize::from(c - b'0')))
                    .filter(|&v| v <= max)
                    .ok_or(FramingError::TooLong { max })?;
            }
            b':' if i > 0 => return Ok(Some((i + 1, value))),
            _ => return Err(FramingError::BadLength),
        }
    }
    Ok(None)
}

/// A [`Protocol`] for netstrings, `<length>:<bytes>,` (Twisted's `NetstringReceiver`).
///
/// Strict: a bad length, a length over `max_length` (default 99999) or a missing comma
/// closes the connection (`lose_connection`), and the rest of the stream is ignored;
/// [`NetstringReceiver::error`] tells what went wrong. An error is found as early as the
/// bytes allow: `9999999` is refused at its sixth digit, `01:` at its second.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::framing::{FramingError, NetstringReceiver, StringControl, StringHandler};
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::testing::StringTransport;
/// use ropewalk_reactor::Protocol;
///
/// #[derive(Default)]
/// struct Collect(Vec<Vec<u8>>);
/// impl StringHandler for Collect {
///     fn string_received(&mut self, s: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> {
///         self.0.push(s.to_vec());
///         Ok(())
///     }
/// }
///
/// let mut p = NetstringReceiver::new(Collect::default());
/// let t = StringTransport::connect(&mut p);
/// p.data_received(b"4:1:a,,0:,").unwrap();
/// assert_eq!(p.handler().0, [b"1:a,".to_vec(), b"".to_vec()]);
///
/// p.data_received(b"2:aaa,").unwrap();
/// assert!(t.is_disconnecting());
/// assert_eq!(p.error(), Some(&FramingError::MissingComma));
/// ```
pub struct NetstringReceiver<H> {
    core: StringCore<H>,
    error: Option<FramingError>,
}

impl<H: StringHandler> NetstringReceiver<H> {
    /// A receiver for `handler`, with `max_length` 99999.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{NetstringReceiver, StringControl, StringHandler};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # struct P;
    /// # impl StringHandler for P {
    /// #     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// assert!(NetstringReceiver::new(P).error().is_none());
    /// ```
    pub fn new(handler: H) -> Self {
        NetstringReceiver {
            core: StringCore::new(handler),
            error: None,
        }
    }

    /// Sets the longest string accepted (default 99999).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{FramingError, NetstringReceiver, StringControl, StringHandler};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// # struct P;
    /// # impl StringHandler for P {
    /// #     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let mut p = NetstringReceiver::new(P).with_max_length(11);
    /// StringTransport::connect(&mut p);
    /// p.data_received(b"12:").unwrap();
    /// assert_eq!(p.error(), Some(&FramingError::TooLong { max: 11 }));
    /// ```
    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.core.receiver.max_length = max_length;
        self
    }

    /// Why the stream was refused, if it was.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{FramingError, NetstringReceiver, StringControl, StringHandler};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport, Protocol};
    /// # struct P;
    /// # impl StringHandler for P {
    /// #     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let mut p = NetstringReceiver::new(P);
    /// StringTransport::connect(&mut p);
    /// p.data_received(b":aaa,").unwrap();
    /// assert_eq!(p.error(), Some(&FramingError::BadLength));
    /// ```
    pub fn error(&self) -> Option<&FramingError> {
        self.error.as_ref()
    }

    /// The handler.
    ///
    /// # Examples
    ///
    /// See [`NetstringReceiver`].
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{NetstringReceiver, StringControl, StringHandler};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # #[derive(Default)] struct Count(usize);
    /// # impl StringHandler for Count {
    /// #     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// assert_eq!(NetstringReceiver::new(Count::default()).handler().0, 0);
    /// ```
    pub fn handler(&self) -> &H {
        &self.core.receiver.handler
    }

    /// The handler, to change it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{NetstringReceiver, StringControl, StringHandler};
    /// # use ropewalk_reactor::deferred::Failure;
    /// # #[derive(Default)] struct Count(usize);
    /// # impl StringHandler for Count {
    /// #     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let mut p = NetstringReceiver::new(Count::default());
    /// p.handler_mut().0 = 1;
    /// assert_eq!(p.handler().0, 1);
    /// ```
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.core.receiver.handler
    }

    /// Sends `string` as a netstring.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::framing::{NetstringReceiver, StringControl, StringHandler};
    /// # use ropewalk_reactor::{deferred::Failure, testing::StringTransport};
    /// # struct P;
    /// # impl StringHandler for P {
    /// #     fn string_received(&mut self, _: &[u8], _: &mut StringControl<'_>) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let mut p = NetstringReceiver::new(P);
    /// let t = StringTransport::connect(&mut p);
    /// p.send_string(b"hello");
    /// assert_eq!(t.value(), b"5:hello,");
    /// ```
    pub fn send_string(&self, string: &[u8]) {
        // A netstring has no length limit to break.
        let _ = send_framed(
            self.core.receiver.outbox(),
            StringFraming::Netstring,
            string,
        );
    }
}

impl<H: StringHandler> Protocol for NetstringReceiver<H> {
    fn connection_made(&mut self, transport: TransportRef) {
        self.core
            .connection_made(transport, StringFraming::Netstring);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        if self.core.closing() {
            return Ok(());
        }
        let error = &mut self.error;
        let broken = &mut self.core.broken;
        let (handler, out, held, max_length) = self.core.receiver.parse_parts();
        let mut ctl = StringControl {
            out,
            framing: StringFraming::Netstring,
        };
        let mut refuse = |e: FramingError| {
            log::debug!("refusing a netstring stream: {e}");
            *error = Some(e);
            *broken = true;
            out.lose_connection();
        };
        parse_buffered(held, data, |src| {
            let mut pos = 0;
            while pos < src.len() {
                let (start, len) = match netstring_header(&src[pos..], max_length) {
                    Ok(Some((start, len))) => (pos + start, len),
                    Ok(None) => break,
                    Err(e) => {
                        refuse(e);
                        return (pos, false, Ok(()));
                    }
                };
                // Refuse a wrong byte where the comma belongs as soon as it arrives.
                if src.len() - start <= len {
                    break;
                }
                if src[start + len] != b',' {
                    refuse(FramingError::MissingComma);
                    return (pos, false, Ok(()));
                }
                if let Err(f) = handler.string_received(&src[start..start + len], &mut ctl) {
                    return (pos, false, Err(f));
                }
                pos = start + len + 1;
                if out.is_closing() {
                    return (pos, false, Ok(()));
                }
            }
            (pos, true, Ok(()))
        })
    }

    fn eof_received(&mut self) -> bool {
        self.core.eof_received(StringFraming::Netstring)
    }

    fn connection_lost(&mut self, reason: Failure) {
        self.core.connection_lost(reason);
    }
}

impl<H> fmt::Debug for NetstringReceiver<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetstringReceiver")
            .field("buffered", &self.core.receiver.held.len())
            .field("max_length", &self.core.receiver.max_length)
            .field("error", &self.error)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{netstring_head, netstring_header, FramingError, Prefix, NETSTRING_HEAD};

    #[test]
    fn headers() {
        assert_eq!(netstring_header(b"12:", 99), Ok(Some((3, 12))));
        assert_eq!(netstring_header(b"12:", 12), Ok(Some((3, 12))));
        assert_eq!(
            netstring_header(b"12:", 11),
            Err(FramingError::TooLong { max: 11 })
        );
        assert_eq!(
            netstring_header(b"1000:", 11),
            Err(FramingError::TooLong { max: 11 })
        );
        assert_eq!(netstring_header(b"0:", 11), Ok(Some((2, 0))));
        assert_eq!(netstring_header(b"01:", 11), Err(FramingError::BadLength));
        assert_eq!(netstring_header(b"1", 11), Ok(None));
        assert_eq!(netstring_header(b"", 11), Ok(None));
        assert_eq!(
            netstring_header(b"99999999999999999999999999", usize::MAX),
            Err(FramingError::TooLong { max: usize::MAX })
        );
    }

    #[test]
    fn netstring_heads() {
        let mut head = [0; NETSTRING_HEAD];
        for len in [0, 7, 10, 99_999, usize::MAX] {
            let at = netstring_head(len, &mut head);
            assert_eq!(head[at..], *format!("{len}:").as_bytes());
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(Prefix::U32.decode(b"\x00\x00\x01\x02"), 258);
        assert_eq!(Prefix::U16.encode(258), ([1, 2, 0, 0], 2));
        assert_eq!(Prefix::U8.encode(7), ([7, 0, 0, 0], 1));
    }
}
