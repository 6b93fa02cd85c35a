//! The chunked decoder, fed arbitrary bytes whole and in arbitrary chunks, against a
//! reference decoder written from RFC 9112 §7.1 as plainly as possible: the same body,
//! the same end, the same bytes used, or the same refusal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ropewalk_protocols::http::fuzzing::ChunkedDecoder;

#[path = "split.rs"]
mod split;

/// The longest chunk-size line, and the most trailer bytes, the decoder accepts.
const MAX_LINE: usize = 1024;
const MAX_TRAILERS: usize = 64 * 1024;

/// What decoding came to: the body so far, whether the last chunk and trailers were
/// read, and how many bytes were used; or the refusal's status.
type Decoded = Result<(Vec<u8>, bool, usize), u16>;

fn real(chunks: &[&[u8]], max_body: u64) -> Decoded {
    let mut d = ChunkedDecoder::new(max_body);
    let mut held = Vec::new();
    let mut body = Vec::new();
    let mut used = 0;
    for chunk in chunks {
        held.extend_from_slice(chunk);
        let n = d.decode(&held, &mut body)?;
        assert!(n <= held.len(), "used more than it was given");
        held.drain(..n);
        used += n;
        if d.is_done() {
            break;
        }
    }
    Ok((body, d.is_done(), used))
}

fn tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// `chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )`, by hand: blanks
/// only where the grammar has BWS, never at the end of the line.
fn ext_ok(mut s: &[u8]) -> bool {
    fn ws(s: &[u8]) -> &[u8] {
        let n = s.iter().take_while(|&&c| c == b' ' || c == b'\t').count();
        &s[n..]
    }
    fn token(s: &[u8]) -> Option<&[u8]> {
        let n = s.iter().take_while(|&&c| tchar(c)).count();
        (n > 0).then(|| &s[n..])
    }
    fn quoted(s: &[u8]) -> Option<&[u8]> {
        let mut i = 1;
        while i < s.len() {
            match s[i] {
                b'"' => return Some(&s[i + 1..]),
                // quoted-pair: HTAB, SP, VCHAR or obs-text after the backslash.
                b'\\' => match s.get(i + 1) {
                    Some(&c) if c == b'\t' || (c >= 0x20 && c != 0x7f) => i += 2,
                    _ => return None,
                },
                b'\t' => i += 1,
                c if c >= 0x20 && c != 0x7f => i += 1,
                _ => return None,
            }
        }
        None
    }
    loop {
        // BWS only before a `;`: blanks that end the line are refused.
        if s.is_empty() {
            return true;
        }
        s = ws(s);
        let Some((&b';', rest)) = s.split_first() else {
            return false;
        };
        let Some(rest) = token(ws(rest)) else {
            return false;
        };
        let after = ws(rest);
        s = match after.split_first() {
            Some((&b'=', value)) => {
                let value = ws(value);
                let next = if value.first() == Some(&b'"') {
                    quoted(value)
                } else {
                    token(value)
                };
                match next {
                    Some(n) => n,
                    None => return false,
                }
            }
            _ => rest,
        };
    }
}

/// The next CRLF line at `pos`: `Ok(None)` if it has not ended yet and may still fit.
fn line(input: &[u8], pos: usize, max: usize) -> Result<Option<&[u8]>, u16> {
    let rest = &input[pos..];
    match rest.iter().position(|&c| c == b'\n') {
        None if rest.len() > max + 1 => Err(400),
        None => Ok(None),
        Some(lf) => {
            if lf == 0 || rest[lf - 1] != b'\r' {
                return Err(400); // a bare LF
            }
            let l = &rest[..lf - 1];
            if l.len() > max || l.contains(&b'\r') {
                return Err(400);
            }
            Ok(Some(l))
        }
    }
}

fn reference(input: &[u8], max_body: u64) -> Decoded {
    let mut body = Vec::new();
    let mut pos = 0;
    let mut total: u64 = 0;
    loop {
        let Some(size_line) = line(input, pos, MAX_LINE)? else {
            return Ok((body, false, pos));
        };
        let digits = size_line
            .iter()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        if digits == 0 || !ext_ok(&size_line[digits..]) {
            return Err(400);
        }
        let mut size: u64 = 0;
        for &c in &size_line[..digits] {
            let v = (c as char).to_digit(16).unwrap() as u64;
            size = size
                .checked_mul(16)
                .and_then(|s| s.checked_add(v))
                .ok_or(400u16)?;
        }
        pos += size_line.len() + 2;
        if size == 0 {
            break;
        }
        if total.saturating_add(size) > max_body {
            return Err(413);
        }
        total += size;
        let have = (input.len() - pos) as u64;
        if have < size {
            body.extend_from_slice(&input[pos..]);
            return Ok((body, false, input.len()));
        }
        body.extend_from_slice(&input[pos..pos + size as usize]);
        pos += size as usize;
        match &input[pos..] {
            [] => return Ok((body, false, pos)),
            [b'\r'] => return Ok((body, false, pos)),
            [b'\r', b'\n', ..] => pos += 2,
            _ => return Err(400),
        }
    }
    // Trailer fields, dropped; an empty line ends the body.
    let mut trailer_bytes = 0;
    loop {
        let Some(field) = line(input, pos, MAX_TRAILERS)? else {
            if trailer_bytes + (input.len() - pos) > MAX_TRAILERS {
                return Err(431);
            }
            return Ok((body, false, pos));
        };
        trailer_bytes += field.len() + 2;
        if trailer_bytes > MAX_TRAILERS {
            return Err(431);
        }
        pos += field.len() + 2;
        if field.is_empty() {
            return Ok((body, true, pos));
        }
        let Some(colon) = field.iter().position(|&c| c == b':') else {
            return Err(400);
        };
        let (name, value) = (&field[..colon], &field[colon + 1..]);
        if name.is_empty()
            || !name.iter().all(|&c| tchar(c))
            || value.iter().any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f)
        {
            return Err(400);
        }
    }
}

/// Only the status of a refusal is compared: the body written before it is not.
fn outcome(d: &Decoded) -> Result<&(Vec<u8>, bool, usize), u16> {
    d.as_ref().map_err(|&s| s)
}

fuzz_target!(|data: &[u8]| {
    let (ctl, input) = split::steer(data, 5);
    let seed = u32::from_le_bytes([ctl[0], ctl[1], ctl[2], ctl[3]]);
    let max_body = if ctl[4] & 0x80 != 0 {
        1 << 20
    } else {
        u64::from(ctl[4])
    };
    let want = reference(input, max_body);
    let whole = real(&[input], max_body);
    let split = real(&split::cut(input, seed), max_body);
    let shown = String::from_utf8_lossy(input);
    assert_eq!(
        outcome(&whole),
        outcome(&want),
        "whole vs reference; input {shown:?}"
    );
    assert_eq!(
        outcome(&split),
        outcome(&want),
        "split vs reference; input {shown:?}"
    );
});
