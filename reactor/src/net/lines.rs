//! Lines over any async byte stream: [`LineReader`] to read them, [`WriteLineExt`] to
//! write them.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;

use futures::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// The longest line a [`LineReader`] accepts by default: 16,384 bytes without the line
/// ending, as the line protocols.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::net::{LineReader, DEFAULT_MAX_LINE_LENGTH};
///
/// let reader = LineReader::new(&b""[..]);
/// assert_eq!(reader.max_length(), DEFAULT_MAX_LINE_LENGTH);
/// ```
pub const DEFAULT_MAX_LINE_LENGTH: usize = 16384;

/// How much a read asks the stream for at most.
const READ_SIZE: usize = 8192;

/// Reads lines from an [`AsyncRead`] (a [`TcpStream`](super::TcpStream), or `&TcpStream`
/// so the same task can write to it): `while let Some(line) =
/// reader.next_line().await? { … }`.
///
/// A line ends with LF; a CR before the LF is dropped too, so lines sent by `nc` (LF) and
/// by a network protocol (CRLF) read the same. At the end of the stream, a last line
/// with no LF is still given, then `None` — as [`BufRead::lines`](std::io::BufRead::lines)
/// does.
///
/// A line longer than [`max_length`](Self::with_max_length) bytes (default
/// [`DEFAULT_MAX_LINE_LENGTH`], the line protocols' default) is an
/// error of kind [`io::ErrorKind::InvalidData`]; the reader never holds more than about
/// that much of one line. The long line is skipped, and the next call reads the line
/// after it. Other read errors are the stream's.
///
/// [`next_line`](Self::next_line) and [`next_line_bytes`](Self::next_line_bytes) are
/// cancel-safe: dropping their future (when a timeout wins a race, for instance) loses
/// no data; the next call goes on where it stopped.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::net::{LineReader, TcpListener, TcpStream, WriteLineExt};
/// use ropewalk_reactor::Reactor;
///
/// let reactor = Reactor::new()?;
/// let listener = TcpListener::bind(&reactor, "127.0.0.1:0".parse().unwrap())?;
/// let addr = listener.local_addr()?;
/// // A server that answers each line with its length.
/// reactor.spawn(async move {
///     let (stream, _) = listener.accept().await?;
///     let mut lines = LineReader::new(&stream);
///     let mut out = &stream;
///     while let Some(line) = lines.next_line().await? {
///         out.write_line(line.len().to_string()).await?;
///     }
///     Ok::<_, Failure>(())
/// });
/// let r = reactor.clone();
/// let client = reactor.spawn(async move {
///     let stream = TcpStream::connect(&r, addr).await?;
///     (&stream).write_line("hello").await?;
///     (&stream).write_line("").await?;
///     let mut answers = LineReader::new(&stream);
///     let a = answers.next_line().await?;
///     let b = answers.next_line().await?;
///     Ok::<_, Failure>((a, b))
/// });
/// assert_eq!(
///     client.wait().unwrap(),
///     (Some("5".to_string()), Some("0".to_string()))
/// );
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct LineReader<R> {
    inner: R,
    /// Bytes read and not given yet are `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    /// How many bytes after `pos` are known to hold no LF.
    scanned: usize,
    max_length: usize,
    /// Skipping the rest of a line found too long.
    discarding: bool,
    eof: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// A reader of lines from `inner`, with the default maximum length.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::net::LineReader;
    ///
    /// // Any `AsyncRead` does; a byte slice is one.
    /// let mut lines = LineReader::new(&b"one\r\ntwo\nthree"[..]);
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let all = reactor
    ///     .spawn(async move {
    ///         let mut all = Vec::new();
    ///         while let Some(line) = lines.next_line().await? {
    ///             all.push(line);
    ///         }
    ///         Ok::<_, Failure>(all)
    ///     })
    ///     .wait()
    ///     .unwrap();
    /// assert_eq!(all, ["one", "two", "three"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(inner: R) -> LineReader<R> {
        LineReader {
            inner,
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
            max_length: DEFAULT_MAX_LINE_LENGTH,
            discarding: false,
            eof: false,
        }
    }

    /// Sets the longest line accepted, in bytes without the line ending. Longer lines are
    /// errors (see [`LineReader`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::net::LineReader;
    ///
    /// let reader = LineReader::new(&b""[..]).with_max_length(80);
    /// assert_eq!(reader.max_length(), 80);
    /// ```
    pub fn with_max_length(mut self, max_length: usize) -> LineReader<R> {
        self.max_length = max_length;
        self
    }

    /// The longest line accepted.
    ///
    /// # Examples
    ///
    /// See [`with_max_length`](Self::with_max_length).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The next line as text, without its line ending; `None` at the end of the stream.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidData`] for a line that is too long or not UTF-8 (that line
    /// is skipped: the next call reads the one after it; use
    /// [`next_line_bytes`](Self::next_line_bytes) for bytes as they are); the stream's
    /// read errors.
    ///
    /// # Examples
    ///
    /// See [`LineReader`].
    pub async fn next_line(&mut self) -> io::Result<Option<String>> {
        match self.next_line_bytes().await? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes).map(Some).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a line is not valid UTF-8: {}", e.utf8_error()),
                )
            }),
        }
    }

    /// The next line as bytes, without its line ending; `None` at the end of the stream.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidData`] for a line longer than the maximum (that line is
    /// skipped); the stream's read errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::net::LineReader;
    ///
    /// let mut lines = LineReader::new(&b"ok\n\xff\xfe\ntoo long\nend\n"[..]).with_max_length(4);
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let got = reactor
    ///     .spawn(async move {
    ///         let mut got = Vec::new();
    ///         loop {
    ///             match lines.next_line_bytes().await {
    ///                 Ok(Some(line)) => got.push(Ok(line)),
    ///                 Ok(None) => break,
    ///                 Err(e) => got.push(Err(e.kind())),
    ///             }
    ///         }
    ///         Ok::<_, Failure>(got)
    ///     })
    ///     .wait()
    ///     .unwrap();
    /// use std::io::ErrorKind::InvalidData;
    /// assert_eq!(
    ///     got,
    ///     [Ok(b"ok".to_vec()), Ok(vec![0xff, 0xfe]), Err(InvalidData), Ok(b"end".to_vec())]
    /// );
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn next_line_bytes(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            let from = self.pos + self.scanned;
            if let Some(i) = self.buf[from..].iter().position(|&b| b == b'\n') {
                let start = self.pos;
                let lf = from + i;
                self.pos = lf + 1;
                self.scanned = 0;
                if std::mem::take(&mut self.discarding) {
                    continue;
                }
                let line = strip_cr(&self.buf[start..lf]);
                if line.len() > self.max_length {
                    return Err(self.too_long());
                }
                return Ok(Some(line.to_vec()));
            }
            self.scanned = self.buf.len() - self.pos;
            // One byte more than the maximum may be the CR of a CRLF not read yet.
            if self.scanned > self.max_length + 1 || (self.discarding && self.scanned > 0) {
                self.buf.clear();
                self.pos = 0;
                self.scanned = 0;
                if !std::mem::replace(&mut self.discarding, true) {
                    return Err(self.too_long());
                }
            }
            if self.eof {
                if self.discarding || self.pos == self.buf.len() {
                    self.discarding = false;
                    return Ok(None);
                }
                let line = self.buf[self.pos..].to_vec();
                self.pos = self.buf.len();
                self.scanned = 0;
                return Ok(Some(line));
            }
            self.fill().await?;
        }
    }

    /// Reads once more into the buffer; notes the end of the stream.
    async fn fill(&mut self) -> io::Result<()> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let n = poll_fn(|cx| {
            // Grow, read, and shrink back to what was read before returning: a dropped
            // future leaves no filler bytes behind.
            let len = self.buf.len();
            self.buf.resize(len + READ_SIZE, 0);
            let r = Pin::new(&mut self.inner).poll_read(cx, &mut self.buf[len..]);
            let got = match r {
                Poll::Ready(Ok(n)) => n,
                _ => 0,
            };
            self.buf.truncate(len + got);
            r
        })
        .await;
        match n {
            Ok(0) => self.eof = true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn too_long(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a line is longer than {} bytes", self.max_length),
        )
    }
}

impl<R> LineReader<R> {
    /// The stream read from.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::net::LineReader;
    ///
    /// let reader = LineReader::new(&b"abc"[..]);
    /// assert_eq!(*reader.get_ref(), b"abc");
    /// ```
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The stream read from, to change it. Reading from it directly skips what the
    /// reader has buffered; see [`into_parts`](Self::into_parts).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::net::LineReader;
    ///
    /// let mut reader = LineReader::new(&b"abc"[..]);
    /// *reader.get_mut() = &b"xyz"[..];
    /// assert_eq!(*reader.get_ref(), b"xyz");
    /// ```
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Gives back the stream and the bytes read from it that no line has taken yet (to
    /// switch to raw data after a header of lines, say): nothing is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::net::LineReader;
    ///
    /// let mut lines = LineReader::new(&b"SIZE 3\r\nabc"[..]);
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let (line, rest) = reactor
    ///     .spawn(async move {
    ///         let line = lines.next_line().await?;
    ///         let (_stream, rest) = lines.into_parts();
    ///         Ok::<_, Failure>((line, rest))
    ///     })
    ///     .wait()
    ///     .unwrap();
    /// assert_eq!(line.as_deref(), Some("SIZE 3"));
    /// assert_eq!(rest, b"abc");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_parts(mut self) -> (R, Vec<u8>) {
        self.buf.drain(..self.pos);
        (self.inner, self.buf)
    }
}

impl<R> fmt::Debug for LineReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineReader")
            .field("buffered", &(self.buf.len() - self.pos))
            .field("max_length", &self.max_length)
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Writes lines to any [`AsyncWrite`]: `stream.write_line("hello").await?` sends
/// `hello\r\n` (CRLF, the network line ending, which [`LineReader`] and the line
/// protocols read, as does `nc`).
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::net::WriteLineExt;
///
/// let reactor = ropewalk_reactor::Reactor::new()?;
/// let out = reactor
///     .spawn(async move {
///         let mut out = Vec::new();
///         out.write_line("GET k").await?;
///         out.write_line(b"SET k v").await?;
///         let bad = out.write_line("two\nlines").await.unwrap_err();
///         assert_eq!(bad.kind(), std::io::ErrorKind::InvalidInput);
///         Ok::<_, Failure>(out)
///     })
///     .wait()
///     .unwrap();
/// assert_eq!(out, b"GET k\r\nSET k v\r\n");
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait WriteLineExt: AsyncWrite + Unpin {
    /// Writes `line` and a CRLF, in one write when the stream takes it all.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] when `line` holds a CR or LF (it would arrive as
    /// more than one line), with nothing written; the stream's write errors.
    ///
    /// # Examples
    ///
    /// See [`WriteLineExt`].
    #[allow(async_fn_in_trait)] // The reactor's tasks are not `Send`: no bound to name.
    async fn write_line(&mut self, line: impl AsRef<[u8]>) -> io::Result<()> {
        let line = line.as_ref();
        if line.iter().any(|&b| b == b'\n' || b == b'\r') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a line to write holds a CR or LF",
            ));
        }
        let mut out = Vec::with_capacity(line.len() + 2);
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
        self.write_all(&out).await
    }
}

impl<W: AsyncWrite + Unpin + ?Sized> WriteLineExt for W {}
