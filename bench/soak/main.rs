//! The soak test: runs an example server (`http_server` by default, `echo_server` with
//! `--server echo`) for minutes under a hostile mix of clients, and checks that nothing
//! leaks, hangs or answers wrongly. See "The soak test" in `bench/README.md`.
//!
//! ```sh
//! ./run-soak.sh                       # http_server, 60 s, seed 1
//! ./run-soak.sh --server echo --duration 30
//! target/release/soak --help
//! ```
//!
//! Every client kind runs on its own threads (blocking sockets with timeouts: a read or a
//! write that times out is a hang). A sampler reads the server's RSS, descriptors and CPU
//! from `/proc` once a second. The exit code is 0 when every check passes, 1 otherwise.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ropewalk_bench::procs;
use ropewalk_testkit::chaos;
use ropewalk_testkit::malformed::{over_limits, Limits, MalformedRequest, MALFORMED, SMUGGLED};

const USAGE: &str = "\
usage: soak [OPTIONS]

Runs an example server under a hostile mix of clients on 127.0.0.1 and checks that it
answers correctly, never hangs, and holds no more memory or descriptors than it should.

  --server http|echo   the server under test: the `http_server` example (default) or
                       `echo_server`
  --bin PATH           the server binary (default: ../target/release/examples/NAME,
                       built by run-soak.sh)
  --duration S         seconds of load (default 60)
  --warmup S           seconds of load before the RSS reference sample (default 5)
  --seed N             seed of every random choice (default 1); each client thread
                       derives its own, so a failure can be replayed
  --mix K=N,...        client threads per kind (defaults below); 0 turns a kind off
  --settle S           after the load, how long the server may take to come back to its
                       starting descriptors (default 40 for http: the /fetch client pool
                       keeps idle connections 30 s; 10 for echo)
  --no-fetch           http: no /fetch requests (so no client pool to wait for)
  --rss-growth MIB     most RSS growth from the warm-up sample to the end (default 8)
  --rss-peak MIB       most RSS above the start's at any time (default 64)
  --rss-trend MIB      most growth from the mean of the first third of the load's
                       samples to the last third (default 4)
  --nonreader-mib N    MiB each non-reader sends before it holds still (default 16)
  --slow-interval MS   the slowloris clients' pause between header bytes (default 1000)
  --verbose            print each failure as it happens
  -h, --help           this text

Client kinds (http defaults / echo defaults):
  keepalive   keep-alive requests on every route, each response checked   (4 / 4)
  pipeline    16 requests in one write, responses in order, all present  (2 / 2)
  malformed   the malformed-request table: a 4xx/5xx, then close         (1 / 0)
  mutated     valid requests with random byte mutations: well-formed
              answers or a clean close, within the timeouts              (1 / 0)
  slowloris   headers trickled: 408 and close by the request timeout     (3 / 0)
  abrupt      mid-request close, RST mid-response, half-close            (2 / 2)
  nonreader   requests sent, responses never read                        (2 / 2)
  halfclose   echo: send, shut down writing, read the rest               (0 / 1)
  udp         echo: datagrams come back whole                            (0 / 1)

The http server's timeouts are its defaults (the example cannot change them): request
head 30 s from its first byte, idle keep-alive 60 s, abort 15 s after a timeout.";

/// The server's documented defaults (`ServerConfig::default()`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Slack on top of a server timeout before a client calls it a hang.
const MARGIN: Duration = Duration::from_secs(5);
/// The bound on one request/response exchange that no timer delays.
const OP_BOUND: Duration = Duration::from_secs(10);
/// Longest `/delay` or `/thread` the clients ask for, in ms.
const MAX_DELAY_MS: u64 = 50;

// ---------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerKind {
    Http,
    Echo,
}

const KINDS: &[&str] = &[
    "keepalive",
    "pipeline",
    "malformed",
    "mutated",
    "slowloris",
    "abrupt",
    "nonreader",
    "halfclose",
    "udp",
];

#[derive(Debug, Clone)]
struct Opts {
    server: ServerKind,
    bin: Option<PathBuf>,
    duration: Duration,
    warmup: Duration,
    seed: u64,
    mix: BTreeMap<&'static str, usize>,
    settle: Option<Duration>,
    fetch: bool,
    rss_growth_mib: f64,
    rss_peak_mib: f64,
    rss_trend_mib: f64,
    nonreader_bytes: usize,
    slow_interval: Duration,
    verbose: bool,
}

fn default_mix(server: ServerKind) -> BTreeMap<&'static str, usize> {
    let counts: [usize; 9] = match server {
        ServerKind::Http => [4, 2, 1, 1, 3, 2, 2, 0, 0],
        ServerKind::Echo => [4, 2, 0, 0, 0, 2, 2, 1, 1],
    };
    KINDS.iter().copied().zip(counts).collect()
}

fn parse_args() -> Result<Opts, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The server first: the mix's defaults depend on it.
    let mut server = ServerKind::Http;
    if let Some(i) = args.iter().position(|a| a == "--server") {
        server = match args.get(i + 1).map(String::as_str) {
            Some("http") => ServerKind::Http,
            Some("echo") => ServerKind::Echo,
            other => return Err(format!("--server: http or echo, not {other:?}")),
        };
    }
    let mut o = Opts {
        server,
        bin: None,
        duration: Duration::from_secs(60),
        warmup: Duration::from_secs(5),
        seed: 1,
        mix: default_mix(server),
        settle: None,
        fetch: true,
        rss_growth_mib: 8.0,
        rss_peak_mib: 64.0,
        rss_trend_mib: 4.0,
        nonreader_bytes: 16 << 20,
        slow_interval: Duration::from_millis(1000),
        verbose: false,
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        let num = |v: String| -> Result<f64, String> {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("{a}: not a number: {v}"))
        };
        match a.as_str() {
            "--server" => {
                value()?;
            }
            "--bin" => o.bin = Some(value()?.into()),
            "--duration" => o.duration = Duration::from_secs_f64(num(value()?)?),
            "--warmup" => o.warmup = Duration::from_secs_f64(num(value()?)?),
            "--seed" => {
                let v = value()?;
                o.seed = v
                    .parse()
                    .map_err(|_| format!("--seed: not a number: {v}"))?;
            }
            "--mix" => {
                for part in value()?.split(',').filter(|p| !p.is_empty()) {
                    let (k, n) = part
                        .split_once('=')
                        .ok_or_else(|| format!("--mix: KIND=N, not {part}"))?;
                    let kind = KINDS
                        .iter()
                        .copied()
                        .find(|x| *x == k)
                        .ok_or_else(|| format!("--mix: unknown kind {k}"))?;
                    let n = n.parse().map_err(|_| format!("--mix: {part}"))?;
                    o.mix.insert(kind, n);
                }
            }
            "--settle" => o.settle = Some(Duration::from_secs_f64(num(value()?)?)),
            "--no-fetch" => o.fetch = false,
            "--rss-growth" => o.rss_growth_mib = num(value()?)?,
            "--rss-peak" => o.rss_peak_mib = num(value()?)?,
            "--rss-trend" => o.rss_trend_mib = num(value()?)?,
            "--nonreader-mib" => o.nonreader_bytes = (num(value()?)? * 1048576.0) as usize,
            "--slow-interval" => {
                o.slow_interval = Duration::from_millis(num(value()?)?.max(1.0) as u64)
            }
            "--verbose" => o.verbose = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let http_only = ["malformed", "mutated", "slowloris"];
    let echo_only = ["halfclose", "udp"];
    let wrong: &[&str] = match o.server {
        ServerKind::Http => &echo_only,
        ServerKind::Echo => &http_only,
    };
    for k in wrong {
        if o.mix.get(k).copied().unwrap_or(0) > 0 {
            return Err(format!("--mix: {k} does not apply to this server"));
        }
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------
// Randomness: the generator and the request mutator of the HTTP chaos tests
// (ropewalk-testkit), shared so that the soak sends what those tests send.

struct Rng(chaos::Rng);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Splitmix the seed so that nearby seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng(chaos::Rng((z ^ (z >> 31)) | 1))
    }

    fn next(&mut self) -> u64 {
        self.0.next()
    }

    fn below(&mut self, n: usize) -> usize {
        self.0.below(n.max(1))
    }

    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.0.chance(percent)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Random bytes, between `lo` and `hi` of them.
    fn bytes_in(&mut self, lo: usize, hi: usize) -> Vec<u8> {
        let n = self.range(lo, hi);
        self.bytes(n)
    }
}

// ---------------------------------------------------------------------------------------
// Results

#[derive(Default)]
struct StatsInner {
    /// Operations that ended as they should, per kind.
    ok: BTreeMap<&'static str, u64>,
    /// Requests (or echo messages, datagrams) exchanged, per kind.
    requests: BTreeMap<&'static str, u64>,
    /// "kind: what" -> count and the first few details.
    failures: BTreeMap<String, (u64, Vec<String>)>,
    /// The longest operation per kind.
    slowest: BTreeMap<&'static str, Duration>,
    /// Notes that are not failures (UDP datagrams lost, non-readers stopped by the server).
    notes: BTreeMap<String, u64>,
}

struct Stats {
    inner: Mutex<StatsInner>,
    verbose: bool,
}

impl Stats {
    fn lock(&self) -> std::sync::MutexGuard<'_, StatsInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ok(&self, kind: &'static str, took: Duration, requests: u64) {
        let mut s = self.lock();
        *s.ok.entry(kind).or_default() += 1;
        *s.requests.entry(kind).or_default() += requests;
        let slow = s.slowest.entry(kind).or_default();
        *slow = (*slow).max(took);
    }

    fn fail(&self, kind: &'static str, what: &str, detail: String) {
        if self.verbose {
            eprintln!("FAIL {kind}: {what}: {detail}");
        }
        let mut s = self.lock();
        let e = s.failures.entry(format!("{kind}: {what}")).or_default();
        e.0 += 1;
        if e.1.len() < 3 {
            e.1.push(detail);
        }
    }

    fn note(&self, what: String) {
        *self.lock().notes.entry(what).or_default() += 1;
    }
}

/// What every client thread shares.
struct Ctx {
    addr: SocketAddr,
    opts: Opts,
    stop: AtomicBool,
    load_end: Instant,
    stats: Stats,
}

impl Ctx {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps up to `d`, less if the load stops.
    fn nap(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stopped() && Instant::now() < end {
            std::thread::sleep((end - Instant::now()).min(Duration::from_millis(100)));
        }
    }

    /// A connection for a client of kind `kind`, or `None` after counting the failure and
    /// pausing a little (so a refusing server is not hammered).
    fn connect_or_fail(&self, kind: &'static str, bound: Duration) -> Option<TcpStream> {
        match self.connect(bound) {
            Ok(s) => Some(s),
            Err(e) => {
                self.stats.fail(kind, "connect", e.to_string());
                self.nap(Duration::from_millis(100));
                None
            }
        }
    }

    fn connect(&self, bound: Duration) -> io::Result<TcpStream> {
        let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(bound))?;
        s.set_write_timeout(Some(bound))?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Makes the socket's close send a reset (SO_LINGER 0).
fn set_reset_on_close(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on an open socket with a pointer to a live linger struct and its
    // size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

// ---------------------------------------------------------------------------------------
// HTTP responses, read strictly

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

#[derive(Debug)]
enum ReadErr {
    /// No byte for the read timeout: a hang.
    Timeout(usize),
    /// End of stream (or reset) before a response started.
    Closed,
    /// End of stream, reset or error inside a response.
    Cut(String),
    /// Not well-formed HTTP/1.1.
    Bad(String),
}

impl std::fmt::Display for ReadErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadErr::Timeout(n) => write!(f, "timed out with {n} bytes of a response read"),
            ReadErr::Closed => write!(f, "closed before a response"),
            ReadErr::Cut(e) => write!(f, "response cut: {e}"),
            ReadErr::Bad(e) => write!(f, "malformed response: {e}"),
        }
    }
}

/// A client connection with a read buffer.
struct HttpConn {
    s: TcpStream,
    buf: Vec<u8>,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl HttpConn {
    fn new(s: TcpStream) -> HttpConn {
        HttpConn { s, buf: Vec::new() }
    }

    /// Reads more; `Ok(0)` at the end of the stream (a reset counts as the end).
    fn fill(&mut self) -> Result<usize, io::Error> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.s.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(0),
                Err(e) => return Err(e),
            }
        }
    }

    /// Fills until `n` bytes are buffered.
    fn need(&mut self, n: usize) -> Result<(), ReadErr> {
        while self.buf.len() < n {
            match self.fill() {
                Ok(0) => {
                    return Err(ReadErr::Cut(format!(
                        "EOF with {} of {n} bytes",
                        self.buf.len()
                    )))
                }
                Ok(_) => {}
                Err(e) if is_timeout(&e) => return Err(ReadErr::Timeout(self.buf.len())),
                Err(e) => return Err(ReadErr::Cut(e.to_string())),
            }
        }
        Ok(())
    }

    /// Reads one response, checking its syntax; `head_only` for HEAD.
    fn response(&mut self, head_only: bool) -> Result<Resp, ReadErr> {
        let end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p;
            }
            if self.buf.len() > 64 * 1024 {
                return Err(ReadErr::Bad("head over 64 KiB".into()));
            }
            match self.fill() {
                Ok(0) if self.buf.is_empty() => return Err(ReadErr::Closed),
                Ok(0) => {
                    return Err(ReadErr::Cut(format!(
                        "EOF inside a head: {:?}",
                        show(&self.buf)
                    )))
                }
                Ok(_) => {}
                Err(e) if is_timeout(&e) => return Err(ReadErr::Timeout(self.buf.len())),
                Err(e) if self.buf.is_empty() => {
                    return Err(ReadErr::Cut(format!("before a response: {e}")))
                }
                Err(e) => return Err(ReadErr::Cut(e.to_string())),
            }
        };
        let head = String::from_utf8(self.buf[..end].to_vec())
            .map_err(|_| ReadErr::Bad(format!("head not UTF-8: {:?}", show(&self.buf[..end]))))?;
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let line = lines.next().unwrap_or_default();
        let bad = |what: &str| ReadErr::Bad(format!("{what}: {line:?}"));
        let rest = line
            .strip_prefix("HTTP/1.1 ")
            .ok_or_else(|| bad("status line"))?;
        let (code, reason) = rest.split_at(rest.len().min(3));
        let status: u16 = code
            .parse()
            .ok()
            .filter(|s| (100..600).contains(s) && code.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| bad("status code"))?;
        if !reason.starts_with(' ') || reason.bytes().any(|b| b.is_ascii_control()) {
            return Err(bad("reason"));
        }
        let mut headers = Vec::new();
        for l in lines {
            let (name, value) = l
                .split_once(": ")
                .ok_or_else(|| ReadErr::Bad(format!("header line {l:?}")))?;
            if name.is_empty() || !name.bytes().all(is_tchar) {
                return Err(ReadErr::Bad(format!("header name {name:?}")));
            }
            if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err(ReadErr::Bad(format!("header value {l:?}")));
            }
            headers.push((name.to_string(), value.to_string()));
        }
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        // Interim responses (100 Continue) are a status line alone.
        if status < 200 {
            return Ok(resp);
        }
        for required in ["date", "server"] {
            if resp.header(required).is_none() {
                return Err(ReadErr::Bad(format!("no {required} field in {head:?}")));
            }
        }
        let lengths: Vec<&str> = resp
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.as_str())
            .collect();
        let chunked = resp
            .header("transfer-encoding")
            .map(|v| v.eq_ignore_ascii_case("chunked"));
        if lengths.len() > 1 || (!lengths.is_empty() && chunked.is_some()) {
            return Err(ReadErr::Bad(format!("conflicting framing in {head:?}")));
        }
        let no_body = head_only || status == 204 || status == 304 || status < 200;
        if no_body {
            return Ok(resp);
        }
        if let Some(len) = lengths.first() {
            let n: usize = len
                .parse()
                .ok()
                .filter(|_| len.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| ReadErr::Bad(format!("Content-Length {len:?}")))?;
            self.need(n)?;
            resp.body = self.buf.drain(..n).collect();
        } else if chunked == Some(true) {
            loop {
                let line_end = loop {
                    if let Some(p) = find(&self.buf, b"\r\n") {
                        break p;
                    }
                    let want = self.buf.len() + 1;
                    self.need(want)?;
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).to_string();
                let size = usize::from_str_radix(&size_text, 16)
                    .map_err(|_| ReadErr::Bad(format!("chunk size {size_text:?}")))?;
                self.buf.drain(..line_end + 2);
                self.need(size + 2)?;
                if &self.buf[size..size + 2] != b"\r\n" {
                    return Err(ReadErr::Bad("chunk not followed by CRLF".into()));
                }
                resp.body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    break;
                }
            }
        } else if chunked.is_some() {
            return Err(ReadErr::Bad(format!("transfer coding in {head:?}")));
        } else {
            // Delimited by the close: only with `Connection: close`.
            if !resp.closes() {
                return Err(ReadErr::Bad(format!("no length and no close: {head:?}")));
            }
            loop {
                match self.fill() {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if is_timeout(&e) => return Err(ReadErr::Timeout(self.buf.len())),
                    Err(e) => return Err(ReadErr::Cut(e.to_string())),
                }
            }
            resp.body = std::mem::take(&mut self.buf);
        }
        Ok(resp)
    }

    /// The server closes next: end of stream (or a reset) with nothing more sent.
    fn expect_close(&mut self) -> Result<(), String> {
        if !self.buf.is_empty() {
            return Err(format!(
                "bytes after the last response: {:?}",
                show(&self.buf)
            ));
        }
        match self.fill() {
            Ok(0) => Ok(()),
            Ok(_) => Err(format!(
                "bytes after the last response: {:?}",
                show(&self.buf)
            )),
            Err(e) if is_timeout(&e) => Err("not closed within the bound".into()),
            Err(_) => Ok(()),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The first bytes of `b`, printable.
fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(160)]).to_string();
    if b.len() > 160 {
        format!("{s}…({} bytes)", b.len())
    } else {
        s
    }
}

// ---------------------------------------------------------------------------------------
// Requests to the http_server example, and what each must get

/// A request and the response it must get.
struct Req {
    label: &'static str,
    bytes: Vec<u8>,
    head_only: bool,
    status: u16,
    body: Expect,
}

enum Expect {
    Exactly(Vec<u8>),
    Prefix(Vec<u8>),
    /// Any body (an error page).
    Any,
}

/// The static files served under /static/ (made by `make_root`).
struct Files {
    small: Vec<u8>,
    big: Vec<u8>,
}

fn file_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| b"abcdefghijklmnopqrstuvwxyz0123456789\n"[rng.below(37)])
        .collect()
}

fn make_root() -> io::Result<(PathBuf, Files)> {
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

fn get(label: &'static str, target: &str, status: u16, body: Expect) -> Req {
    Req {
        label,
        bytes: format!("GET {target} HTTP/1.1\r\nHost: soak\r\n\r\n").into_bytes(),
        head_only: false,
        status,
        body,
    }
}

fn echo_post(rng: &mut Rng, max: usize) -> Req {
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
fn http_request(rng: &mut Rng, ctx: &Ctx, files: &Files, pipelined: bool) -> Req {
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
fn check(req: &Req, resp: &Resp) -> Result<(), String> {
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

// ---------------------------------------------------------------------------------------
// HTTP clients

fn http_keepalive(ctx: &Ctx, rng: &mut Rng, files: &Files) {
    const KIND: &str = "keepalive";
    while !ctx.stopped() {
        let Some(s) = ctx.connect_or_fail(KIND, OP_BOUND + MARGIN) else {
            continue;
        };
        let mut c = HttpConn::new(s);
        for _ in 0..rng.range(1, 200) {
            if ctx.stopped() {
                break;
            }
            let req = http_request(rng, ctx, files, false);
            let t = Instant::now();
            if let Err(e) = c.s.write_all(&req.bytes) {
                ctx.stats.fail(KIND, "write", format!("{}: {e}", req.label));
                break;
            }
            match c.response(req.head_only) {
                Ok(resp) => match check(&req, &resp) {
                    Ok(()) if resp.closes() => {
                        ctx.stats
                            .fail(KIND, "closed a keep-alive connection", req.label.into());
                        break;
                    }
                    Ok(()) => ctx.stats.ok(KIND, t.elapsed(), 1),
                    Err(e) => {
                        ctx.stats.fail(KIND, "wrong answer", e);
                        break;
                    }
                },
                Err(ReadErr::Timeout(n)) => {
                    ctx.stats.fail(
                        KIND,
                        "hang",
                        format!("{}: {n} bytes in {:?}", req.label, t.elapsed()),
                    );
                    break;
                }
                Err(e) => {
                    ctx.stats
                        .fail(KIND, "bad response", format!("{}: {e}", req.label));
                    break;
                }
            }
        }
    }
}

fn http_pipeline(ctx: &Ctx, rng: &mut Rng, files: &Files) {
    const KIND: &str = "pipeline";
    while !ctx.stopped() {
        let Some(s) = ctx.connect_or_fail(KIND, OP_BOUND + MARGIN) else {
            continue;
        };
        let mut c = HttpConn::new(s);
        'conn: for _ in 0..rng.range(1, 50) {
            if ctx.stopped() {
                break;
            }
            let reqs: Vec<Req> = (0..16)
                .map(|_| http_request(rng, ctx, files, true))
                .collect();
            let burst: Vec<u8> = reqs.iter().flat_map(|r| r.bytes.iter().copied()).collect();
            let t = Instant::now();
            if let Err(e) = c.s.write_all(&burst) {
                ctx.stats.fail(KIND, "write", e.to_string());
                break;
            }
            for (i, req) in reqs.iter().enumerate() {
                match c.response(req.head_only) {
                    Ok(resp) => {
                        if let Err(e) = check(req, &resp) {
                            ctx.stats.fail(
                                KIND,
                                "wrong or out-of-order answer",
                                format!("#{i}: {e}"),
                            );
                            break 'conn;
                        }
                    }
                    Err(e) => {
                        let what = if matches!(e, ReadErr::Timeout(_)) {
                            "hang"
                        } else {
                            "missing response"
                        };
                        ctx.stats
                            .fail(KIND, what, format!("#{i} of 16 ({}): {e}", req.label));
                        break 'conn;
                    }
                }
            }
            ctx.stats.ok(KIND, t.elapsed(), 16);
        }
    }
}

fn http_malformed(ctx: &Ctx, rng: &mut Rng) {
    const KIND: &str = "malformed";
    // The rows of the protocols test, past the server's default limits here.
    let rows: Vec<MalformedRequest> = MALFORMED
        .iter()
        .cloned()
        .chain(over_limits(&Limits::DEFAULT))
        .collect();
    while !ctx.stopped() {
        let row = &rows[rng.below(rows.len())];
        let (name, request, status) = (row.name, &row.request[..], row.status);
        let t = Instant::now();
        let Some(s) = ctx.connect_or_fail(KIND, OP_BOUND) else {
            continue;
        };
        let mut c = HttpConn::new(s);
        // Sometimes behind a valid request on the same connection.
        let first = rng.chance(30);
        let mut input = Vec::new();
        if first {
            input.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        }
        input.extend_from_slice(request);
        input.extend_from_slice(SMUGGLED);
        // The server may close before it read all of a big request: a reset is fine.
        let _ = c.s.write_all(&input);
        let result = (|| -> Result<(), (&'static str, String)> {
            if first {
                let r = c
                    .response(false)
                    .map_err(|e| ("bad response", format!("{name}: first request: {e}")))?;
                if r.status != 200 {
                    return Err((
                        "wrong answer",
                        format!("{name}: first request got {}", r.status),
                    ));
                }
            }
            let r = c.response(false).map_err(|e| match e {
                ReadErr::Timeout(_) => ("hang", format!("{name}: {e}")),
                _ => ("bad response", format!("{name}: {e}")),
            })?;
            if r.status != status {
                return Err((
                    "wrong status",
                    format!("{name}: {} (want {status})", r.status),
                ));
            }
            if !r.closes() {
                return Err(("no Connection: close", name.to_string()));
            }
            c.expect_close()
                .map_err(|e| ("not closed (smuggling?)", format!("{name}: {e}")))
        })();
        match result {
            Ok(()) => ctx.stats.ok(KIND, t.elapsed(), 1 + u64::from(first)),
            Err((what, detail)) => ctx.stats.fail(KIND, what, detail),
        }
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
fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    chaos::mutate(&mut rng.0, input, FIELDS);
}

fn http_mutated(ctx: &Ctx, rng: &mut Rng) {
    const KIND: &str = "mutated";
    // /delay waits at most 10 s (the example's limit) whatever the mutation.
    let bound = Duration::from_secs(10) + OP_BOUND;
    let bases: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n",
        b"GET /delay?ms=5 HTTP/1.1\r\nHost: soak\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: soak\r\nAccept: */*\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\nHost: soak\r\n\r\n",
    ];
    while !ctx.stopped() {
        let mut input = bases[rng.below(bases.len())].to_vec();
        mutate(rng, &mut input);
        let t = Instant::now();
        let Some(s) = ctx.connect_or_fail(KIND, bound) else {
            continue;
        };
        let mut c = HttpConn::new(s);
        let _ = c.s.write_all(&input);
        // No more requests: the server answers what it read, then closes.
        let _ = c.s.shutdown(Shutdown::Write);
        let mut answers = 0;
        let outcome = loop {
            // No HEAD in the inputs: a HEAD made by a mutation that the server rejects gets
            // a body, one it accepts none, and the reader cannot tell them apart.
            match c.response(false) {
                Ok(_) => answers += 1,
                Err(ReadErr::Closed) => break Ok(()),
                Err(ReadErr::Timeout(n)) => {
                    break Err((
                        "hang",
                        format!(
                            "{n} bytes after {:?}; input {:?}",
                            t.elapsed(),
                            show(&input)
                        ),
                    ))
                }
                // A reset after the server rejected a request it had not read whole.
                Err(ReadErr::Cut(e)) if c.buf.is_empty() && answers > 0 => {
                    let _ = e;
                    break Ok(());
                }
                Err(e) => {
                    break Err(("malformed answer", format!("{e}; input {:?}", show(&input))))
                }
            }
        };
        match outcome {
            Ok(()) => ctx.stats.ok(KIND, t.elapsed(), answers),
            Err((what, detail)) => ctx.stats.fail(KIND, what, detail),
        }
    }
}

fn http_slowloris(ctx: &Ctx, rng: &mut Rng) {
    const KIND: &str = "slowloris";
    let bound = REQUEST_TIMEOUT + MARGIN;
    // Spread the starts.
    ctx.nap(Duration::from_millis(rng.range(0, 3000) as u64));
    while !ctx.stopped() {
        // Only start what can end before the load does.
        if Instant::now() + bound > ctx.load_end {
            ctx.nap(Duration::from_secs(3600));
            break;
        }
        let Some(s) = ctx.connect_or_fail(KIND, ctx.opts.slow_interval + MARGIN) else {
            continue;
        };
        let mut c = HttpConn::new(s);
        let head = b"GET / HTTP/1.1\r\nHost: soak\r\nX-Slow: ";
        let t = Instant::now();
        let mut sent = 0usize;
        let mut closed_at = None;
        // One byte per interval, until the server answers or closes.
        while t.elapsed() < bound {
            let byte = if sent < head.len() { head[sent] } else { b'a' };
            if c.s.write_all(&[byte]).is_err() {
                closed_at = Some(t.elapsed());
                break;
            }
            sent += 1;
            let _ = c.s.set_read_timeout(Some(ctx.opts.slow_interval));
            match c.fill() {
                Ok(_) => {
                    closed_at = Some(t.elapsed());
                    break;
                }
                Err(e) if is_timeout(&e) => {}
                Err(_) => {
                    closed_at = Some(t.elapsed());
                    break;
                }
            }
        }
        let Some(at) = closed_at else {
            ctx.stats.fail(
                KIND,
                "hang",
                format!("still open after {bound:?} ({sent} bytes sent)"),
            );
            continue;
        };
        if at + Duration::from_secs(1) < REQUEST_TIMEOUT {
            ctx.stats.fail(
                KIND,
                "closed before the request timeout",
                format!("after {at:?}"),
            );
            continue;
        }
        let _ = c.s.set_read_timeout(Some(MARGIN));
        if c.buf.is_empty() {
            ctx.stats
                .fail(KIND, "closed without a 408", format!("after {at:?}"));
            continue;
        }
        match c.response(false) {
            Ok(r) if r.status == 408 && r.closes() => match c.expect_close() {
                Ok(()) => ctx.stats.ok(KIND, t.elapsed(), 1),
                Err(e) => ctx.stats.fail(KIND, "not closed after 408", e),
            },
            Ok(r) => ctx.stats.fail(
                KIND,
                "wrong answer",
                format!("status {} after {at:?}", r.status),
            ),
            Err(e) => ctx.stats.fail(KIND, "bad response", e.to_string()),
        }
    }
}

fn http_abrupt(ctx: &Ctx, rng: &mut Rng, files: &Files) {
    const KIND: &str = "abrupt";
    while !ctx.stopped() {
        let t = Instant::now();
        let Some(s) = ctx.connect_or_fail(KIND, OP_BOUND) else {
            continue;
        };
        let mut c = HttpConn::new(s);
        let variant = rng.below(5);
        let result: Result<(), (&str, String)> = match variant {
            // Half a request, then close (or reset).
            0 => {
                let req = http_request(rng, ctx, files, false).bytes;
                let cut = rng.below(req.len());
                let _ = c.s.write_all(&req[..cut]);
                if rng.chance(50) {
                    set_reset_on_close(&c.s);
                }
                Ok(())
            }
            // Reset in the middle of a big response.
            1 => {
                let _ =
                    c.s.write_all(b"GET /static/big.bin HTTP/1.1\r\nHost: soak\r\n\r\n");
                let want = rng.range(1, 512 * 1024);
                while c.buf.len() < want {
                    match c.fill() {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                set_reset_on_close(&c.s);
                Ok(())
            }
            // Requests whose answers are pending (timer, worker thread), then reset.
            2 => {
                let _ = c.s.write_all(
                    b"GET /delay?ms=200 HTTP/1.1\r\nHost: soak\r\n\r\nGET /thread?ms=20 HTTP/1.1\r\nHost: soak\r\n\r\n",
                );
                std::thread::sleep(Duration::from_millis(rng.range(0, 30) as u64));
                set_reset_on_close(&c.s);
                Ok(())
            }
            // Half-close after the request: the answer, then the close.
            3 => {
                let req = http_request(rng, ctx, files, false);
                let _ = c.s.write_all(&req.bytes);
                let _ = c.s.shutdown(Shutdown::Write);
                match c.response(req.head_only) {
                    Ok(r) => check(&req, &r)
                        .map_err(|e| ("wrong answer after half-close", e))
                        .and_then(|()| {
                            c.expect_close()
                                .map_err(|e| ("not closed after half-close", e))
                        }),
                    Err(e) => Err(("no answer after half-close", format!("{}: {e}", req.label))),
                }
            }
            // Pipelined, reset after reading part of the answers.
            _ => {
                let mut burst = Vec::new();
                for _ in 0..16 {
                    burst.extend_from_slice(&http_request(rng, ctx, files, true).bytes);
                }
                let _ = c.s.write_all(&burst);
                let want = rng.below(2048);
                while c.buf.len() < want {
                    match c.fill() {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                set_reset_on_close(&c.s);
                Ok(())
            }
        };
        drop(c);
        match result {
            Ok(()) => ctx.stats.ok(KIND, t.elapsed(), 1),
            Err((what, detail)) => ctx.stats.fail(KIND, what, detail),
        }
    }
}

/// Sends requests (or echo bytes) and never reads; holds the connection a while, then
/// closes it. The server's memory must stay bounded meanwhile (the sampler checks).
fn nonreader(ctx: &Ctx, rng: &mut Rng) {
    const KIND: &str = "nonreader";
    while !ctx.stopped() {
        let t = Instant::now();
        let Some(s) = ctx.connect_or_fail(KIND, Duration::from_secs(1)) else {
            continue;
        };
        let chunk: Vec<u8> = match ctx.opts.server {
            ServerKind::Http => {
                let one: &[u8] = if rng.chance(20) {
                    b"GET /static/big.bin HTTP/1.1\r\nHost: soak\r\n\r\n"
                } else {
                    b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n"
                };
                one.repeat(64 * 1024 / one.len())
            }
            ServerKind::Echo => rng.bytes(64 * 1024),
        };
        let mut sent = 0usize;
        let mut blocked = false;
        let mut broken = false;
        while sent < ctx.opts.nonreader_bytes && !ctx.stopped() {
            match (&s).write(&chunk) {
                Ok(0) => break,
                Ok(n) if n < chunk.len() => {
                    // A short write: the server stopped reading. Finish it, or time out.
                    sent += n;
                    match (&s).write_all(&chunk[n..]) {
                        Ok(()) => sent += chunk.len() - n,
                        Err(e) if is_timeout(&e) => {
                            blocked = true;
                            break;
                        }
                        Err(_) => {
                            broken = true;
                            break;
                        }
                    }
                }
                Ok(n) => sent += n,
                Err(e) if is_timeout(&e) => {
                    blocked = true;
                    break;
                }
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        // A partial request was left behind: the server may answer it with a 408 later.
        ctx.stats.note(format!(
            "nonreader: {}",
            if blocked {
                "server stopped reading"
            } else if broken {
                "server closed"
            } else {
                "sent the whole amount"
            }
        ));
        ctx.nap(Duration::from_secs(rng.range(1, 4) as u64));
        if rng.chance(50) {
            set_reset_on_close(&s);
        }
        drop(s);
        ctx.stats
            .ok(KIND, t.elapsed(), (sent / chunk.len().max(1)) as u64);
    }
}

// ---------------------------------------------------------------------------------------
// Echo clients

fn echo_pingpong(ctx: &Ctx, rng: &mut Rng, burst: bool) {
    let kind: &'static str = if burst { "pipeline" } else { "keepalive" };
    while !ctx.stopped() {
        let Some(s) = ctx.connect_or_fail(kind, OP_BOUND) else {
            continue;
        };
        let mut s = s;
        for _ in 0..rng.range(1, 200) {
            if ctx.stopped() {
                break;
            }
            let t = Instant::now();
            let (msg, n) = if burst {
                let parts: Vec<Vec<u8>> = (0..16).map(|_| rng.bytes_in(1, 2048)).collect();
                (parts.concat(), 16)
            } else {
                // Sizes from 1 byte to 64 KiB, small ones more often.
                let max = [16, 1024, 16 * 1024, 64 * 1024][rng.below(4)];
                (rng.bytes_in(1, max), 1)
            };
            if let Err(e) = s.write_all(&msg) {
                ctx.stats.fail(kind, "write", e.to_string());
                break;
            }
            let mut back = vec![0u8; msg.len()];
            match s.read_exact(&mut back) {
                Ok(()) if back == msg => ctx.stats.ok(kind, t.elapsed(), n),
                Ok(()) => {
                    let at = back.iter().zip(&msg).position(|(a, b)| a != b).unwrap_or(0);
                    ctx.stats.fail(
                        kind,
                        "wrong echo",
                        format!("{} bytes, first difference at {at}", msg.len()),
                    );
                    break;
                }
                Err(e) if is_timeout(&e) => {
                    ctx.stats.fail(
                        kind,
                        "hang",
                        format!("{} bytes, {:?}", msg.len(), t.elapsed()),
                    );
                    break;
                }
                Err(e) => {
                    ctx.stats.fail(kind, "echo cut", e.to_string());
                    break;
                }
            }
        }
    }
}

fn echo_halfclose(ctx: &Ctx, rng: &mut Rng) {
    const KIND: &str = "halfclose";
    while !ctx.stopped() {
        let t = Instant::now();
        let Some(mut s) = ctx.connect_or_fail(KIND, OP_BOUND) else {
            continue;
        };
        let msg = rng.bytes_in(0, 64 * 1024);
        let result = s
            .write_all(&msg)
            .and_then(|()| s.shutdown(Shutdown::Write))
            .and_then(|()| {
                let mut back = Vec::new();
                s.read_to_end(&mut back).map(|_| back)
            });
        match result {
            Ok(back) if back == msg => ctx.stats.ok(KIND, t.elapsed(), 1),
            Ok(back) => ctx.stats.fail(
                KIND,
                "wrong echo after half-close",
                format!("sent {}, got {}", msg.len(), back.len()),
            ),
            Err(e) if is_timeout(&e) => {
                ctx.stats.fail(KIND, "hang", format!("{} bytes", msg.len()))
            }
            Err(e) => ctx.stats.fail(KIND, "error", e.to_string()),
        }
    }
}

fn echo_udp(ctx: &Ctx, rng: &mut Rng) {
    const KIND: &str = "udp";
    let sock = match UdpSocket::bind("127.0.0.1:0").and_then(|s| {
        s.connect(ctx.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        Ok(s)
    }) {
        Ok(s) => s,
        Err(e) => {
            ctx.stats.fail(KIND, "socket", e.to_string());
            return;
        }
    };
    let mut seq = 0u64;
    let mut buf = vec![0u8; 65536];
    while !ctx.stopped() {
        seq += 1;
        let mut msg = seq.to_be_bytes().to_vec();
        msg.extend(rng.bytes_in(0, 1400));
        let t = Instant::now();
        if let Err(e) = sock.send(&msg) {
            ctx.stats.fail(KIND, "send", e.to_string());
            continue;
        }
        // Skip late echoes of earlier datagrams.
        loop {
            match sock.recv(&mut buf) {
                Ok(n) if n >= 8 && buf[..8] != msg[..8] => continue,
                Ok(n) if buf[..n] == msg[..] => {
                    ctx.stats.ok(KIND, t.elapsed(), 1);
                    break;
                }
                Ok(n) => {
                    ctx.stats.fail(
                        KIND,
                        "wrong datagram",
                        format!("sent {}, got {n}", msg.len()),
                    );
                    break;
                }
                Err(_) => {
                    // Loopback drops a datagram only when a buffer is full: noted, and
                    // checked against a tolerance at the end.
                    ctx.stats.note("udp: datagram lost (1 s)".into());
                    break;
                }
            }
        }
    }
}

fn echo_abrupt(ctx: &Ctx, rng: &mut Rng) {
    const KIND: &str = "abrupt";
    while !ctx.stopped() {
        let t = Instant::now();
        let Some(mut s) = ctx.connect_or_fail(KIND, OP_BOUND) else {
            continue;
        };
        let msg = rng.bytes_in(1, 256 * 1024);
        match rng.below(3) {
            // Connect and close at once.
            0 => {}
            // Send, read part of the echo, reset.
            1 => {
                let sent = msg.len().min(32 * 1024);
                let _ = s.write_all(&msg[..sent]);
                let mut back = vec![0u8; rng.range(0, sent.min(1024))];
                let _ = s.read_exact(&mut back);
            }
            // Send much more than is read, reset while the echo is being written.
            _ => {
                let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                let _ = s.write_all(&msg);
            }
        }
        if rng.chance(70) {
            set_reset_on_close(&s);
        }
        drop(s);
        ctx.stats.ok(KIND, t.elapsed(), 1);
    }
}

// ---------------------------------------------------------------------------------------
// The server and its samples

struct ServerProc {
    child: Child,
    addr: SocketAddr,
    // Kept open so the server never writes into a closed pipe.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

fn start_server(bin: &PathBuf, args: &[String], log: &PathBuf) -> Result<ServerProc, String> {
    use std::io::BufRead;
    let log = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut child = Command::new(bin)
        .args(["--port", "0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let mut out = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    let _ = out.read_line(&mut line);
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok());
    let Some(addr) = addr else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "{} printed {line:?}, not `listening on IP:PORT`",
            bin.display()
        ));
    };
    Ok(ServerProc {
        child,
        addr,
        _stdout: out,
    })
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    t: f64,
    rss_kib: u64,
    fds: usize,
    sockets: usize,
    cpu_user: f64,
    cpu_sys: f64,
}

fn sample(pid: u32, start: Instant) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    let mut fds = 0;
    let mut sockets = 0;
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        fds += 1;
        if std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:")) {
            sockets += 1;
        }
    }
    let (cpu_user, cpu_sys) = procs::cpu_split(pid)?;
    Some(Sample {
        t: start.elapsed().as_secs_f64(),
        rss_kib,
        fds,
        sockets,
        cpu_user,
        cpu_sys,
    })
}

/// What the server's descriptors point to, counted by kind (`socket`, `anon_inode:[…]`,
/// a path's directory…).
fn fd_kinds(pid: u32) -> String {
    let mut kinds = BTreeMap::<String, usize>::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in dir.flatten() {
            let target = std::fs::read_link(e.path())
                .map(|l| l.to_string_lossy().to_string())
                .unwrap_or_else(|_| "?".into());
            let kind = match target.split_once(':') {
                Some((k, rest)) if !target.starts_with('/') && !k.starts_with("anon_inode") => {
                    let _ = rest;
                    k.to_string()
                }
                _ => target,
            };
            *kinds.entry(kind).or_default() += 1;
        }
    }
    kinds
        .iter()
        .map(|(k, n)| format!("{n}× {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A final request, on a new connection: the server still answers.
fn final_check(addr: SocketAddr, server: ServerKind) -> Result<(), String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(OP_BOUND))
        .map_err(|e| e.to_string())?;
    match server {
        ServerKind::Http => {
            let mut c = HttpConn::new(s);
            c.s.write_all(b"GET / HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
                .map_err(|e| e.to_string())?;
            let r = c.response(false).map_err(|e| e.to_string())?;
            if r.status != 200 || r.body != b"Hello, World!\n" {
                return Err(format!("status {}, body {:?}", r.status, show(&r.body)));
            }
            c.expect_close()
        }
        ServerKind::Echo => {
            let mut s = s;
            s.write_all(b"still there?").map_err(|e| e.to_string())?;
            let mut back = [0u8; 12];
            s.read_exact(&mut back).map_err(|e| e.to_string())?;
            if &back != b"still there?" {
                return Err(format!("echo {:?}", String::from_utf8_lossy(&back)));
            }
            Ok(())
        }
    }
}

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

fn mean(xs: &[Sample]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.iter().map(|s| s.rss_kib as f64).sum::<f64>() / xs.len() as f64
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("soak: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: Opts) -> Result<bool, String> {
    let name = match opts.server {
        ServerKind::Http => "http_server",
        ServerKind::Echo => "echo_server",
    };
    let bin = opts.bin.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/release/examples")
            .join(name)
    });
    let (root, files) = make_root().map_err(|e| format!("static files: {e}"))?;
    let mut args = Vec::new();
    if opts.server == ServerKind::Http {
        args = vec!["--root".to_string(), root.display().to_string()];
    }
    // The server's log (its stderr), summed up in the report.
    let log_path = root.join("server.log");
    let mut server = start_server(&bin, &args, &log_path)?;
    let pid = server.child.id();
    let t0 = Instant::now();
    // What the server holds before any client: the reference for descriptors.
    std::thread::sleep(Duration::from_millis(200));
    let base = sample(pid, t0).ok_or("cannot read the server's /proc entries")?;
    let overflows_before = procs::listen_overflows();
    let settle = opts.settle.unwrap_or(match opts.server {
        ServerKind::Http if opts.fetch => Duration::from_secs(40),
        _ => Duration::from_secs(10),
    });

    println!(
        "soak: {} ({}) on {}, pid {pid}, {:.0} s of load ({:.0} s warm-up), seed {}",
        name,
        bin.display(),
        server.addr,
        opts.duration.as_secs_f64(),
        opts.warmup.as_secs_f64(),
        opts.seed
    );
    let mix: Vec<String> = opts
        .mix
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    let total: usize = opts.mix.values().sum();
    println!("client threads ({total}): {}", mix.join(" "));
    println!(
        "at start: {} descriptors ({} sockets), RSS {:.1} MiB",
        base.fds,
        base.sockets,
        mib(base.rss_kib as f64)
    );

    let ctx = Arc::new(Ctx {
        addr: server.addr,
        opts: opts.clone(),
        stop: AtomicBool::new(false),
        load_end: Instant::now() + opts.duration,
        stats: Stats {
            inner: Mutex::new(StatsInner::default()),
            verbose: opts.verbose,
        },
    });
    let files = Arc::new(files);

    // The sampler, once a second until told to stop.
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let samples = samples.clone();
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut next = Instant::now();
            while sampling.load(Ordering::Relaxed) {
                if let Some(s) = sample(pid, t0) {
                    samples.lock().unwrap_or_else(|e| e.into_inner()).push(s);
                }
                next += Duration::from_secs(1);
                while sampling.load(Ordering::Relaxed) && Instant::now() < next {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        })
    };

    let mut threads = Vec::new();
    let mut n = 0u64;
    for (&kind, &count) in &opts.mix {
        for _ in 0..count {
            n += 1;
            let seed = opts.seed.wrapping_mul(1000).wrapping_add(n);
            let ctx = ctx.clone();
            let files = files.clone();
            let server_kind = opts.server;
            let handle = std::thread::Builder::new()
                .name(format!("{kind}-{n}"))
                .spawn(move || {
                    let mut rng = Rng::new(seed);
                    match (server_kind, kind) {
                        (ServerKind::Http, "keepalive") => http_keepalive(&ctx, &mut rng, &files),
                        (ServerKind::Http, "pipeline") => http_pipeline(&ctx, &mut rng, &files),
                        (ServerKind::Http, "malformed") => http_malformed(&ctx, &mut rng),
                        (ServerKind::Http, "mutated") => http_mutated(&ctx, &mut rng),
                        (ServerKind::Http, "slowloris") => http_slowloris(&ctx, &mut rng),
                        (ServerKind::Http, "abrupt") => http_abrupt(&ctx, &mut rng, &files),
                        (ServerKind::Echo, "keepalive") => echo_pingpong(&ctx, &mut rng, false),
                        (ServerKind::Echo, "pipeline") => echo_pingpong(&ctx, &mut rng, true),
                        (ServerKind::Echo, "halfclose") => echo_halfclose(&ctx, &mut rng),
                        (ServerKind::Echo, "udp") => echo_udp(&ctx, &mut rng),
                        (ServerKind::Echo, "abrupt") => echo_abrupt(&ctx, &mut rng),
                        (_, "nonreader") => nonreader(&ctx, &mut rng),
                        _ => {}
                    }
                })
                .map_err(|e| e.to_string())?;
            threads.push((kind, seed, handle));
        }
    }

    // The load, with a line of progress every 10 s.
    while Instant::now() < ctx.load_end {
        std::thread::sleep(
            Duration::from_millis(200).min(ctx.load_end - Instant::now().min(ctx.load_end)),
        );
        let elapsed = t0.elapsed().as_secs();
        if elapsed > 0 && elapsed % 10 == 0 {
            if let Some(s) = samples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .last()
                .copied()
            {
                let st = ctx.stats.lock();
                let reqs: u64 = st.requests.values().sum();
                let fails: u64 = st.failures.values().map(|f| f.0).sum();
                eprintln!(
                    "  t={:>3.0}s  RSS {:>6.1} MiB  fds {:>4}  sockets {:>4}  cpu {:>5.1} s  requests {reqs}  failures {fails}",
                    s.t,
                    mib(s.rss_kib as f64),
                    s.fds,
                    s.sockets,
                    s.cpu_user + s.cpu_sys
                );
            }
            std::thread::sleep(Duration::from_millis(800));
        }
    }
    let load_end_t = t0.elapsed().as_secs_f64();
    ctx.stop.store(true, Ordering::Relaxed);

    // Every client finishes its operation within its own bound.
    let join_bound = REQUEST_TIMEOUT + MARGIN * 2;
    let join_deadline = Instant::now() + join_bound;
    let mut stuck = Vec::new();
    for (kind, seed, h) in threads {
        while !h.is_finished() && Instant::now() < join_deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if h.is_finished() {
            if h.join().is_err() {
                stuck.push(format!("{kind} (seed {seed}) panicked"));
            }
        } else {
            stuck.push(format!(
                "{kind} (seed {seed}) still running {join_bound:?} after the load"
            ));
        }
    }

    // Back to the starting descriptors.
    let settle_start = Instant::now();
    let mut settled = None;
    while settle_start.elapsed() < settle {
        if let Some(s) = sample(pid, t0) {
            if s.fds <= base.fds {
                settled = Some((settle_start.elapsed(), s));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let end = sample(pid, t0).ok_or("the server is gone")?;
    let leftover = if settled.is_none() {
        fd_kinds(pid)
    } else {
        String::new()
    };
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let final_result = final_check(server.addr, opts.server);
    let overflows = procs::listen_overflows()
        .zip(overflows_before)
        .map(|((o, d), (o0, d0))| (o.saturating_sub(o0), d.saturating_sub(d0)));

    // SIGTERM: a clean exit.
    procs::signal(pid, libc::SIGTERM);
    let exit_deadline = Instant::now() + Duration::from_secs(5);
    let exit = loop {
        match server.child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < exit_deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = server.child.kill();
                let _ = server.child.wait();
                break None;
            }
        }
    };
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&root);

    // The report.
    let samples = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let st = ctx.stats.lock();
    let mut pass = true;
    let mut verdict = |ok: bool, line: String| {
        println!("  [{}] {line}", if ok { "ok" } else { "FAIL" });
        pass &= ok;
    };

    println!(
        "\n== soak report: {name}, seed {}, {:.0} s of load ==",
        opts.seed, load_end_t
    );
    println!("operations (ok), requests exchanged, slowest operation, per kind:");
    for kind in KINDS {
        if opts.mix.get(kind).copied().unwrap_or(0) == 0 {
            continue;
        }
        println!(
            "  {kind:<10} {:>9} ops {:>10} requests   slowest {:>8.3} s",
            st.ok.get(kind).copied().unwrap_or(0),
            st.requests.get(kind).copied().unwrap_or(0),
            st.slowest.get(kind).map_or(0.0, |d| d.as_secs_f64()),
        );
    }
    for (what, n) in &st.notes {
        println!("  note: {what}: {n}");
    }
    let total_fail: u64 = st.failures.values().map(|f| f.0).sum();
    println!("failures: {total_fail}");
    // The kernel's side of a hang: handshakes dropped at a full accept queue (on the
    // whole machine, during the run) are waited out by the client's kernel, in seconds.
    match overflows {
        Some((0, 0)) => println!("  kernel: no handshake dropped at a full accept queue"),
        Some((o, d)) => println!(
            "  kernel: {o} accept-queue overflows, {d} listen drops on this machine during the run \
             (TcpExt ListenOverflows/ListenDrops): a client whose handshake was dropped waits \
             for its kernel's SYN retransmissions (1 s, 3 s, 7 s, ...), which can read as a hang"
        ),
        None => {}
    }
    for (what, (n, examples)) in &st.failures {
        println!("  {what}: {n}");
        for e in examples {
            println!("      e.g. {e}");
        }
    }

    // The server's log: not a check (a handler cancelled by a client that left is
    // logged), but worth a look.
    let mut levels = BTreeMap::<&str, (usize, Vec<&str>)>::new();
    for line in log.lines() {
        for level in ["ERROR", "WARN"] {
            if line.contains(&format!(" {level} ")) {
                let e = levels.entry(level).or_default();
                e.0 += 1;
                if e.1.len() < 2 {
                    e.1.push(line);
                }
            }
        }
    }
    println!("server log: {} lines", log.lines().count());
    for (level, (n, first)) in &levels {
        println!("  {level}: {n}");
        for l in first {
            println!("      e.g. {l}");
        }
    }

    let warm = samples
        .iter()
        .find(|s| s.t >= opts.warmup.as_secs_f64())
        .copied();
    let load: Vec<Sample> = samples
        .iter()
        .filter(|s| s.t >= opts.warmup.as_secs_f64() && s.t <= load_end_t)
        .copied()
        .collect();
    let rss: Vec<u64> = samples.iter().map(|s| s.rss_kib).collect();
    let max_fds = samples.iter().map(|s| s.fds).max().unwrap_or(0);
    let max_sockets = samples.iter().map(|s| s.sockets).max().unwrap_or(0);
    println!(
        "server RSS (MiB): start {:.1}, after warm-up {:.1}, min {:.1}, max {:.1}, end {:.1}  ({} samples)",
        mib(base.rss_kib as f64),
        mib(warm.map_or(0, |s| s.rss_kib) as f64),
        mib(rss.iter().copied().min().unwrap_or(0) as f64),
        mib(rss.iter().copied().max().unwrap_or(0) as f64),
        mib(end.rss_kib as f64),
        samples.len()
    );
    println!(
        "server descriptors: start {} ({} sockets), max {max_fds} ({max_sockets} sockets), end {} ({} sockets)",
        base.fds, base.sockets, end.fds, end.sockets
    );
    let cpu = end.cpu_user + end.cpu_sys - base.cpu_user - base.cpu_sys;
    println!(
        "server CPU: {:.1} s user + {:.1} s system = {:.1} s ({:.0}% of one core over the load)",
        end.cpu_user - base.cpu_user,
        end.cpu_sys - base.cpu_sys,
        cpu,
        100.0 * cpu / load_end_t.max(1e-9)
    );

    println!("checks:");
    verdict(
        total_fail == 0,
        format!("no wrong answer, no hang, no malformed response ({total_fail} failures)"),
    );
    if let Some(lost) = st.notes.get("udp: datagram lost (1 s)") {
        let sent = st.requests.get("udp").copied().unwrap_or(0) + lost;
        verdict(
            (*lost as f64) <= 0.01 * sent as f64,
            format!("UDP datagrams lost: {lost} of {sent} (at most 1%)"),
        );
    }
    verdict(
        stuck.is_empty(),
        if stuck.is_empty() {
            format!("every client finished within {join_bound:?} of the load's end")
        } else {
            format!("clients stuck: {}", stuck.join("; "))
        },
    );
    verdict(
        settled.is_some(),
        match settled {
            Some((d, s)) => format!(
                "descriptors back to the start's {} within {:.1} s of the load's end (bound {:.0} s; now {})",
                base.fds,
                d.as_secs_f64(),
                settle.as_secs_f64(),
                s.fds
            ),
            None => format!(
                "descriptors not back to {} within {:.0} s: {} ({} sockets): {leftover}",
                base.fds,
                settle.as_secs_f64(),
                end.fds,
                end.sockets
            ),
        },
    );
    match warm {
        Some(w) => {
            let growth = mib(end.rss_kib as f64 - w.rss_kib as f64);
            verdict(
                growth <= opts.rss_growth_mib,
                format!(
                    "RSS growth after warm-up {growth:+.1} MiB (at most {} MiB)",
                    opts.rss_growth_mib
                ),
            );
            // Against the start: a burst during the warm-up counts too.
            let peak = mib(rss.iter().copied().max().unwrap_or(0) as f64 - base.rss_kib as f64);
            verdict(
                peak <= opts.rss_peak_mib,
                format!(
                    "RSS peak above the start {peak:+.1} MiB (at most {} MiB)",
                    opts.rss_peak_mib
                ),
            );
            let third = load.len() / 3;
            if third >= 1 {
                let trend = mib(mean(&load[load.len() - third..]) - mean(&load[..third]));
                verdict(
                    trend <= opts.rss_trend_mib,
                    format!(
                        "RSS trend: last third's mean minus first third's {trend:+.1} MiB (at most {} MiB)",
                        opts.rss_trend_mib
                    ),
                );
            } else {
                verdict(
                    false,
                    "too few samples for the RSS trend (a longer --duration)".into(),
                );
            }
        }
        None => verdict(false, "no sample after the warm-up".into()),
    }
    verdict(
        final_result.is_ok(),
        match &final_result {
            Ok(()) => "the server still answers a final request".into(),
            Err(e) => format!("final request: {e}"),
        },
    );
    verdict(
        exit.is_some_and(|s| s.success()),
        match exit {
            Some(s) => format!("exit on SIGTERM: {s}"),
            None => "no exit within 5 s of SIGTERM (killed)".into(),
        },
    );
    println!("{}", if pass { "PASS" } else { "FAIL" });
    Ok(pass)
}
