//! `LineReceiver`, ported from Twisted's `protocols/test/test_basic.py`
//! (`LineReceiverTests`, `LineReceiverLineLengthExceededTests`, `ProducerTests`), plus the
//! boundary table of the behaviour reference, on a `StringTransport`.

use std::rc::Rc;
use std::time::Duration;

use ropewalk_protocols::line::{LineControl, LineError, LineHandler, LineReceiver};
use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::testing::StringTransport;
use ropewalk_reactor::{ManualClock, Producer, Protocol};

/// Feeds `data` in chunks of `size` bytes.
fn feed<P: Protocol>(p: &mut P, data: &[u8], size: usize) {
    for chunk in data.chunks(size) {
        p.data_received(chunk).unwrap();
    }
}

/// Twisted's `LineTester`: delimiter `\n`, `MAX_LENGTH` 64, and commands in the lines.
#[derive(Default)]
struct LineTester {
    clock: Option<ManualClock>,
    received: Vec<Vec<u8>>,
    length: usize,
}

const TESTER_MAX: usize = 64;

fn line_tester(clock: Option<ManualClock>) -> LineReceiver<LineTester> {
    LineReceiver::new(LineTester {
        clock,
        ..LineTester::default()
    })
    .with_delimiter(b"\n")
    .with_max_length(TESTER_MAX)
}

impl LineTester {
    fn resume_soon(&self, ctl: &LineControl<'_>) {
        let handle = ctl.pause_handle();
        self.clock
            .as_ref()
            .expect("a clock")
            .call_later(Duration::ZERO, move || handle.resume());
    }
}

impl LineHandler for LineTester {
    fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
        self.received.push(line.to_vec());
        if line.is_empty() {
            ctl.set_raw_mode();
        } else if line == b"pause" {
            ctl.pause();
            self.resume_soon(ctl);
        } else if line == b"rawpause" {
            ctl.pause();
            ctl.set_raw_mode();
            self.received.push(Vec::new());
            self.resume_soon(ctl);
        } else if line == b"stop" {
            ctl.stop();
        } else if let Some(n) = line.strip_prefix(b"len ") {
            self.length = std::str::from_utf8(n).unwrap().parse().unwrap();
        } else if line.starts_with(b"produce") {
            let producer: Rc<dyn Producer> = Rc::new(ctl.pause_handle());
            ctl.transport().unwrap().register_producer(producer, false);
        } else if line.starts_with(b"unproduce") {
            ctl.transport().unwrap().unregister_producer();
        }
        Ok(())
    }

    fn raw_data_received(&mut self, data: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
        let n = data.len().min(self.length);
        self.length -= n;
        self.received
            .last_mut()
            .unwrap()
            .extend_from_slice(&data[..n]);
        if self.length == 0 {
            ctl.set_line_mode(&data[n..]);
        }
        Ok(())
    }

    fn line_length_exceeded(
        &mut self,
        data: &[u8],
        ctl: &mut LineControl<'_>,
    ) -> Result<(), Failure> {
        if data.len() > TESTER_MAX + 1 {
            ctl.set_line_mode(&data[TESTER_MAX + 1..]);
        }
        Ok(())
    }
}

fn lines(v: &[&[u8]]) -> Vec<Vec<u8>> {
    v.iter().map(|l| l.to_vec()).collect()
}

const BUFFER: &[u8] = b"len 10\n\n0123456789len 5\n\n1234\nlen 20\nfoo 123\n\n0123456789\n012345678len 0\nfoo 5\n\n1234567890123456789012345678901234567890123456789012345678901234567890\nlen 1\n\na";

fn buffer_output() -> Vec<Vec<u8>> {
    lines(&[
        b"len 10",
        b"0123456789",
        b"len 5",
        b"1234\n",
        b"len 20",
        b"foo 123",
        b"0123456789\n012345678",
        b"len 0",
        b"foo 5",
        b"",
        b"67890",
        b"len 1",
        b"a",
    ])
}

/// Twisted: LineReceiverTests.test_buffer
#[test]
fn buffer_in_every_packet_size() {
    for size in 1..10 {
        let mut p = line_tester(None);
        StringTransport::connect(&mut p);
        feed(&mut p, BUFFER, size);
        assert_eq!(p.handler().received, buffer_output(), "packet size {size}");
    }
    // And in one chunk.
    let mut p = line_tester(None);
    StringTransport::connect(&mut p);
    p.data_received(BUFFER).unwrap();
    assert_eq!(p.handler().received, buffer_output());
}

/// Twisted: LineReceiverTests.test_pausing
#[test]
fn pausing_holds_lines_until_resumed_from_a_timer() {
    let data = b"twiddle1\ntwiddle2\npause\ntwiddle3\n";
    for size in 1..10 {
        let clock = ManualClock::new();
        let mut p = line_tester(Some(clock.clone()));
        let t = StringTransport::connect(&mut p);
        feed(&mut p, data, size);
        assert_eq!(
            p.handler().received,
            lines(&[b"twiddle1", b"twiddle2", b"pause"])
        );
        assert!(t.is_reading_paused(), "pause stops the transport reading");
        clock.advance(Duration::ZERO);
        assert_eq!(
            p.handler().received,
            lines(&[b"twiddle1", b"twiddle2", b"pause", b"twiddle3"])
        );
        assert!(!t.is_reading_paused());
    }
}

/// Twisted: LineReceiverTests.test_rawPausing
#[test]
fn raw_pausing() {
    let data = b"twiddle1\ntwiddle2\nlen 5\nrawpause\n12345twiddle3\n";
    for size in 1..10 {
        let clock = ManualClock::new();
        let mut p = line_tester(Some(clock.clone()));
        StringTransport::connect(&mut p);
        feed(&mut p, data, size);
        assert_eq!(
            p.handler().received,
            lines(&[b"twiddle1", b"twiddle2", b"len 5", b"rawpause", b""])
        );
        clock.advance(Duration::ZERO);
        assert_eq!(
            p.handler().received,
            lines(&[
                b"twiddle1",
                b"twiddle2",
                b"len 5",
                b"rawpause",
                b"12345",
                b"twiddle3"
            ])
        );
    }
}

/// Twisted: LineReceiverTests.test_stopProducing
#[test]
fn stop_producing_delivers_nothing_more() {
    let data = b"twiddle1\ntwiddle2\nstop\nmore\nstuff\n";
    for size in 1..10 {
        let mut p = line_tester(None);
        let t = StringTransport::connect(&mut p);
        feed(&mut p, data, size);
        assert_eq!(
            p.handler().received,
            lines(&[b"twiddle1", b"twiddle2", b"stop"])
        );
        assert!(t.is_disconnecting());
        p.resume().unwrap();
        assert_eq!(p.handler().received.len(), 3);
    }
}

/// Twisted: LineReceiverTests.test_lineReceiverAsProducer
#[test]
fn line_receiver_as_producer() {
    let mut p = line_tester(None);
    let t = StringTransport::connect(&mut p);
    p.data_received(b"produce\nhello world\nunproduce\ngoodbye\n")
        .unwrap();
    assert_eq!(
        p.handler().received,
        lines(&[b"produce", b"hello world", b"unproduce", b"goodbye"])
    );
    assert!(t.producer().is_none());
}

/// Twisted: ProducerTests.test_pauseResume (through the `Producer` trait)
#[test]
fn pause_resume_as_a_producer() {
    #[derive(Default)]
    struct Recorder(Vec<Vec<u8>>);
    impl LineHandler for Recorder {
        fn line_received(&mut self, l: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
            self.0.push(l.to_vec());
            ctl.pause();
            Ok(())
        }
    }
    let mut p = LineReceiver::new(Recorder::default());
    let t = StringTransport::connect(&mut p);
    let producer: Rc<dyn Producer> = Rc::new(p.pause_handle());

    p.data_received(b"hello, ").unwrap();
    assert!(p.handler().0.is_empty());
    assert!(!p.is_paused());
    p.data_received(b"world\r\n").unwrap();
    assert_eq!(p.handler().0, lines(&[b"hello, world"]));
    assert!(p.is_paused() && t.is_reading_paused());

    producer.resume_producing();
    assert!(!p.is_paused() && !t.is_reading_paused());
    p.data_received(b"hello\r\nworld\r\n").unwrap();
    assert_eq!(p.handler().0, lines(&[b"hello, world", b"hello"]));
    assert!(p.is_paused());

    producer.resume_producing();
    assert_eq!(p.handler().0, lines(&[b"hello, world", b"hello", b"world"]));
    assert!(p.is_paused());

    producer.resume_producing();
    p.data_received(b"goodbye\r\n").unwrap();
    assert_eq!(p.handler().0.len(), 4);
    producer.stop_producing();
    assert!(t.is_disconnecting());
}

/// Twisted: LineReceiverTests.test_clearLineBuffer
#[test]
fn clear_line_buffer_from_line_received() {
    #[derive(Default)]
    struct Clearing {
        line: Vec<u8>,
        rest: Vec<u8>,
    }
    impl LineHandler for Clearing {
        fn line_received(&mut self, l: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
            self.line = l.to_vec();
            self.rest = ctl.clear_line_buffer();
            Ok(())
        }
    }
    let mut p = LineReceiver::new(Clearing::default());
    p.data_received(b"foo\r\nbar\r\nbaz").unwrap();
    assert_eq!(p.handler().line, b"foo");
    assert_eq!(p.handler().rest, b"bar\r\nbaz");
    p.data_received(b"quux\r\n").unwrap();
    assert_eq!(p.handler().line, b"quux");
    assert_eq!(p.handler().rest, b"");
}

/// Twisted: LineReceiverTests.test_stackRecursion — many more flips than Python's
/// recursion limit, in one chunk, and no recursion.
#[test]
fn mode_flips_do_not_recurse() {
    #[derive(Default)]
    struct Flipping(Vec<u8>);
    impl LineHandler for Flipping {
        fn line_received(&mut self, l: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
            self.0.extend_from_slice(l);
            ctl.set_raw_mode();
            Ok(())
        }
        fn raw_data_received(
            &mut self,
            d: &[u8],
            ctl: &mut LineControl<'_>,
        ) -> Result<(), Failure> {
            ctl.set_line_mode(&d[1..]);
            Ok(())
        }
    }
    let limit = 200_000;
    let mut p = LineReceiver::new(Flipping::default()).with_delimiter(b"\n");
    StringTransport::connect(&mut p);
    p.data_received(&b"x\nx".repeat(limit)).unwrap();
    assert_eq!(p.handler().0, vec![b'x'; limit]);
}

/// A handler that records everything.
#[derive(Default)]
struct Record {
    lines: Vec<Vec<u8>>,
    long: Vec<Vec<u8>>,
    close_on_long: bool,
}

impl LineHandler for Record {
    fn line_received(&mut self, l: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> {
        self.lines.push(l.to_vec());
        Ok(())
    }
    fn line_length_exceeded(&mut self, d: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
        self.long.push(d.to_vec());
        if self.close_on_long {
            ctl.lose_connection();
        }
        Ok(())
    }
}

struct Quiet;
impl LineHandler for Quiet {
    fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> {
        Ok(())
    }
}

/// Twisted: LineReceiverTests.test_maximumLineLength
#[test]
fn maximum_line_length_disconnects() {
    let mut p = LineReceiver::new(Quiet);
    let t = StringTransport::connect(&mut p);
    let mut data = vec![b'x'; p.max_length() + 1];
    data.extend_from_slice(b"\r\nr");
    p.data_received(&data).unwrap();
    assert!(t.is_disconnecting());
}

/// Twisted: LineReceiverTests.test_maximumLineLengthPartialDelimiter
#[test]
fn maximum_line_length_partial_delimiter() {
    let mut p = LineReceiver::new(Record::default())
        .with_delimiter(b"\n")
        .with_max_length(4);
    let t = StringTransport::connect(&mut p);
    p.data_received(b"xxx").unwrap();
    p.data_received(b"").unwrap();
    p.data_received(b"\nxxx").unwrap();
    assert!(!t.is_disconnecting());
    assert_eq!(p.handler().lines, lines(&[b"xxx"]));

    // The same with a two-byte delimiter split between chunks, the line exactly max.
    let mut p = LineReceiver::new(Record::default()).with_max_length(4);
    let t = StringTransport::connect(&mut p);
    p.data_received(b"xxxx").unwrap();
    p.data_received(b"\r").unwrap();
    p.data_received(b"\nxxxx").unwrap();
    assert!(!t.is_disconnecting());
    assert_eq!(p.handler().lines, lines(&[b"xxxx"]));
}

/// Twisted: LineReceiverTests.test_notQuiteMaximumLineLengthUnfinished
#[test]
fn not_quite_maximum_line_length_unfinished() {
    let mut p = LineReceiver::new(Quiet);
    let t = StringTransport::connect(&mut p);
    let mut data = vec![b'x'; p.max_length()];
    data.push(b'\r');
    p.data_received(&data).unwrap();
    assert!(!t.is_disconnecting());
}

/// Twisted: LineReceiverTests.test_rawDataError
#[test]
fn raw_data_error_is_returned() {
    struct Oops;
    impl LineHandler for Oops {
        fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> {
            Ok(())
        }
        fn raw_data_received(&mut self, _: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> {
            Err(Failure::msg("oops"))
        }
    }
    let mut p = LineReceiver::new(Oops);
    StringTransport::connect(&mut p);
    p.set_raw_mode();
    let err = p.data_received(b"data").unwrap_err();
    assert_eq!(err.to_string(), "oops");
}

/// Twisted: LineReceiverTests.test_rawDataReceivedNotImplemented
#[test]
fn raw_data_received_not_implemented() {
    let mut p = LineReceiver::new(Quiet);
    StringTransport::connect(&mut p);
    p.set_raw_mode();
    let err = p.data_received(b"foo").unwrap_err();
    assert!(err.is::<LineError>());
}

// Twisted: LineReceiverTests.test_lineReceivedNotImplemented has no port: `line_received`
// is a required trait method, so forgetting it does not compile.

fn catcher() -> (LineReceiver<Record>, Rc<StringTransport>) {
    let mut p = LineReceiver::new(Record::default()).with_max_length(6);
    let t = StringTransport::connect(&mut p);
    (p, t)
}

/// Twisted: LineReceiverLineLengthExceededTests.test_longUnendedLine
#[test]
fn long_unended_line() {
    let (mut p, _) = catcher();
    let excessive = vec![b'x'; 6 * 2 + 2];
    p.data_received(&excessive).unwrap();
    assert_eq!(p.handler().long, vec![excessive]);
}

/// Twisted: LineReceiverLineLengthExceededTests.test_longLineAfterShortLine
#[test]
fn long_line_after_short_line() {
    let (mut p, _) = catcher();
    let excessive = vec![b'x'; 6 * 2 + 2];
    let mut data = b"x\r\n".to_vec();
    data.extend_from_slice(&excessive);
    p.data_received(&data).unwrap();
    assert_eq!(p.handler().long, vec![excessive]);
    assert_eq!(p.handler().lines, lines(&[b"x"]));
}

/// Twisted: LineReceiverLineLengthExceededTests.test_longLineWithDelimiter
#[test]
fn long_line_with_delimiter() {
    let (mut p, _) = catcher();
    let long = vec![b'x'; 6 * 2 + 2];
    let excessive = [long.clone(), long].join(&b"\r\n"[..]);
    p.data_received(&excessive).unwrap();
    assert_eq!(p.handler().long, vec![excessive]);
}

/// Twisted: LineReceiverLineLengthExceededTests.test_multipleLongLines
#[test]
fn multiple_long_lines() {
    let (mut p, _) = catcher();
    let mut one = vec![b'x'; 6 * 2 + 2];
    one.extend_from_slice(b"\r\n");
    let excessive = one.repeat(2);
    p.data_received(&excessive).unwrap();
    assert_eq!(p.handler().long, vec![excessive]);
}

/// Twisted: LineReceiverLineLengthExceededTests.test_maximumLineLength
#[test]
fn line_length_exceeded_default_closes() {
    let mut p = LineReceiver::new(Quiet);
    let t = StringTransport::connect(&mut p);
    let mut data = vec![b'x'; DEFAULT_MAX + 1];
    data.extend_from_slice(b"\r\nr");
    p.data_received(&data).unwrap();
    assert!(t.is_disconnecting());
}

const DEFAULT_MAX: usize = ropewalk_protocols::line::DEFAULT_MAX_LENGTH;

/// Twisted: LineReceiverLineLengthExceededTests.test_maximumLineLengthRemaining
#[test]
fn maximum_line_length_remaining() {
    let mut p = LineReceiver::new(Quiet);
    let t = StringTransport::connect(&mut p);
    p.data_received(&vec![b'x'; DEFAULT_MAX + 2]).unwrap();
    assert!(t.is_disconnecting());
}

/// The boundary table of the behaviour reference (§3.1), `MAX_LENGTH` 8 and CRLF, in
/// every chunking.
#[test]
fn boundaries_at_max_length_8() {
    fn run(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let mut p = LineReceiver::new(Record::default()).with_max_length(8);
        StringTransport::connect(&mut p);
        for c in chunks {
            p.data_received(c).unwrap();
        }
        let h = p.handler();
        (h.lines.clone(), h.long.clone())
    }
    // An 8-byte line is delivered, in any chunking.
    for size in 1..=10 {
        let mut p = LineReceiver::new(Record::default()).with_max_length(8);
        StringTransport::connect(&mut p);
        feed(&mut p, b"12345678\r\n", size);
        assert_eq!(p.handler().lines, lines(&[b"12345678"]), "size {size}");
        assert!(p.handler().long.is_empty());
    }
    // A 9-byte line with its delimiter is exceeded, with the delimiter.
    assert_eq!(
        run(&[b"123456789\r\n"]),
        (vec![], lines(&[b"123456789\r\n"]))
    );
    // A 9-byte unfinished buffer waits (it may be 8 bytes and a `\r`); 10 bytes do not.
    assert_eq!(run(&[b"123456789"]), (vec![], vec![]));
    assert_eq!(run(&[b"1234567890"]), (vec![], lines(&[b"1234567890"])));
    // 8 bytes and `\r`, then `\n`: delivered, no false positive.
    assert_eq!(
        run(&[b"12345678\r", b"\n"]),
        (lines(&[b"12345678"]), vec![])
    );
}

/// The delimiter is exact: a bare `\n` is part of a CRLF line; empty lines are delivered.
#[test]
fn delimiter_is_exact_and_empty_lines_count() {
    let mut p = LineReceiver::new(Record::default());
    StringTransport::connect(&mut p);
    p.data_received(b"a\nb\r\n\r\n").unwrap();
    assert_eq!(p.handler().lines, lines(&[b"a\nb", b""]));
}

/// Lines after the one that closed the connection, in the same packet, are dropped.
#[test]
fn lines_after_disconnect_are_dropped() {
    #[derive(Default)]
    struct Quit(Vec<Vec<u8>>);
    impl LineHandler for Quit {
        fn line_received(&mut self, l: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
            self.0.push(l.to_vec());
            if l == b"quit" {
                ctl.lose_connection();
            }
            Ok(())
        }
    }
    for size in [1, 3, 100] {
        let mut p = LineReceiver::new(Quit::default());
        let t = StringTransport::connect(&mut p);
        feed(&mut p, b"a\r\nquit\r\nb\r\nc\r\n", size);
        assert!(t.is_disconnecting());
        assert_eq!(p.handler().0, lines(&[b"a", b"quit"]), "size {size}");
    }
}

/// The raw/line switch in one packet (reference §3.1): `raw\r\nRAWDATA|x\r\ny\r\n`.
#[test]
fn raw_and_line_switch_in_one_packet() {
    #[derive(Default)]
    struct Switch {
        lines: Vec<Vec<u8>>,
        raw: Vec<Vec<u8>>,
    }
    impl LineHandler for Switch {
        fn line_received(&mut self, l: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
            self.lines.push(l.to_vec());
            if l == b"raw" {
                ctl.set_raw_mode();
            }
            Ok(())
        }
        fn raw_data_received(
            &mut self,
            d: &[u8],
            ctl: &mut LineControl<'_>,
        ) -> Result<(), Failure> {
            match d.iter().position(|&b| b == b'|') {
                Some(i) => {
                    self.raw.push(d[..i].to_vec());
                    ctl.set_line_mode(&d[i + 1..]);
                }
                None => self.raw.push(d.to_vec()),
            }
            Ok(())
        }
    }
    let mut p = LineReceiver::new(Switch::default());
    StringTransport::connect(&mut p);
    p.data_received(b"raw\r\nRAWDATA|x\r\ny\r\n").unwrap();
    assert_eq!(p.handler().lines, lines(&[b"raw", b"x", b"y"]));
    assert_eq!(p.handler().raw, lines(&[b"RAWDATA"]));
}

/// `send_line` writes the line and the delimiter in one write.
#[test]
fn send_line_writes_once() {
    let p = LineReceiver::new(Quiet).with_delimiter(b"\n");
    let mut p = p;
    let t = StringTransport::connect(&mut p);
    p.send_line(b"hello");
    assert_eq!(t.value(), b"hello\n");
    assert_eq!(t.write_calls(), 1);
}

/// A failure in a delivery started by a `PauseHandle` aborts the connection, and
/// `connection_lost` receives that failure.
#[test]
fn failure_on_resume_reaches_connection_lost() {
    #[derive(Default)]
    struct Picky {
        lost: Option<String>,
    }
    impl LineHandler for Picky {
        fn line_received(&mut self, l: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
            if l == b"bad" {
                return Err(Failure::msg("bad line"));
            }
            ctl.pause();
            Ok(())
        }
        fn connection_lost(&mut self, reason: Failure) {
            self.lost = Some(reason.to_string());
        }
    }
    let mut p = LineReceiver::new(Picky::default());
    let t = StringTransport::connect(&mut p);
    p.data_received(b"ok\r\nbad\r\n").unwrap();
    p.pause_handle().resume();
    assert!(t.was_aborted());
    p.connection_lost(Failure::msg("aborted"));
    assert_eq!(p.handler().lost.as_deref(), Some("bad line"));
}

/// Resuming from inside a callback with a handle only lets the running loop go on.
#[test]
fn handle_resume_inside_a_callback() {
    #[derive(Default)]
    struct Both(usize);
    impl LineHandler for Both {
        fn line_received(&mut self, _: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
            self.0 += 1;
            let h = ctl.pause_handle();
            h.pause();
            h.resume();
            Ok(())
        }
    }
    let mut p = LineReceiver::new(Both::default());
    StringTransport::connect(&mut p);
    p.data_received(b"1\r\n2\r\n3\r\n").unwrap();
    assert_eq!(p.handler().0, 3);
}

/// Any chunking gives the lines one chunk gives, with a self-overlapping delimiter.
#[test]
fn chunking_does_not_change_lines() {
    let data = b"xabababyababzzabaabab\r\nabababab".repeat(7);
    let one = {
        let mut p = LineReceiver::new(Record::default()).with_delimiter(b"abab");
        p.data_received(&data).unwrap();
        let lines = p.handler().lines.clone();
        lines
    };
    assert!(!one.is_empty());
    let mut seed = 7u32;
    for _ in 0..200 {
        let mut p = LineReceiver::new(Record::default()).with_delimiter(b"abab");
        let mut rest = &data[..];
        while !rest.is_empty() {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let n = (seed >> 16) as usize % 6 + 1;
            let (c, r) = rest.split_at(n.min(rest.len()));
            p.data_received(c).unwrap();
            rest = r;
        }
        assert_eq!(p.handler().lines, one);
    }
}
