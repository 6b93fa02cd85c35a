//! `LineOnlyReceiver`, ported from Twisted's `protocols/test/test_basic.py`
//! (`LineOnlyReceiverTests`), plus the partial-delimiter case Twisted gets wrong.

use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::testing::StringTransport;
use ropewalk_reactor::Protocol;

/// Twisted's `LineOnlyTester`: records lines; here it records long lines too.
#[derive(Default)]
struct Tester {
    received: Vec<Vec<u8>>,
    long: Vec<Vec<u8>>,
    close: bool,
}

impl LineOnlyHandler for Tester {
    fn line_received(&mut self, l: &[u8], ctl: &mut LineOnlyControl<'_>) -> Result<(), Failure> {
        self.received.push(l.to_vec());
        if l == b"quit" {
            ctl.lose_connection();
        }
        Ok(())
    }
    fn line_length_exceeded(
        &mut self,
        l: &[u8],
        ctl: &mut LineOnlyControl<'_>,
    ) -> Result<(), Failure> {
        self.long.push(l.to_vec());
        if self.close {
            ctl.lose_connection();
        }
        Ok(())
    }
}

fn tester() -> LineOnlyReceiver<Tester> {
    LineOnlyReceiver::new(Tester {
        close: true,
        ..Tester::default()
    })
    .with_delimiter(b"\n")
    .with_max_length(64)
}

/// Twisted: LineOnlyReceiverTests.test_buffer
#[test]
fn buffer_byte_at_a_time() {
    let buffer: &[u8] = b"foo\n    bleakness\n    desolation\n    plastic forks\n    ";
    let mut p = tester();
    StringTransport::connect(&mut p);
    for b in buffer {
        p.data_received(std::slice::from_ref(b)).unwrap();
    }
    let mut expected: Vec<Vec<u8>> = buffer.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    expected.pop();
    assert_eq!(p.handler().received, expected);
    // In one chunk, too.
    let mut p = tester();
    StringTransport::connect(&mut p);
    p.data_received(buffer).unwrap();
    assert_eq!(p.handler().received, expected);
}

/// Twisted: LineOnlyReceiverTests.test_greaterThanMaximumLineLength
#[test]
fn greater_than_maximum_line_length() {
    let mut p = tester();
    let t = StringTransport::connect(&mut p);
    let mut data = vec![b'x'; 64 + 1 + 1];
    data.extend_from_slice(b"\r\nr");
    p.data_received(&data).unwrap();
    assert!(t.is_disconnecting());
}

// Twisted: LineOnlyReceiverTests.test_lineReceivedNotImplemented has no port:
// `line_received` is a required trait method.

/// The case Twisted's `LineOnlyReceiver` gets wrong (reference §3.2): a line of exactly
/// `max_length` bytes whose `\r` ends one chunk and `\n` starts the next is delivered, not
/// exceeded with `b"12345678\r"`. (Twisted: LineReceiverTests.test_maximumLineLengthPartialDelimiter,
/// which only `LineReceiver` passes there.)
#[test]
fn maximum_line_length_partial_delimiter() {
    let mut p = LineOnlyReceiver::new(Tester::default()).with_max_length(8);
    let t = StringTransport::connect(&mut p);
    p.data_received(b"12345678\r").unwrap();
    p.data_received(b"\n12345678").unwrap();
    assert!(!t.is_disconnecting());
    assert!(p.handler().long.is_empty());
    assert_eq!(p.handler().received, vec![b"12345678".to_vec()]);
}

/// Stricter than `LineReceiver` on unfinished lines (reference §3.2): 9 bytes that cannot
/// end within 8 are exceeded at once; a complete long line is passed alone.
#[test]
fn boundaries_at_max_length_8() {
    let run = |chunks: &[&[u8]]| {
        let mut p = LineOnlyReceiver::new(Tester::default()).with_max_length(8);
        StringTransport::connect(&mut p);
        for c in chunks {
            p.data_received(c).unwrap();
        }
        (p.handler().received.clone(), p.handler().long.clone())
    };
    assert_eq!(
        run(&[b"12345678\r\n"]),
        (vec![b"12345678".to_vec()], vec![])
    );
    assert_eq!(run(&[b"123456789"]), (vec![], vec![b"123456789".to_vec()]));
    assert_eq!(run(&[b"12345678\r"]), (vec![], vec![]));
    assert_eq!(
        run(&[b"ok\r\n123456789\r\nnext\r\n"]),
        (vec![b"ok".to_vec()], vec![b"123456789".to_vec()])
    );
    for size in 1..=10 {
        let mut p = LineOnlyReceiver::new(Tester::default()).with_max_length(8);
        StringTransport::connect(&mut p);
        for c in b"12345678\r\nabc\r\n".chunks(size) {
            p.data_received(c).unwrap();
        }
        assert_eq!(
            p.handler().received,
            vec![b"12345678".to_vec(), b"abc".to_vec()]
        );
        assert!(p.handler().long.is_empty(), "size {size}");
    }
}

/// Lines after a disconnect in the same packet are dropped (Twisted's `LineOnlyReceiver`
/// checks `transport.disconnecting` before each line).
#[test]
fn lines_after_disconnect_are_dropped() {
    let mut p = tester();
    let t = StringTransport::connect(&mut p);
    p.data_received(b"a\nquit\nb\nc\n").unwrap();
    assert!(t.is_disconnecting());
    assert_eq!(p.handler().received, vec![b"a".to_vec(), b"quit".to_vec()]);
}

/// A failing `line_received` stops the chunk and is returned.
#[test]
fn line_received_error_is_returned() {
    struct Fails;
    impl LineOnlyHandler for Fails {
        fn line_received(&mut self, _: &[u8], _: &mut LineOnlyControl<'_>) -> Result<(), Failure> {
            Err(Failure::msg("no"))
        }
    }
    let mut p = LineOnlyReceiver::new(Fails);
    StringTransport::connect(&mut p);
    assert_eq!(
        p.data_received(b"x\r\ny\r\n").unwrap_err().to_string(),
        "no"
    );
}

/// `send_line` is one write of the line and the delimiter.
#[test]
fn send_line_is_one_write() {
    let mut p = tester();
    let t = StringTransport::connect(&mut p);
    p.send_line(b"hi");
    assert_eq!(t.value(), b"hi\n");
    assert_eq!(t.write_calls(), 1);
}

/// Any chunking gives the lines one chunk gives, with a self-overlapping delimiter.
#[test]
fn chunking_does_not_change_lines() {
    let data = b"xabababyababzzabaabab\r\nabababab".repeat(7);
    let one = {
        let mut p = LineOnlyReceiver::new(Tester::default()).with_delimiter(b"abab");
        p.data_received(&data).unwrap();
        p.handler().received.clone()
    };
    assert!(!one.is_empty());
    let mut seed = 11u32;
    for _ in 0..200 {
        let mut p = LineOnlyReceiver::new(Tester::default()).with_delimiter(b"abab");
        let mut rest = &data[..];
        while !rest.is_empty() {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let n = (seed >> 16) as usize % 6 + 1;
            let (c, r) = rest.split_at(n.min(rest.len()));
            p.data_received(c).unwrap();
            rest = r;
        }
        assert_eq!(p.handler().received, one);
    }
}
