//! The async line reader and writer (`net::LineReader`, `net::WriteLineExt`): over
//! loopback, and over a reader that hands out chunks as told, to split lines at every
//! byte and to drop a read half-way.

mod support;

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::net::{AsyncRead, LineReader, TcpListener, WriteLineExt};
use ropewalk_reactor::Reactor;
use support::bounded;

const LIMIT: Duration = Duration::from_secs(20);

/// An `AsyncRead` that gives one chunk per read, and `Pending` (waking itself) where the
/// script says so, then EOF.
struct Chunks(VecDeque<Option<Vec<u8>>>);

impl Chunks {
    fn new(chunks: &[&[u8]]) -> Chunks {
        Chunks(chunks.iter().map(|c| Some(c.to_vec())).collect())
    }

    /// `None` in the script is one `Pending`.
    fn script(chunks: Vec<Option<&[u8]>>) -> Chunks {
        Chunks(chunks.into_iter().map(|c| c.map(<[u8]>::to_vec)).collect())
    }
}

impl AsyncRead for Chunks {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.0.pop_front() {
            None => Poll::Ready(Ok(0)),
            Some(None) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(Some(mut chunk)) => {
                let n = chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                if n < chunk.len() {
                    self.0.push_front(Some(chunk.split_off(n)));
                }
                Poll::Ready(Ok(n))
            }
        }
    }
}

/// Every line (or the error kind) the reader gives, to the end.
fn read_all<R: AsyncRead + Unpin>(mut reader: LineReader<R>) -> Vec<Result<String, io::ErrorKind>> {
    let mut out = Vec::new();
    loop {
        match reader
            .next_line()
            .now_or_never()
            .expect("no Pending in this script")
        {
            Ok(Some(line)) => out.push(Ok(line)),
            Ok(None) => return out,
            Err(e) => out.push(Err(e.kind())),
        }
    }
}

/// A listener on a free loopback port, and its address.
fn loopback(reactor: &Reactor) -> (TcpListener, std::net::SocketAddr) {
    let listener = TcpListener::bind(reactor, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

fn ok(lines: &[&str]) -> Vec<Result<String, io::ErrorKind>> {
    lines.iter().map(|l| Ok(l.to_string())).collect()
}

#[test]
fn lines_over_loopback_lf_crlf_and_a_last_unterminated_line() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (listener, addr) = loopback(&reactor);
        // The server answers each line with its length, then closes.
        let server = reactor.spawn(async move {
            let (stream, _) = listener.accept().await?;
            let mut lines = LineReader::new(&stream);
            let mut got = Vec::new();
            while let Some(line) = lines.next_line().await? {
                (&stream).write_line(line.len().to_string()).await?;
                got.push(line);
            }
            Ok::<_, Failure>(got)
        });
        let client = std::thread::spawn(move || {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_nodelay(true).unwrap();
            c.set_read_timeout(Some(LIMIT)).unwrap();
            // Pieces that cut lines and line endings apart; nc sends LF, others CRLF.
            for piece in [
                &b"al"[..],
                b"pha\r",
                b"\nbeta\n",
                b"\r\n",
                b"gam",
                b"ma\r\nlast",
            ] {
                c.write_all(piece).unwrap();
            }
            c.shutdown(std::net::Shutdown::Write).unwrap();
            let answers: Vec<String> = BufReader::new(c).lines().map(Result::unwrap).collect();
            answers
        });
        let got = within(server, &reactor);
        assert_eq!(got, ["alpha", "beta", "", "gamma", "last"]);
        assert_eq!(client.join().unwrap(), ["5", "4", "0", "5", "4"]);
    });
}

fn within<T: 'static>(d: ropewalk_reactor::deferred::Deferred<T>, reactor: &Reactor) -> T {
    d.add_timeout(LIMIT, reactor).wait().unwrap()
}

#[test]
fn lines_split_at_every_byte_read_the_same() {
    let text: &[u8] = b"alpha\r\nbeta\n\ngamma\r\n\r\nlast\r";
    let want = ok(&["alpha", "beta", "", "gamma", "", "last\r"]);
    // (An empty chunk would read as the end of the stream.)
    for at in 1..text.len() {
        let reader = LineReader::new(Chunks::new(&[&text[..at], &text[at..]]));
        assert_eq!(read_all(reader), want, "split at {at}");
    }
    let bytes: Vec<&[u8]> = text.chunks(1).collect();
    assert_eq!(read_all(LineReader::new(Chunks::new(&bytes))), want);
}

#[test]
fn a_long_line_is_an_error_and_the_next_line_reads() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (listener, addr) = loopback(&reactor);
        let server = reactor.spawn(async move {
            let (stream, _) = listener.accept().await?;
            let mut lines = LineReader::new(&stream).with_max_length(16);
            let mut got = Vec::new();
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => got.push(Ok(line)),
                    Ok(None) => break,
                    Err(e) => got.push(Err(e.to_string())),
                }
                // Never more than the longest line (and a read) is held.
                let held = format!("{lines:?}");
                let n: usize = held
                    .split("buffered: ")
                    .nth(1)
                    .and_then(|s| s.split(',').next())
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(n <= 16 + 1 + 8192, "{held}");
            }
            Ok::<_, Failure>(got)
        });
        let client = std::thread::spawn(move || {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(b"ok\n").unwrap();
            c.write_all(&vec![b'x'; 100_000]).unwrap();
            c.write_all(b"\r\nafter\nexactly-sixteen!\r\n").unwrap();
        });
        client.join().unwrap();
        let got = within(server, &reactor);
        assert_eq!(
            got,
            [
                Ok("ok".to_string()),
                Err("a line is longer than 16 bytes".to_string()),
                Ok("after".to_string()),
                Ok("exactly-sixteen!".to_string()),
            ]
        );
    });
}

#[test]
fn a_long_line_in_one_chunk_and_at_the_end_of_the_stream() {
    use io::ErrorKind::InvalidData;
    let reader = LineReader::new(Chunks::new(&[b"12345\n123456\n1234\n"])).with_max_length(5);
    assert_eq!(
        read_all(reader),
        [Ok("12345".into()), Err(InvalidData), Ok("1234".into())]
    );
    // An unterminated long line at EOF: one error, then the end.
    let reader = LineReader::new(Chunks::new(&[b"ab\n", b"1234567890"])).with_max_length(5);
    assert_eq!(read_all(reader), [Ok("ab".into()), Err(InvalidData)]);
}

#[test]
fn a_line_of_exactly_max_length_whose_crlf_is_split() {
    let reader = LineReader::new(Chunks::new(&[b"12345\r", b"\nnext\n"])).with_max_length(5);
    assert_eq!(read_all(reader), ok(&["12345", "next"]));
}

#[test]
fn a_line_that_is_not_utf8_is_an_error_and_the_next_line_reads() {
    let reader = LineReader::new(Chunks::new(&[b"caf\xe9\r\nok\n"]));
    assert_eq!(
        read_all(reader),
        [Err(io::ErrorKind::InvalidData), Ok("ok".into())]
    );
}

#[test]
fn dropping_next_line_half_way_loses_nothing() {
    let script = vec![Some(&b"hel"[..]), None, Some(b"lo\nwor"), None, Some(b"ld")];
    let mut reader = LineReader::new(Chunks::script(script));
    // Each first poll reads what it can, then meets Pending: the future is dropped.
    assert!(reader.next_line().now_or_never().is_none());
    assert_eq!(
        reader
            .next_line()
            .now_or_never()
            .unwrap()
            .unwrap()
            .as_deref(),
        Some("hello")
    );
    assert!(reader.next_line().now_or_never().is_none());
    assert_eq!(
        reader
            .next_line()
            .now_or_never()
            .unwrap()
            .unwrap()
            .as_deref(),
        Some("world")
    );
    assert_eq!(reader.next_line().now_or_never().unwrap().unwrap(), None);
}

#[test]
fn into_parts_gives_back_what_no_line_took() {
    let mut reader = LineReader::new(Chunks::new(&[b"HEAD\r\nbody", b" more"]));
    let line = reader.next_line().now_or_never().unwrap().unwrap();
    assert_eq!(line.as_deref(), Some("HEAD"));
    let (mut rest_of_stream, buffered) = reader.into_parts();
    assert_eq!(buffered, b"body");
    let mut more = [0u8; 16];
    let n = Pin::new(&mut rest_of_stream).poll_read(
        &mut Context::from_waker(futures::task::noop_waker_ref()),
        &mut more,
    );
    assert!(matches!(n, Poll::Ready(Ok(5))));
    assert_eq!(&more[..5], b" more");
}

#[test]
fn write_line_refuses_a_line_with_a_line_ending_and_writes_nothing() {
    let mut out = Vec::new();
    for bad in ["a\nb", "a\rb", "\n"] {
        let e = out.write_line(bad).now_or_never().unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
    }
    out.write_line("fine").now_or_never().unwrap().unwrap();
    assert_eq!(out, b"fine\r\n");
}
