//! Every line and framing receiver, in each of its modes, fed arbitrary bytes in
//! arbitrary chunks, against a reference model that reads the whole stream at once:
//! the same messages, in the same order, and the same end.
//!
//! The handlers obey a few commands so that modes and control paths are reached: a
//! message `C` closes the connection, `E` fails, `P` pauses (the harness resumes after
//! each chunk), and, for `LineReceiver`, `R<n>` switches to raw mode for `n` bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ropewalk_protocols::framing::{
    FramingError, IntNStringReceiver, NetstringReceiver, Prefix, StringControl, StringHandler,
};
use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
use ropewalk_protocols::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::testing::StringTransport;
use ropewalk_reactor::Protocol;

#[path = "split.rs"]
mod split;

/// What a receiver delivered.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Msg(Vec<u8>),
    /// Raw bytes (consecutive deliveries joined).
    Raw(Vec<u8>),
    TooLong,
    Closed,
    Failed,
    Refused(FramingError),
}

#[derive(Debug)]
struct Fail;
impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("E")
    }
}
impl std::error::Error for Fail {}

/// A message's command, if it is one.
enum Cmd {
    Close,
    Fail,
    Pause,
    Raw(usize),
    None,
}

fn cmd(m: &[u8], raw_allowed: bool) -> Cmd {
    match m {
        b"C" => Cmd::Close,
        b"E" => Cmd::Fail,
        b"P" => Cmd::Pause,
        [b'R', d @ b'1'..=b'9'] if raw_allowed => Cmd::Raw(usize::from(d - b'0')),
        _ => Cmd::None,
    }
}

#[derive(Default)]
struct Rec {
    events: Vec<Event>,
    raw_left: usize,
}

impl Rec {
    fn raw(&mut self, data: &[u8]) {
        if let Some(Event::Raw(r)) = self.events.last_mut() {
            r.extend_from_slice(data);
        } else {
            self.events.push(Event::Raw(data.to_vec()));
        }
    }
}

impl LineHandler for Rec {
    fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
        self.events.push(Event::Msg(line.to_vec()));
        match cmd(line, true) {
            Cmd::Close => ctl.lose_connection(),
            Cmd::Fail => return Err(Failure::new(Fail)),
            Cmd::Pause => ctl.pause(),
            Cmd::Raw(n) => {
                self.raw_left = n;
                ctl.set_raw_mode();
            }
            Cmd::None => {}
        }
        Ok(())
    }
    fn raw_data_received(&mut self, data: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
        let n = data.len().min(self.raw_left);
        self.raw(&data[..n]);
        self.raw_left -= n;
        if self.raw_left == 0 {
            ctl.set_line_mode(&data[n..]);
        }
        Ok(())
    }
    fn line_length_exceeded(&mut self, _: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
        self.too_long(|| ctl.lose_connection())
    }
}

impl Rec {
    /// A message for a receiver with no modes: recorded; `C` closes (through `close`),
    /// `E` fails.
    fn simple(&mut self, m: &[u8], close: impl FnOnce()) -> Result<(), Failure> {
        self.events.push(Event::Msg(m.to_vec()));
        match cmd(m, false) {
            Cmd::Close => close(),
            Cmd::Fail => return Err(Failure::new(Fail)),
            _ => {}
        }
        Ok(())
    }

    /// Over the limit: recorded, and the connection closed (through `close`).
    fn too_long(&mut self, close: impl FnOnce()) -> Result<(), Failure> {
        self.events.push(Event::TooLong);
        close();
        Ok(())
    }
}

impl LineOnlyHandler for Rec {
    fn line_received(&mut self, line: &[u8], ctl: &mut LineOnlyControl<'_>) -> Result<(), Failure> {
        self.simple(line, || ctl.lose_connection())
    }
    fn line_length_exceeded(
        &mut self,
        _: &[u8],
        ctl: &mut LineOnlyControl<'_>,
    ) -> Result<(), Failure> {
        self.too_long(|| ctl.lose_connection())
    }
}

impl StringHandler for Rec {
    fn string_received(&mut self, s: &[u8], ctl: &mut StringControl<'_>) -> Result<(), Failure> {
        self.simple(s, || ctl.lose_connection())
    }
    fn length_limit_exceeded(
        &mut self,
        _: usize,
        ctl: &mut StringControl<'_>,
    ) -> Result<(), Failure> {
        self.too_long(|| ctl.lose_connection())
    }
}

/// The receiver under test, in one of its modes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Line,
    LineOnly,
    IntN(Prefix),
    Netstring,
}

const DELIMITERS: [&[u8]; 4] = [b"\r\n", b"\n", b"aa", b"\r\n\r\n"];

/// Feeds the chunks as a transport would (nothing after a close or a failure), resuming
/// a paused receiver after each chunk; the events, then `Closed` / `Failed`.
fn run(kind: Kind, delimiter: &[u8], max: usize, chunks: &[&[u8]]) -> Vec<Event> {
    macro_rules! drive {
        ($p:expr, $resume:expr) => {{
            let mut p = $p;
            let t = StringTransport::connect(&mut p);
            let mut failed = false;
            for chunk in chunks {
                if t.is_disconnecting() {
                    break;
                }
                if p.data_received(chunk).is_err() {
                    failed = true;
                    break;
                }
                #[allow(clippy::redundant_closure_call)]
                if ($resume)(&mut p).is_err() {
                    failed = true;
                    break;
                }
            }
            (p, failed, t.is_disconnecting())
        }};
    }
    let (mut events, failed, closed, refused) = match kind {
        Kind::Line => {
            let (p, failed, closed) = drive!(
                LineReceiver::new(Rec::default())
                    .with_delimiter(delimiter)
                    .with_max_length(max),
                |p: &mut LineReceiver<Rec>| {
                    // A held `P` pauses again: resume until the held lines are through.
                    for _ in 0..=chunks.iter().map(|c| c.len()).sum::<usize>() {
                        if !p.is_paused() {
                            break;
                        }
                        p.resume()?;
                    }
                    Ok::<(), Failure>(())
                }
            );
            let events = p.handler().events.clone();
            (events, failed, closed, None)
        }
        Kind::LineOnly => {
            let (p, failed, closed) = drive!(
                LineOnlyReceiver::new(Rec::default())
                    .with_delimiter(delimiter)
                    .with_max_length(max),
                no_resume
            );
            (p.handler().events.clone(), failed, closed, None)
        }
        Kind::IntN(prefix) => {
            let (p, failed, closed) = drive!(
                IntNStringReceiver::new(prefix, Rec::default()).with_max_length(max),
                no_resume
            );
            (p.handler().events.clone(), failed, closed, None)
        }
        Kind::Netstring => {
            let (p, failed, closed) = drive!(
                NetstringReceiver::new(Rec::default()).with_max_length(max),
                no_resume
            );
            (
                p.handler().events.clone(),
                failed,
                closed,
                p.error().cloned(),
            )
        }
    };
    if let Some(e) = refused {
        events.push(Event::Refused(e));
    }
    if failed {
        events.push(Event::Failed);
    } else if closed {
        events.push(Event::Closed);
    }
    events
}

/// The receivers that cannot pause need no resuming.
fn no_resume<P>(_: &mut P) -> Result<(), Failure> {
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads a message's command into the model's events; `true` to stop.
fn model_cmd(events: &mut Vec<Event>, m: &[u8], raw: &mut usize, raw_allowed: bool) -> bool {
    events.push(Event::Msg(m.to_vec()));
    match cmd(m, raw_allowed) {
        Cmd::Close => {
            events.push(Event::Closed);
            true
        }
        Cmd::Fail => {
            events.push(Event::Failed);
            true
        }
        Cmd::Raw(n) => {
            *raw = n;
            false
        }
        Cmd::Pause | Cmd::None => false,
    }
}

fn model(kind: Kind, delimiter: &[u8], max: usize, s: &[u8]) -> Vec<Event> {
    let mut ev = Vec::new();
    let mut pos = 0;
    let mut raw = 0;
    let too_long = |ev: &mut Vec<Event>| {
        ev.push(Event::TooLong);
        ev.push(Event::Closed);
    };
    match kind {
        Kind::Line => loop {
            if raw > 0 {
                let n = raw.min(s.len() - pos);
                if n == 0 {
                    break;
                }
                match ev.last_mut() {
                    Some(Event::Raw(r)) => r.extend_from_slice(&s[pos..pos + n]),
                    _ => ev.push(Event::Raw(s[pos..pos + n].to_vec())),
                }
                pos += n;
                raw -= n;
                continue;
            }
            match find(&s[pos..], delimiter) {
                Some(i) if i <= max => {
                    let stop = model_cmd(&mut ev, &s[pos..pos + i], &mut raw, true);
                    pos += i + delimiter.len();
                    if stop {
                        break;
                    }
                }
                Some(_) => {
                    too_long(&mut ev);
                    break;
                }
                // An unfinished line is too long once max + delimiter bytes wait.
                None if s.len() - pos >= max + delimiter.len() => {
                    too_long(&mut ev);
                    break;
                }
                None => break,
            }
        },
        Kind::LineOnly => loop {
            match find(&s[pos..], delimiter) {
                Some(i) if i <= max => {
                    let stop = model_cmd(&mut ev, &s[pos..pos + i], &mut raw, false);
                    pos += i + delimiter.len();
                    if stop {
                        break;
                    }
                }
                Some(_) => {
                    too_long(&mut ev);
                    break;
                }
                None => {
                    // Too long once no end at `k <= max` is still possible: the bytes
                    // from `k` would have to be the start of the delimiter.
                    let tail = &s[pos..];
                    let can_end = (0..=max.min(tail.len())).any(|k| {
                        tail.len() - k < delimiter.len() && delimiter.starts_with(&tail[k..])
                    });
                    if !can_end {
                        too_long(&mut ev);
                    }
                    break;
                }
            }
        },
        Kind::IntN(prefix) => {
            let plen = prefix.len();
            while s.len() - pos >= plen {
                let len = s[pos..pos + plen]
                    .iter()
                    .fold(0usize, |n, &b| n << 8 | usize::from(b));
                if len > max {
                    too_long(&mut ev);
                    break;
                }
                if s.len() - pos - plen < len {
                    break;
                }
                let m = &s[pos + plen..pos + plen + len];
                pos += plen + len;
                if model_cmd(&mut ev, m, &mut raw, false) {
                    break;
                }
            }
        }
        Kind::Netstring => {
            let refuse = |ev: &mut Vec<Event>, e| {
                ev.push(Event::Refused(e));
                ev.push(Event::Closed);
            };
            'strings: while pos < s.len() {
                // <digits>: with no leading zero and a value <= max.
                let digits = s[pos..].iter().take_while(|c| c.is_ascii_digit()).count();
                let mut value: u128 = 0;
                for (k, &c) in s[pos..pos + digits].iter().enumerate() {
                    if k == 1 && s[pos] == b'0' {
                        refuse(&mut ev, FramingError::BadLength);
                        break 'strings;
                    }
                    value = value * 10 + u128::from(c - b'0');
                    if value > max as u128 {
                        refuse(&mut ev, FramingError::TooLong { max });
                        break 'strings;
                    }
                }
                let after = pos + digits;
                if after == s.len() {
                    break;
                }
                if s[after] != b':' || digits == 0 {
                    refuse(&mut ev, FramingError::BadLength);
                    break;
                }
                let len = value as usize;
                let start = after + 1;
                if s.len() - start <= len {
                    break;
                }
                if s[start + len] != b',' {
                    refuse(&mut ev, FramingError::MissingComma);
                    break;
                }
                pos = start + len + 1;
                if model_cmd(&mut ev, &s[start..start + len], &mut raw, false) {
                    break;
                }
            }
        }
    }
    ev
}

fuzz_target!(|data: &[u8]| {
    let (ctl, input) = split::steer(data, 6);
    let seed = u32::from_le_bytes([ctl[0], ctl[1], ctl[2], ctl[3]]);
    let kind = match ctl[4] % 6 {
        0 => Kind::Line,
        1 => Kind::LineOnly,
        2 => Kind::IntN(Prefix::U8),
        3 => Kind::IntN(Prefix::U16),
        4 => Kind::IntN(Prefix::U32),
        _ => Kind::Netstring,
    };
    let delimiter = DELIMITERS[usize::from(ctl[4] / 6) % DELIMITERS.len()];
    let max = usize::from(ctl[5] % 64);
    let want = model(kind, delimiter, max, input);
    let whole = run(kind, delimiter, max, &[input]);
    let split = run(kind, delimiter, max, &split::cut(input, seed));
    let shown = String::from_utf8_lossy(input);
    let d = String::from_utf8_lossy(delimiter);
    assert_eq!(
        whole, want,
        "{kind:?} {d:?} max {max}, whole; input {shown:?}"
    );
    assert_eq!(
        split, want,
        "{kind:?} {d:?} max {max}, split; input {shown:?}"
    );
});
