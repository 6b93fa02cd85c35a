//! The soak's command line: the server under test, the client mix and the bounds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) const USAGE: &str = "\
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerKind {
    Http,
    Echo,
}

pub(crate) const KINDS: &[&str] = &[
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
pub(crate) struct Opts {
    pub(crate) server: ServerKind,
    pub(crate) bin: Option<PathBuf>,
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
    pub(crate) seed: u64,
    pub(crate) mix: BTreeMap<&'static str, usize>,
    pub(crate) settle: Option<Duration>,
    pub(crate) fetch: bool,
    pub(crate) rss_growth_mib: f64,
    pub(crate) rss_peak_mib: f64,
    pub(crate) rss_trend_mib: f64,
    pub(crate) nonreader_bytes: usize,
    pub(crate) slow_interval: Duration,
    pub(crate) verbose: bool,
}

pub(crate) fn default_mix(server: ServerKind) -> BTreeMap<&'static str, usize> {
    let counts: [usize; 9] = match server {
        ServerKind::Http => [4, 2, 1, 1, 3, 2, 2, 0, 0],
        ServerKind::Echo => [4, 2, 0, 0, 0, 2, 2, 1, 1],
    };
    KINDS.iter().copied().zip(counts).collect()
}

pub(crate) fn parse_args() -> Result<Opts, String> {
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
