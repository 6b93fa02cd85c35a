//! The main example: an HTTP/1.1 server on one reactor, where each route shows a way of
//! producing a response.
//!
//! ```sh
//! cargo run --release --example http_server              # 127.0.0.1:8080
//! cargo run --release --example http_server -- --port 0  # any free port
//! curl -s localhost:8080/                   # Hello, World!
//! curl -s -d 'rope' localhost:8080/echo     # the body, echoed
//! curl -s 'localhost:8080/delay?ms=250'     # a Deferred fired by call_later
//! curl -s 'localhost:8080/thread?ms=100'    # work on the worker pool
//! curl -s 'localhost:8080/fetch?url=http://127.0.0.1:8080/'  # our HTTP client, chained in
//! cargo run --example http_server -- --root ./docs  # and files under /static/
//! curl -s localhost:8080/static/index.html
//! cargo run --example http_server -- --idle-timeout 5 --request-timeout 2.5
//! cargo run --example http_server -- --tls-cert cert.pem --tls-key key.pem  # HTTPS
//! curl -s --cacert ca.pem https://localhost:8080/
//! ```
//!
//! It prints `listening on IP:PORT` once it accepts connections; `RUST_LOG=debug` shows
//! what the reactor does. Ctrl-C (SIGINT) or SIGTERM drains it: it stops accepting,
//! closes idle connections, answers the requests in flight with `Connection: close`
//! (for at most `--drain-timeout` seconds, default 10), then exits 0; a second signal
//! stops it at once.
//!
//! ```sh
//! cargo run --release --example http_server -- --reactors 2 --accept shared
//! ```
//!
//! runs N reactors, one thread each, on one port: `per-reactor` gives each its own
//! accept queue (`SO_REUSEPORT`), `shared` has them all accept from one, `dispatcher`
//! (`dispatcher:round-robin`, the same, or `dispatcher:least-loaded`) has one reactor
//! accept and hand each connection to a reactor's own queue.

use std::time::Duration;

use ropewalk::prelude::*;
use ropewalk::protocols::http::{
    Client, ClientConfig, HttpServer, Request, Response, ServerConfig, Site, StaticFiles,
};
use ropewalk::reactor::tls::TlsServerBuilder;
use ropewalk::reactor::{
    activation, defer_later, AcceptQueue, GroupListener, Reactor, ReactorGroup,
};

/// Longest delay the `/delay` and `/thread` routes accept.
const MAX_MS: u64 = 10_000;

fn millis(req: &Request) -> Result<Duration, Response> {
    let ms = match req.query_param("ms") {
        None => 0,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| Response::text("ms must be a whole number\n").with_status(400))?,
    };
    if ms > MAX_MS {
        return Err(Response::text(format!("ms must be at most {MAX_MS}\n")).with_status(400));
    }
    Ok(Duration::from_millis(ms))
}

/// How long `/fetch` waits for the page it fetches.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

fn site(reactor: &Reactor, root: Option<StaticFiles>) -> Site {
    let delay_reactor = reactor.clone();
    let thread_reactor = reactor.clone();
    let client = Client::with_config(
        reactor,
        ClientConfig {
            timeout: FETCH_TIMEOUT,
            ..ClientConfig::default()
        },
    );
    let site = Site::new()
        // Inline closure, answered at once.
        .get("/", |_req: Request| Ok(Response::text("Hello, World!\n")))
        // The request body, echoed back.
        .post("/echo", |req: Request| Ok(Response::bytes(req.into_body())))
        // A Deferred fired later by a timer: the response waits for it.
        .get("/delay", move |req: Request| {
            let wait = match millis(&req) {
                Ok(d) => d,
                Err(resp) => return Deferred::succeed(resp),
            };
            defer_later(&delay_reactor, wait, move || {
                Ok(Response::text(format!("waited {} ms\n", wait.as_millis())))
            })
        })
        // Blocking work on the worker pool, chained into the response.
        .get("/thread", move |req: Request| {
            let work = match millis(&req) {
                Ok(d) => d,
                Err(resp) => return Deferred::succeed(resp),
            };
            thread_reactor
                .defer_to_thread(move || {
                    std::thread::sleep(work); // stands for blocking work
                    Ok(format!(
                        "{:?}",
                        std::thread::current().name().unwrap_or("worker")
                    ))
                })
                .add_callback(move |thread| {
                    Ok(Response::text(format!(
                        "worked {} ms on {thread}\n",
                        work.as_millis()
                    )))
                })
        })
        // An outgoing request with our client, chained into the response.
        .get("/fetch", move |req: Request| {
            let Some(url) = req.query_param("url") else {
                return Deferred::succeed(
                    Response::text("usage: /fetch?url=http://host[:port]/path\n").with_status(400),
                );
            };
            client
                .get(&url)
                .add_callback(|resp| {
                    let head = format!("{} {}\n", resp.status(), resp.reason());
                    let mut body = head.into_bytes();
                    body.extend_from_slice(resp.body());
                    Ok(Response::bytes(body)
                        .with_header("X-Fetched-Status", resp.status().to_string()))
                })
                .add_errback(move |f: Failure| {
                    Ok(Response::text(format!("could not fetch {url}: {f}\n")).with_status(502))
                })
        });
    match root {
        // Files under --root DIR, as /static/NAME.
        Some(files) => site.mount("/static/", files),
        None => site,
    }
}

struct Args {
    port: u16,
    root: Option<std::path::PathBuf>,
    /// The server's timeouts and limits (`--idle-timeout`, `--request-timeout`).
    config: ServerConfig,
    /// HTTPS: the certificate chain and private key, PEM (`--tls-cert`, `--tls-key`).
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// How long a drain (on SIGTERM or SIGINT) waits for requests in flight.
    drain: Duration,
    /// `--reactors N` / `--accept MODE`: a group of N reactors (0: one per CPU).
    group: Option<(usize, AcceptQueue)>,
    /// `--listen-fd N`: serve on this inherited listening socket instead of `--port`.
    listen_fd: Option<i32>,
}

const USAGE: &str = "usage: http_server [--port P] [--root DIR] [--idle-timeout S] \
[--request-timeout S] [--drain-timeout S] [--reactors N] \
[--accept per-reactor|shared|dispatcher[:round-robin|:least-loaded]] \
[--listen-fd N] [--tls-cert FILE --tls-key FILE]";

/// Default `--drain-timeout`.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Seconds, as given on the command line (`1`, `2.5`): more than zero, at most a day.
fn seconds(flag: &str, v: Option<String>) -> Result<Duration, String> {
    let v = v.ok_or(format!("{flag} needs a number of seconds"))?;
    match v.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "{flag}: {v:?} is not a number of seconds (more than 0, at most 86400)"
        )),
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        port: 8080,
        root: None,
        config: ServerConfig::default(),
        tls: None,
        drain: DRAIN_TIMEOUT,
        group: None,
        listen_fd: None,
    };
    let (mut cert, mut key) = (None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let v = args.next().ok_or("--port needs a value")?;
                parsed.port = v.parse().map_err(|_| format!("bad port: {v}"))?;
            }
            "--root" => {
                let v = args.next().ok_or("--root needs a directory")?;
                parsed.root = Some(v.into());
            }
            "--idle-timeout" => parsed.config.idle_timeout = seconds(&arg, args.next())?,
            "--request-timeout" => parsed.config.request_timeout = seconds(&arg, args.next())?,
            "--tls-cert" => cert = Some(args.next().ok_or("--tls-cert needs a PEM file")?),
            "--tls-key" => key = Some(args.next().ok_or("--tls-key needs a PEM file")?),
            "--drain-timeout" => parsed.drain = seconds(&arg, args.next())?,
            "--listen-fd" => {
                let v = args.next().ok_or("--listen-fd needs a descriptor number")?;
                parsed.listen_fd = match v.parse::<i32>() {
                    Ok(n) if n >= 3 => Some(n),
                    _ => return Err(format!("--listen-fd: {v:?} is not a descriptor from 3 on")),
                };
            }
            "--reactors" => {
                let v = args.next().ok_or("--reactors needs a number")?;
                let n = match v.parse::<usize>() {
                    Ok(n) if (1..=1024).contains(&n) => n,
                    _ => return Err(format!("--reactors: {v:?} is not a number from 1 to 1024")),
                };
                let accept = parsed.group.map_or(AcceptQueue::PerReactor, |g| g.1);
                parsed.group = Some((n, accept));
            }
            "--accept" => {
                let v = args
                    .next()
                    .ok_or("--accept needs per-reactor, shared or dispatcher")?;
                let accept = v
                    .parse::<AcceptQueue>()
                    .map_err(|e| format!("--accept: {e}"))?;
                let n = parsed.group.map_or(0, |g| g.0);
                parsed.group = Some((n, accept));
            }
            "-h" | "--help" => {
                let d = ServerConfig::default();
                println!(
                    "{USAGE}\n  \
                     P = 0 picks a free port (default 8080); DIR is served under /static/;\n  \
                     --idle-timeout: how long an idle keep-alive connection stays open \
                     (default {} s);\n  \
                     --request-timeout: time to receive a request head, and the longest \
                     pause in a body (default {} s);\n  \
                     --drain-timeout: how long SIGTERM waits for requests in flight \
                     (default {} s);\n  \
                     --reactors N: N reactors, one thread each (--accept alone: one per CPU);\n  \
                     --accept: each reactor its own accept queue, one shared, or one \
                     reactor dispatching to each reactor's queue, round-robin or to the \
                     least loaded (default per-reactor);\n  \
                     --listen-fd N: serve on inherited listening socket N (systemd's \
                     LISTEN_FDS is used when set);\n  \
                     --tls-cert, --tls-key: serve HTTPS with this certificate chain and \
                     private key (PEM), on one reactor",
                    d.idle_timeout.as_secs_f64(),
                    d.request_timeout.as_secs_f64(),
                    DRAIN_TIMEOUT.as_secs_f64()
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown option: {other}")),
        }
    }
    parsed.tls = match (cert, key) {
        (Some(c), Some(k)) => Some((c.into(), k.into())),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    if parsed.tls.is_some() && parsed.group.is_some() {
        return Err("--tls-cert serves on one reactor: leave out --reactors and --accept".into());
    }
    Ok(parsed)
}

fn main() {
    env_logger::init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("http_server: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = serve(args) {
        eprintln!("http_server: {e}");
        std::process::exit(1);
    }
}

fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    // A socket from systemd (LISTEN_FDS) or the operator (--listen-fd), if any.
    let inherited = match args.listen_fd {
        Some(fd) => Some(
            activation::inherited_tcp_listener(fd).map_err(|e| format!("--listen-fd {fd}: {e}"))?,
        ),
        None => match activation::listen_fds(true)?.into_iter().next() {
            Some(fd) => Some(
                fd.into_tcp_listener()
                    .map_err(|e| format!("LISTEN_FDS: {e}"))?,
            ),
            None => None,
        },
    };
    if let Some((threads, accept)) = args.group {
        return serve_group(args, threads, accept, inherited);
    }
    let reactor = Reactor::new()?;
    let _signals = reactor.install_signal_handlers()?;
    let files = match &args.root {
        Some(dir) => Some(
            StaticFiles::new(&reactor, dir)
                .map_err(|e| format!("--root {}: {e}", dir.display()))?
                .with_prefix("/static/"),
        ),
        None => None,
    };
    let port = args.port;
    let server = HttpServer::with_config(&reactor, site(&reactor, files), args.config);
    let listening = match (inherited, &args.tls) {
        (Some(_), Some(_)) => {
            return Err("--tls-cert serves on a port of its own: leave out --listen-fd".into())
        }
        (Some(listener), None) => server.listen_on(&reactor, listener)?,
        (None, Some((cert, key))) => {
            let config = TlsServerBuilder::from_pem_files(cert, key)?
                .alpn(&[b"http/1.1"])
                .build()?;
            server.listen_tls(&reactor, ([127, 0, 0, 1], port).into(), config)?
        }
        (None, None) => server.listen(&reactor, ([127, 0, 0, 1], port).into())?,
    };
    server.drain_on_shutdown(&reactor, args.drain);
    println!("listening on {}", listening.local_addr());
    reactor.run()?;
    log::info!("stopped");
    Ok(())
}

/// N reactors on one port, each with its own server; SIGTERM drains every one.
fn serve_group(
    args: Args,
    threads: usize,
    accept: AcceptQueue,
    inherited: Option<std::net::TcpListener>,
) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(dir) = &args.root {
        // Checked once here, so a bad directory is reported before any thread starts.
        if !dir.is_dir() {
            return Err(format!("--root {}: not a directory", dir.display()).into());
        }
    }
    let listener = match inherited {
        // One inherited socket is one accept queue, which every reactor shares.
        Some(_) if accept != AcceptQueue::Shared => {
            return Err("an inherited socket is one accept queue: use --accept shared".into())
        }
        Some(l) => GroupListener::from_listener(l)?,
        None => GroupListener::bind(([127, 0, 0, 1], args.port).into(), accept)?,
    };
    let addr = listener.local_addr();
    let (root, config, drain) = (args.root, args.config, args.drain);
    let group = ReactorGroup::builder()
        .threads(threads)
        .name("http")
        .start(move |reactor, _index| {
            let files = match &root {
                Some(dir) => Some(StaticFiles::new(reactor, dir)?.with_prefix("/static/")),
                None => None,
            };
            let server = HttpServer::with_config(reactor, site(reactor, files), config.clone());
            server.listen_group(reactor, &listener)?;
            server.drain_on_shutdown(reactor, drain);
            Ok(())
        })?;
    let _signals = group.install_signal_handlers()?;
    println!("listening on {addr}");
    log::info!("{} reactors, {accept} accept queue", group.threads());
    group.join()?;
    log::info!("stopped");
    Ok(())
}
