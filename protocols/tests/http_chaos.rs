//! Bad input, generated: thousands of mutated requests (bytes flipped, inserted, deleted,
//! duplicated, lines broken, fields stretched) fed to the HTTP server, each in one read,
//! a byte per read, and in random pieces. Deterministic (a fixed-seed generator), so a
//! failure names the case that reproduces it.
//!
//! For every input the server must:
//! - not panic;
//! - write only well-formed responses (`HTTP/1.1 NNN ...` heads, framed bodies);
//! - write exactly the same bytes however the input is split into reads (the parser must
//!   not depend on read boundaries; `Date` lines and interim `100 Continue` aside);
//! - answer at most as many requests as the input could hold;
//! - never leave a connection open forever: once the clock passes the timeouts, the
//!   connection is closed.
//!
//! Twisted: none directly; this is the randomized counterpart of the malformed-request
//! table (`http_malformed_table.rs`), in the spirit of `web/test/test_http.py`'s
//! `ParsingTests` run over many inputs.

mod common;

use common::{echo, Conn};
use ropewalk_protocols::http::ServerConfig;
use ropewalk_testkit::chaos::{mutate, Rng};

/// Valid requests the mutations start from.
const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /a/b?c=d&e HTTP/1.1\r\nHost: example\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: t\r\n\r\n",
    b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /k2 HTTP/1.0\r\n\r\n",
    b"HEAD /h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"DELETE /d HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n",
];

/// Fields that stress request framing.
const FIELDS: &[&[u8]] = &[
    b"Content-Length: 3\r\n",
    b"Content-Length: -1\r\n",
    b"Content-Length: 99999999999999999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip\r\n",
    b"Host: y\r\n",
    b" folded\r\n",
    b"Connection: close\r\n",
];

/// Small limits, so that the limit checks are reached often.
fn config() -> ServerConfig {
    ServerConfig {
        max_header_bytes: 2048,
        max_headers: 16,
        max_uri: 512,
        max_body: 1024,
        ..ServerConfig::default()
    }
}

/// What the server wrote for `input`, split into reads at `cuts` (ascending offsets);
/// and whether the connection closed once the clock passed every timeout.
fn run(input: &[u8], cuts: &[usize]) -> (Vec<u8>, bool) {
    let mut c = Conn::with_config(echo, config());
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&input.len())) {
        if to > from {
            c.send(&input[from..to]);
            from = to;
        }
    }
    let written = c.t.value();
    c.advance(24.0 * 3600.0);
    (written, c.closed())
}

/// The bytes to compare across splits: without `Date` lines (the clock may tick between
/// runs) and without interim `100 Continue` responses (sent only when the body has not
/// already arrived with the head).
fn comparable(written: &[u8]) -> Vec<u8> {
    let text = written.to_vec();
    let mut out = Vec::with_capacity(text.len());
    let mut rest = &text[..];
    while !rest.is_empty() {
        if rest.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n") {
            rest = &rest[b"HTTP/1.1 100 Continue\r\n\r\n".len()..];
            continue;
        }
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(rest.len(), |p| p + 2);
        let line = &rest[..end];
        if !line.to_ascii_lowercase().starts_with(b"date:") {
            out.extend_from_slice(line);
        }
        rest = &rest[end..];
    }
    out
}

/// Bytes for a failure message: the start, escaped, and the length.
fn show(bytes: &[u8]) -> String {
    let head: String = bytes
        .iter()
        .take(300)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    format!(
        "\"{head}\"{} ({} bytes)",
        if bytes.len() > 300 { "..." } else { "" },
        bytes.len()
    )
}

/// Checks that `bytes` is a sequence of well-formed HTTP/1.1 responses; returns how many
/// are final (not 1xx). A response with a `Content-Length` and no body answers a HEAD.
fn validate(mut bytes: &[u8]) -> Result<usize, String> {
    let mut finals = 0;
    while !bytes.is_empty() {
        let mut storage = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut storage);
        let n = match r.parse(bytes) {
            Ok(httparse::Status::Complete(n)) => n,
            other => return Err(format!("head: {other:?}")),
        };
        if r.version != Some(1) {
            return Err("not HTTP/1.1".into());
        }
        let status = r.code.unwrap_or(0);
        if !(100..=599).contains(&status) {
            return Err(format!("status {status}"));
        }
        if status >= 200 {
            finals += 1;
        }
        let field = |name: &str| {
            r.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let rest = &bytes[n..];
        let next_or_end = |at: usize| at == rest.len() || rest[at..].starts_with(b"HTTP/1.1 ");
        let body = if status < 200 || status == 204 || status == 304 {
            0
        } else if let Some(len) = field("content-length") {
            let len: usize = len.parse().map_err(|_| format!("Content-Length {len:?}"))?;
            if rest.len() >= len && next_or_end(len) {
                len
            } else if next_or_end(0) {
                0 // the answer to a HEAD
            } else {
                return Err(format!("body not {len} bytes"));
            }
        } else if field("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
            let mut pos = 0;
            loop {
                let line = rest[pos..]
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .ok_or("chunk size line")?;
                let size = std::str::from_utf8(&rest[pos..pos + line])
                    .ok()
                    .and_then(|s| usize::from_str_radix(s, 16).ok())
                    .ok_or("chunk size")?;
                pos += line + 2;
                if rest.len() < pos + size + 2 || &rest[pos + size..pos + size + 2] != b"\r\n" {
                    return Err("chunk".into());
                }
                pos += size + 2;
                if size == 0 {
                    break;
                }
            }
            pos
        } else {
            rest.len() // delimited by the close
        };
        bytes = &rest[body..];
    }
    Ok(finals)
}

/// Checks one generated input; returns what went wrong.
fn check(case: usize, input: &[u8], rng: &mut Rng) -> Result<(), String> {
    let whole = run(input, &[]);
    let bytewise_cuts: Vec<usize> = (1..input.len()).collect();
    let mut random_cuts: Vec<usize> = (0..rng.below(6))
        .map(|_| rng.below(input.len().max(1)))
        .collect();
    random_cuts.sort_unstable();
    let fail = |what: String| Err(format!("case {case}: {what}\ninput: {}", show(input)));

    // Well-formed responses only, no more than the input could hold.
    let written = &whole.0;
    let finals = match validate(written) {
        Ok(n) => n,
        Err(e) => {
            return fail(format!(
                "wrote bytes that are not well-formed responses ({e}): {}",
                show(written)
            ))
        }
    };
    let most = input.windows(4).filter(|w| *w == b"\r\n\r\n").count()
        + input.windows(2).filter(|w| *w == b"\n\n").count()
        + 1;
    if finals > most {
        return fail(format!("{finals} responses to at most {most} requests"));
    }
    if !whole.1 {
        return fail("the connection was still open after every timeout".into());
    }

    // The same bytes however the input is split.
    for (how, cuts) in [
        ("a byte per read", &bytewise_cuts),
        ("random pieces", &random_cuts),
    ] {
        let split = run(input, cuts);
        if comparable(&split.0) != comparable(written) {
            return fail(format!(
                "{how} wrote {}, one read wrote {}",
                show(&split.0),
                show(written)
            ));
        }
        if !split.1 {
            return fail(format!("{how}: left open after every timeout"));
        }
    }
    Ok(())
}

fn check_many(seed: u64, cases: usize) {
    let mut rng = Rng(seed);
    let mut failures = Vec::new();
    for case in 0..cases {
        let mut input = SEEDS[rng.below(SEEDS.len())].to_vec();
        mutate(&mut rng, &mut input, FIELDS);
        if let Err(e) = check(case, &input, &mut rng) {
            failures.push(e);
            if failures.len() >= 5 {
                break;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "seed {seed:#x}: {} failing case(s):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn mutated_requests_seed_1() {
    check_many(0x9e37_79b9_7f4a_7c15, 1500);
}

#[test]
fn mutated_requests_seed_2() {
    check_many(0xd1b5_4a32_d192_ed03, 1500);
}

/// The unmutated seeds pass the same checks (and so do the checks themselves).
#[test]
fn the_seeds_pass() {
    let mut rng = Rng(1);
    for (i, seed) in SEEDS.iter().enumerate() {
        check(i, seed, &mut rng).unwrap();
        let finals = validate(&run(seed, &[]).0).unwrap();
        assert!(finals >= 1, "seed {i} got no answer");
    }
}
