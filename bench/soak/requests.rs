//! What the clients send to the `http_server` example and what each request must get:
//! the seeded random generator (the chaos tests' one, from `ropewalk-testkit`), the
//! request generator over every route, and the check of a response against its request.

use std::io;
use std::path::PathBuf;

use ropewalk_testkit::chaos;

use crate::context::Ctx;
use crate::response::{show, Resp};
use crate::MAX_DELAY_MS;

/// The generator of one client thread: the chaos tests' one, behind a splitmixed seed.
pub(crate) struct Rng(chaos::Rng);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        // Splitmix the seed so that nearby seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng(chaos::Rng((z ^ (z >> 31)) | 1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0.next()
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0.below(n.max(1))
    }

    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.0.chance(percent)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Random bytes, between `lo` and `hi` of them.
    pub(crate) fn bytes_in(&mut self, lo: usize, hi: usize) -> Vec<u8> {
        let n = self.range(lo, hi);
        self.bytes(n)
    }
}

/// Header lines that stress framing, inserted by the mutator.
const FIELDS: &[&[u8]] = &[
    b"Content-Length: 5\r\n",
    b"Content-Length: 0\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Connection: close\r\n",
    b"Expect: 100-continue\r\n",
    b"Host: other\r\n",
];

/// One to four random mutations (those of the HTTP chaos tests).
pub(crate) fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    chaos::mutate(&mut rng.0, input, FIELDS);
}

/// A request and the response it must get.
pub(crate) struct Req {
    pub(crate) label: &'static str,
    pub(crate) bytes: Vec<u8>,
    pub(crate) head_only: bool,
    pub(crate) status: u16,
    pub(crate) body: Expect,
}

pub(crate) enum Expect {
    Exactly(Vec<u8>),
    Prefix(Vec<u8>),
    /// Any body (an error page).
    Any,
}

/// The static files served under /static/ (made by `make_root`).
pub(crate) struct Files {
    pub(crate) small: Vec<u8>,
    pub(crate) big: Vec<u8>,
}

pub(crate) fn file_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| b"abcdefghijklmnopqrstuvwxyz0123456789\n"[rng.below(37)])
        .collect()
}

pub(crate) fn make_root() -> io::Result<(PathBuf, Files)> {
    let dir = std::env::temp_dir().join(format!("ropewalk-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let files = Files {
        small: file_bytes(7, 10 * 1024),
        // Past StaticFiles' 256 KiB threshold: streamed.
        big: file_bytes(8, 1024 * 1024),
    };
    std::fs::write(dir.join("small.txt"), &files.small)?;
    std::fs::write(dir.join("big.bin"), &files.big)?;
    Ok((dir, files))
}

pub(crate) fn get(label: &'static str, target: &str, status: u16, body: Expect) -> Req {
    Req {
        label,
        bytes: format!("GET {target} HTTP/1.1\r\nHost: soak\r\n\r\n").into_bytes(),
        head_only: false,
        status,
        body,
    }
}

pub(crate) fn echo_post(rng: &mut Rng, max: usize) -> Req {
    let body = rng.bytes_in(0, max);
    let mut bytes = Vec::new();
    if rng.chance(25) && !body.is_empty() {
        // Chunked, in random pieces.
        bytes.extend_from_slice(
            b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        let mut rest = &body[..];
        while !rest.is_empty() {
            let n = rng.range(1, rest.len());
            bytes.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            bytes.extend_from_slice(&rest[..n]);
            bytes.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
    } else {
        bytes.extend_from_slice(
            format!(
                "POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        bytes.extend_from_slice(&body);
    }
    Req {
        label: "POST /echo",
        bytes,
        head_only: false,
        status: 200,
        body: Expect::Exactly(body),
    }
}

/// A random valid request to the http_server example. `pipelined`: only what is cheap to
/// send 16 at once.
pub(crate) fn http_request(rng: &mut Rng, ctx: &Ctx, files: &Files, pipelined: bool) -> Req {
    let n = if pipelined { 7 } else { 11 };
    match rng.below(n) {
        0 | 1 => get(
            "GET /",
            "/",
            200,
            Expect::Exactly(b"Hello, World!\n".to_vec()),
        ),
        2 => Req {
            label: "HEAD /",
            bytes: b"HEAD / HTTP/1.1\r\nHost: soak\r\n\r\n".to_vec(),
            head_only: true,
            status: 200,
            body: Expect::Exactly(Vec::new()),
        },
        3 => echo_post(rng, if pipelined { 2048 } else { 64 * 1024 }),
        4 => {
            let ms = rng.range(0, MAX_DELAY_MS as usize);
            let body = format!("waited {ms} ms\n").into_bytes();
            get(
                "GET /delay",
                &format!("/delay?ms={ms}"),
                200,
                Expect::Exactly(body),
            )
        }
        5 => {
            let ms = rng.range(0, 20);
            let body = format!("worked {ms} ms on ").into_bytes();
            get(
                "GET /thread",
                &format!("/thread?ms={ms}"),
                200,
                Expect::Prefix(body),
            )
        }
        6 => match rng.below(3) {
            0 => get("GET /delay?ms=bad", "/delay?ms=x1", 400, Expect::Any),
            1 => get("GET /missing", "/no/such/route", 404, Expect::Any),
            _ => get("GET /delay?ms=big", "/delay?ms=99999", 400, Expect::Any),
        },
        7 => get(
            "GET /static/small.txt",
            "/static/small.txt",
            200,
            Expect::Exactly(files.small.clone()),
        ),
        8 => get(
            "GET /static/big.bin",
            "/static/big.bin",
            200,
            Expect::Exactly(files.big.clone()),
        ),
        9 => {
            let start = rng.below(files.big.len() - 1);
            let end = rng.range(start, files.big.len() - 1);
            let mut r = get(
                "GET /static/big.bin (range)",
                "/static/big.bin",
                206,
                Expect::Exactly(files.big[start..=end].to_vec()),
            );
            r.bytes = format!(
                "GET /static/big.bin HTTP/1.1\r\nHost: soak\r\nRange: bytes={start}-{end}\r\n\r\n"
            )
            .into_bytes();
            r
        }
        _ if ctx.opts.fetch => get(
            "GET /fetch",
            &format!("/fetch?url=http://{}/", ctx.addr),
            200,
            Expect::Exactly(b"200 OK\nHello, World!\n".to_vec()),
        ),
        _ => get(
            "GET /",
            "/",
            200,
            Expect::Exactly(b"Hello, World!\n".to_vec()),
        ),
    }
}

/// Whether `resp` is what `req` must get.
pub(crate) fn check(req: &Req, resp: &Resp) -> Result<(), String> {
    if resp.status != req.status {
        return Err(format!(
            "{}: status {} (want {}), body {:?}",
            req.label,
            resp.status,
            req.status,
            show(&resp.body)
        ));
    }
    let good = match &req.body {
        Expect::Exactly(b) => resp.body == *b,
        Expect::Prefix(p) => resp.body.starts_with(p),
        Expect::Any => true,
    };
    if !good {
        return Err(format!(
            "{}: wrong body ({} bytes): {:?}",
            req.label,
            resp.body.len(),
            show(&resp.body)
        ));
    }
    if req.head_only && resp.header("content-length") != Some("14") {
        return Err(format!(
            "{}: Content-Length {:?}",
            req.label,
            resp.header("content-length")
        ));
    }
    Ok(())
}
