//! Generated streams for the line receivers: lines, raw blocks announced by a line
//! (`DATA n`, then n bytes of anything, then line mode again with what follows), empty
//! lines, lone CRs and LFs, and the odd line past the length limit; each stream fed in one
//! read, a byte per read and in random pieces. Deterministic (fixed seeds).
//!
//! What the handler sees — every line, every raw block, and the point where a line was too
//! long — must be the same however the stream is split. (What `line_length_exceeded` is
//! handed is everything buffered at that moment, which Twisted also lets depend on the
//! reads; only that it happened, and where, is compared.)
//!
//! Twisted: `LineReceiverTests.test_buffer`, `test_rawMode`, `test_maximumLineLength…`
//! (protocols/test/test_basic.py) check fixed splittings of fixed streams; this checks the
//! same invariance over many generated ones.

use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::testing::StringTransport;
use ropewalk_reactor::Protocol;
use ropewalk_testkit::chaos::Rng;

const MAX: usize = 64;

#[derive(Debug, Clone, PartialEq)]
enum Event {
    Line(Vec<u8>),
    Blob(Vec<u8>),
    TooLong,
}

/// Lines; `DATA n` switches to raw mode for n bytes.
#[derive(Default)]
struct Recorder {
    events: Vec<Event>,
    want: usize,
    blob: Vec<u8>,
}

impl LineHandler for Recorder {
    fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
        self.events.push(Event::Line(line.to_vec()));
        if let Some(n) = line.strip_prefix(b"DATA ") {
            if let Some(n) = std::str::from_utf8(n).ok().and_then(|n| n.parse().ok()) {
                self.want = n;
                ctl.set_raw_mode();
            }
        }
        Ok(())
    }

    fn raw_data_received(&mut self, data: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
        let n = data.len().min(self.want);
        self.blob.extend_from_slice(&data[..n]);
        self.want -= n;
        if self.want == 0 {
            self.events
                .push(Event::Blob(std::mem::take(&mut self.blob)));
            ctl.set_line_mode(&data[n..]);
        }
        Ok(())
    }

    fn line_length_exceeded(
        &mut self,
        _data: &[u8],
        ctl: &mut LineControl<'_>,
    ) -> Result<(), Failure> {
        self.events.push(Event::TooLong);
        ctl.lose_connection();
        Ok(())
    }
}

#[derive(Default)]
struct LinesOnly {
    events: Vec<Event>,
}

impl LineOnlyHandler for LinesOnly {
    fn line_received(
        &mut self,
        line: &[u8],
        _ctl: &mut LineOnlyControl<'_>,
    ) -> Result<(), Failure> {
        self.events.push(Event::Line(line.to_vec()));
        Ok(())
    }

    fn line_length_exceeded(
        &mut self,
        _line: &[u8],
        ctl: &mut LineOnlyControl<'_>,
    ) -> Result<(), Failure> {
        self.events.push(Event::TooLong);
        ctl.lose_connection();
        Ok(())
    }
}

/// A stream of lines, raw blocks and noise.
fn stream(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..1 + rng.below(40) {
        match rng.below(10) {
            0..=4 => {
                // A line of printable bytes, sometimes with a lone CR or LF inside.
                for _ in 0..rng.below(MAX) {
                    out.push(match rng.below(30) {
                        0 => b'\r',
                        1 => b'\n',
                        _ => b' ' + rng.below(95) as u8,
                    });
                }
                out.extend_from_slice(b"\r\n");
            }
            5 => out.extend_from_slice(b"\r\n"),
            6..=8 => {
                // A raw block of anything, CRLFs included.
                let n = rng.below(3 * MAX);
                out.extend_from_slice(format!("DATA {n}\r\n").as_bytes());
                out.extend((0..n).map(|_| [b'\r', b'\n', rng.next() as u8][rng.below(3)]));
            }
            _ => {
                if rng.chance(30) {
                    // Too long: past the limit, with or without its delimiter.
                    out.extend(std::iter::repeat_n(b'x', MAX + 1 + rng.below(MAX)));
                    if rng.chance(50) {
                        out.extend_from_slice(b"\r\n");
                    }
                }
            }
        }
    }
    out
}

/// Cut points for one split of `len` bytes.
fn splits(rng: &mut Rng, len: usize) -> Vec<Vec<usize>> {
    let mut random: Vec<usize> = (0..rng.below(12)).map(|_| rng.below(len.max(1))).collect();
    random.sort_unstable();
    vec![Vec::new(), (1..len).collect(), random]
}

fn feed<P: Protocol>(p: &mut P, input: &[u8], cuts: &[usize]) {
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&input.len())) {
        if to > from {
            // After a close the receiver takes nothing more; an error here is that close.
            let _ = p.data_received(&input[from..to]);
            from = to;
        }
    }
}

fn line_receiver_events(input: &[u8], cuts: &[usize]) -> Vec<Event> {
    let mut p = LineReceiver::new(Recorder::default()).with_max_length(MAX);
    let _t = StringTransport::connect(&mut p);
    feed(&mut p, input, cuts);
    let events = p.handler().events.clone();
    events
}

fn line_only_events(input: &[u8], cuts: &[usize]) -> Vec<Event> {
    let mut p = LineOnlyReceiver::new(LinesOnly::default()).with_max_length(MAX);
    let _t = StringTransport::connect(&mut p);
    feed(&mut p, input, cuts);
    let events = p.handler().events.clone();
    events
}

fn check(seed: u64, cases: usize, events: fn(&[u8], &[usize]) -> Vec<Event>) {
    let mut rng = Rng(seed);
    for case in 0..cases {
        let input = stream(&mut rng);
        let cuts = splits(&mut rng, input.len());
        let whole = events(&input, &cuts[0]);
        for (how, cuts) in [("a byte per read", &cuts[1]), ("random pieces", &cuts[2])] {
            let split = events(&input, cuts);
            assert_eq!(
                split,
                whole,
                "seed {seed:#x} case {case}, {how} (cuts {cuts:?}) differs from one read; input {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
}

#[test]
fn line_receiver_sees_the_same_however_split() {
    check(0x2545_f491_4f6c_dd1d, 600, line_receiver_events);
}

#[test]
fn line_only_receiver_sees_the_same_however_split() {
    check(0x9e37_79b9_7f4a_7c15, 600, line_only_events);
}

/// The generator makes what it should: raw blocks and too-long lines do occur.
#[test]
fn the_streams_cover_raw_blocks_and_long_lines() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut blobs, mut long) = (0, 0);
    for _ in 0..600 {
        let input = stream(&mut rng);
        let events = line_receiver_events(&input, &[]);
        blobs += events
            .iter()
            .filter(|e| matches!(e, Event::Blob(_)))
            .count();
        long += events.iter().filter(|e| **e == Event::TooLong).count();
    }
    assert!(blobs > 100 && long > 20, "{blobs} blobs, {long} long lines");
}
