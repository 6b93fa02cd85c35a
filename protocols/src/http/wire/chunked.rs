//! The chunked transfer coding (RFC 9112 §7.1): [`ChunkedDecoder`] reads a chunked
//! body strictly, for the server (request bodies) and the client (response bodies)
//! alike; [`chunk_size_line`] writes the size line of a chunk the server sends.

use super::token::is_tchar;

/// The longest chunk-size line (size and extensions) accepted.
const MAX_CHUNK_LINE: usize = 1024;
/// The most trailer bytes accepted (they are read and dropped).
const MAX_TRAILERS: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// Decodes a chunked body, strictly: hex sizes without sign or `0x`, CRLF everywhere
/// (a bare LF is an error), well-formed extensions; trailers are read and dropped.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: ChunkState,
    total: u64,
    max_body: u64,
    trailer_bytes: usize,
}

/// Finds a CRLF-terminated line at the start of `buf`: `Ok(Some(len))` without the CRLF,
/// `Ok(None)` if incomplete, `Err` on a bare LF or a line longer than `max`.
fn crlf_line(buf: &[u8], max: usize) -> Result<Option<usize>, u16> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) => {
            if i == 0 || buf[i - 1] != b'\r' {
                return Err(400);
            }
            if i - 1 > max {
                return Err(400);
            }
            if buf[..i - 1].contains(&b'\r') {
                return Err(400);
            }
            Ok(Some(i - 1))
        }
        None if buf.len() > max + 1 => Err(400),
        None => Ok(None),
    }
}

/// Whether `ext`, what follows the chunk size on its line, is well-formed:
/// `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )` (RFC 9112
/// §7.1.1). BWS comes only before a `;` or around a `=`, never at the end of the line:
/// `5 \r\n` and `5;a=b \r\n` are refused.
fn valid_chunk_ext(ext: &[u8]) -> bool {
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < ext.len() && (ext[*i] == b' ' || ext[*i] == b'\t') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while *i < ext.len() && is_tchar(ext[*i]) {
            *i += 1;
        }
        *i > start
    };
    loop {
        if i == ext.len() {
            return true;
        }
        skip_ws(&mut i);
        if ext.get(i) != Some(&b';') {
            // The end of the line after BWS, or anything else.
            return false;
        }
        i += 1;
        skip_ws(&mut i);
        if !token(&mut i) {
            return false;
        }
        let after_name = i;
        skip_ws(&mut i);
        if ext.get(i) != Some(&b'=') {
            // No value: the blanks (if any) belong before the next `;`.
            i = after_name;
            continue;
        }
        i += 1;
        skip_ws(&mut i);
        if ext.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match ext.get(i) {
                    None => return false,
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    // quoted-pair: HTAB, SP, VCHAR or obs-text escaped.
                    Some(b'\\') => match ext.get(i + 1) {
                        Some(&c) if c == b'\t' || (c >= 0x20 && c != 0x7f) => i += 2,
                        _ => return false,
                    },
                    Some(&c) if c == b'\t' || (c >= 0x20 && c != 0x7f) => i += 1,
                    Some(_) => return false,
                }
            }
        } else if !token(&mut i) {
            return false;
        }
    }
}

impl ChunkedDecoder {
    pub(crate) fn new(max_body: u64) -> ChunkedDecoder {
        ChunkedDecoder {
            state: ChunkState::Size,
            total: 0,
            max_body,
            trailer_bytes: 0,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from `buf` into `out`; returns how many bytes of `buf` were used. Stops at
    /// the end of the body. `Err(status)` on malformed framing (400) or a body too large
    /// (413).
    pub(crate) fn decode(&mut self, buf: &[u8], out: &mut Vec<u8>) -> Result<usize, u16> {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            match self.state {
                ChunkState::Done => return Ok(pos),
                ChunkState::Size => {
                    let Some(len) = crlf_line(rest, MAX_CHUNK_LINE)? else {
                        return Ok(pos);
                    };
                    let line = &rest[..len];
                    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
                    if digits == 0 || !valid_chunk_ext(&line[digits..]) {
                        return Err(400);
                    }
                    let hex = std::str::from_utf8(&line[..digits]).map_err(|_| 400u16)?;
                    let size = u64::from_str_radix(hex, 16).map_err(|_| 400u16)?;
                    pos += len + 2;
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        if self.total.saturating_add(size) > self.max_body {
                            return Err(413);
                        }
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if rest.is_empty() {
                        return Ok(pos);
                    }
                    let n = (left.min(rest.len() as u64)) as usize;
                    out.extend_from_slice(&rest[..n]);
                    self.total += n as u64;
                    pos += n;
                    self.state = if n as u64 == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - n as u64)
                    };
                }
                ChunkState::DataEnd => {
                    if rest.len() < 2 {
                        if rest.first().is_some_and(|&b| b != b'\r') {
                            return Err(400);
                        }
                        return Ok(pos);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(400);
                    }
                    pos += 2;
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(len) = crlf_line(rest, MAX_TRAILERS)? else {
                        if self.trailer_bytes + rest.len() > MAX_TRAILERS {
                            return Err(431);
                        }
                        return Ok(pos);
                    };
                    self.trailer_bytes += len + 2;
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err(431);
                    }
                    let line = &rest[..len];
                    pos += len + 2;
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                        continue;
                    }
                    // A trailer field: checked for shape, then dropped (never merged).
                    let Some(colon) = line.iter().position(|&b| b == b':') else {
                        return Err(400);
                    };
                    if colon == 0
                        || !line[..colon].iter().all(|&b| is_tchar(b))
                        || line[colon + 1..]
                            .iter()
                            .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
                    {
                        return Err(400);
                    }
                }
            }
        }
    }
}

/// The size line of a chunk of `len` bytes (`1a2b\r\n`, in lowercase hex), built on
/// the stack: the line is `buf[start..]` of the returned `(buf, start)`.
#[inline]
pub(crate) fn chunk_size_line(len: usize) -> ([u8; 18], usize) {
    let mut line = [0u8; 18];
    let mut i = 16;
    let mut n = len;
    loop {
        i -= 1;
        line[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    line[16..].copy_from_slice(b"\r\n");
    (line, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<Vec<u8>, u16> {
        let mut d = ChunkedDecoder::new(1 << 20);
        let mut out = Vec::new();
        let n = d.decode(input, &mut out)?;
        assert!(d.is_done(), "incomplete after {n} bytes");
        Ok(out)
    }

    #[test]
    fn chunked_happy_path_with_extensions_and_trailers() {
        let body = decode_all(b"5;a=b;c=\"d e\"\r\nhello\r\n0\r\nX-T: 1\r\n\r\n").unwrap();
        assert_eq!(body, b"hello");
        let body = decode_all(b"5 ;a = b ;c\r\nhello\r\n0\t;d=\"\\\"\"\r\n\r\n").unwrap();
        assert_eq!(body, b"hello");
    }

    #[test]
    fn chunked_rejections() {
        for bad in [
            &b"0x5\r\nhello\r\n0\r\n\r\n"[..],
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"g\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5;\x01\r\nhello\r\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"5;=x\r\nhello\r\n0\r\n\r\n",
            b"a \r\nhelloworld\r\n0\r\n\r\n",
            b"5\t\r\nhello\r\n0\r\n\r\n",
            b"5;a \r\nhello\r\n0\r\n\r\n",
            b"5;a=\"\\\x01\"\r\nhello\r\n0\r\n\r\n",
            b"0 \r\n\r\n",
            b"0x\r\n\r\n",
        ] {
            assert_eq!(
                decode_all(bad),
                Err(400),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn chunked_byte_at_a_time() {
        let input = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let mut d = ChunkedDecoder::new(100);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for &b in input.iter() {
            buf.push(b);
            let n = d.decode(&buf, &mut out).unwrap();
            buf.drain(..n);
        }
        assert!(d.is_done());
        assert_eq!(out, b"abcde");
    }

    #[test]
    fn chunked_body_limit_is_413() {
        let mut d = ChunkedDecoder::new(4);
        assert_eq!(d.decode(b"5\r\nhello\r\n", &mut Vec::new()), Err(413));
    }
}

#[cfg(test)]
mod size_line_tests {
    use super::chunk_size_line;

    #[test]
    fn size_lines_are_lowercase_hex_with_crlf() {
        for (len, want) in [(0, &b"0\r\n"[..]), (10, b"a\r\n"), (0x1a2b, b"1a2b\r\n")] {
            let (line, start) = chunk_size_line(len);
            assert_eq!(&line[start..], want);
        }
        let (line, start) = chunk_size_line(usize::MAX);
        assert_eq!(line[start..].len(), 18);
    }
}
