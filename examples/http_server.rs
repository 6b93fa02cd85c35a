//! The main example: an HTTP/1.1 server on one reactor, where each route shows a way of
//! producing a response.
//!
//! ```sh
//! cargo run --release --example http_server              # 127.0.0.1:8080
//! cargo run --release --example http_server -- --port 0  # any free port
//! curl -s localhost:8080/                   # Hello, World!
//! curl -s -d 'rope' localhost:8080/echo     # the body, echoed
//! curl -s 'localhost:8080/delay?ms=250'     # a Deferred fired by call_later
//! curl -s localhost:8080/whoami             # the client's address and the server's pid
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
//! accept and hand each connection to a reactor's own queue. `--tls-cert` and `--tls-key`
//! serve HTTPS in every form: one reactor, a group, an inherited socket (`--listen-fd N`
//! or systemd's `LISTEN_FDS`).
//!
//! ```sh
//! cargo run --release --example http_server -- --two-stage --pool-threads 4
//! ```
//!
//! runs a two-stage server: the reactor does the I/O, and the handlers of `/`, `/echo`
//! and `/thread` run on the worker pool (the same closures, in a `StageTwo`); `/thread`
//! then does its blocking work right in the handler. `/delay`, `/fetch` and the static
//! files use the reactor, so they stay on it.
//!
//! ```sh
//! cargo run --release --example http_server -- --port 8080 --reuse-port --proxy-protocol &
//! cargo run --release --example http_server -- --port 8080 --reuse-port --proxy-protocol &
//! ```
//!
//! runs two processes on one port (`SO_REUSEPORT`: the kernel spreads connections
//! between them), each reading the PROXY protocol header (v1 or v2) that HAProxy's
//! `send-proxy`/`send-proxy-v2` puts first on each connection, so that the access log and
//! `/whoami` show the real client. A connection that does not start with a valid header
//! within `--request-timeout` is closed unanswered. `docs/deployment.md` shows HAProxy's
//! side and systemd's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ropewalk::prelude::*;
use ropewalk::protocols::http::{
    Client, ClientConfig, Handler, HttpServer, Request, Response, ServerConfig, Site, StageTwo,
    StaticFiles,
};
use ropewalk::protocols::proxy_header::ProxyProtocol;
use ropewalk::reactor::tls::{rustls, TlsOptions, TlsServerBuilder};
use ropewalk::reactor::{
    activation, defer_later, AcceptQueue, GroupListener, ListenOptions, ListeningPort, PoolConfig,
    Reactor, ReactorGroup,
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

/// Blocking work (a sleep stands for it); gives the name of the thread it ran on.
fn blocking_work(work: Duration) -> String {
    std::thread::sleep(work);
    format!("{:?}", std::thread::current().name().unwrap_or("worker"))
}

/// What `/thread` answers once its work is done.
fn worked(work: Duration, thread: String) -> Response {
    Response::text(format!("worked {} ms on {thread}\n", work.as_millis()))
}

/// How long `/fetch` waits for the page it fetches.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Routes `GET`/`POST` `path` to `handler`: on the worker pool when `stage_two` is the
/// reactor (`--two-stage`), on the reactor otherwise. The handler is the same either way.
fn route(
    site: Site,
    stage_two: Option<&Reactor>,
    method: &str,
    path: &str,
    handler: impl Handler + Send + Sync,
) -> Site {
    match stage_two {
        Some(reactor) => site.route(method, path, StageTwo::new(reactor, handler)),
        None => site.route(method, path, handler),
    }
}

fn site(reactor: &Reactor, root: Option<StaticFiles>, two_stage: bool) -> Site {
    let stage_two = two_stage.then_some(reactor);
    let delay_reactor = reactor.clone();
    let thread_reactor = reactor.clone();
    let whoami_reactor = reactor.clone();
    let client = Client::with_config(
        reactor,
        ClientConfig {
            timeout: FETCH_TIMEOUT,
            ..ClientConfig::default()
        },
    );
    // Inline closure, answered at once.
    let site = route(Site::new(), stage_two, "GET", "/", |_req: Request| {
        Ok(Response::text("Hello, World!\n"))
    });
    // The request body, echoed back.
    let site = route(site, stage_two, "POST", "/echo", |req: Request| {
        Ok(Response::bytes(req.into_body()))
    });
    let site = if two_stage {
        // On the pool already: the handler blocks where it is.
        route(site, stage_two, "GET", "/thread", |req: Request| {
            Ok(match millis(&req) {
                Ok(work) => worked(work, blocking_work(work)),
                Err(resp) => resp,
            })
        })
    } else {
        // Blocking work sent to the worker pool, chained into the response.
        site.get("/thread", move |req: Request| {
            let work = match millis(&req) {
                Ok(d) => d,
                Err(resp) => return Deferred::succeed(resp),
            };
            thread_reactor
                .defer_to_thread(move || Ok(blocking_work(work)))
                .add_callback(move |thread| Ok(worked(work, thread)))
        })
    };
    let site = site
        // Who asked (behind a balancer with --proxy-protocol: the real client), and which
        // process answered; `?ms=N` answers N ms later, as /delay does.
        .get("/whoami", move |req: Request| {
            let wait = match millis(&req) {
                Ok(d) => d,
                Err(resp) => return Deferred::succeed(resp),
            };
            let text = format!("client {}\npid {}\n", req.peer(), std::process::id());
            if wait.is_zero() {
                return Deferred::succeed(Response::text(text));
            }
            defer_later(&whoami_reactor, wait, move || Ok(Response::text(text)))
        })
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
    /// `--two-stage`: handlers on the worker pool, I/O on the reactor.
    two_stage: bool,
    /// `--pool-threads N`: the worker pool's size (per reactor).
    pool_threads: Option<usize>,
    /// `--proxy-protocol`: each connection starts with a PROXY header (v1 or v2).
    proxy: bool,
    /// `--reuse-port`: bind with `SO_REUSEPORT`, so other processes can serve the port.
    reuse_port: bool,
}

const USAGE: &str = "usage: http_server [--port P] [--root DIR] [--idle-timeout S] \
[--request-timeout S] [--drain-timeout S] [--reactors N] \
[--accept per-reactor|shared|dispatcher[:round-robin|:least-loaded]] \
[--listen-fd N] [--reuse-port] [--proxy-protocol] [--two-stage] [--pool-threads N] \
[--tls-cert FILE --tls-key FILE]";

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
        two_stage: false,
        pool_threads: None,
        proxy: false,
        reuse_port: false,
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
            "--proxy-protocol" => parsed.proxy = true,
            "--reuse-port" => parsed.reuse_port = true,
            "--listen-fd" => {
                let v = args.next().ok_or("--listen-fd needs a descriptor number")?;
                parsed.listen_fd = match v.parse::<i32>() {
                    Ok(n) if n >= 3 => Some(n),
                    _ => return Err(format!("--listen-fd: {v:?} is not a descriptor from 3 on")),
                };
            }
            "--two-stage" => parsed.two_stage = true,
            "--pool-threads" => {
                let v = args.next().ok_or("--pool-threads needs a number")?;
                parsed.pool_threads = match v.parse::<usize>() {
                    Ok(n) if (1..=1024).contains(&n) => Some(n),
                    _ => {
                        return Err(format!(
                            "--pool-threads: {v:?} is not a number from 1 to 1024"
                        ))
                    }
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
                     --two-stage: run the handlers of /, /echo and /thread on the worker \
                     pool, the I/O on the reactor;\n  \
                     --pool-threads N: the worker pool's threads, per reactor (default 10);\n  \
                     --reuse-port: bind --port with SO_REUSEPORT, so that several \
                     processes serve it;\n  \
                     --proxy-protocol: every connection starts with a PROXY header, v1 or \
                     v2 (from HAProxy's send-proxy), which names the client; without one \
                     within --request-timeout it is closed;\n  \
                     --tls-cert, --tls-key: serve HTTPS with this certificate chain and \
                     private key (PEM)",
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
    if parsed.tls.is_some() && parsed.proxy {
        return Err("--proxy-protocol serves plain HTTP: leave out --tls-cert".into());
    }
    if parsed.listen_fd.is_some() && parsed.reuse_port {
        return Err("--reuse-port binds --port: leave out --listen-fd".into());
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

/// The HTTPS configuration from `--tls-cert` and `--tls-key`, if given (read before any
/// thread starts, so a bad file is reported at once).
fn tls_config(
    tls: &Option<(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<Option<Arc<rustls::ServerConfig>>, Box<dyn std::error::Error>> {
    let Some((cert, key)) = tls else {
        return Ok(None);
    };
    let config = TlsServerBuilder::from_pem_files(cert, key)?
        .alpn(&[b"http/1.1"])
        .build()?;
    Ok(Some(config))
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
    let tls = tls_config(&args.tls)?;
    if let Some((threads, accept)) = args.group {
        return serve_group(args, threads, accept, inherited, tls);
    }
    let reactor = Reactor::new()?;
    configure_pool(&reactor, args.pool_threads);
    let _signals = reactor.install_signal_handlers()?;
    let files = match &args.root {
        Some(dir) => Some(
            StaticFiles::new(&reactor, dir)
                .map_err(|e| format!("--root {}: {e}", dir.display()))?
                .with_prefix("/static/"),
        ),
        None => None,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let options = listen_options(args.reuse_port);
    let proxy = args.proxy.then_some(args.config.request_timeout);
    let site = site(&reactor, files, args.two_stage);
    let server = HttpServer::with_config(&reactor, site, args.config);
    let port = match inherited {
        Some(listener) => Port::Inherited(listener),
        None => Port::Bind(addr, options),
    };
    let listening = listen(&reactor, &server, proxy, tls, port)?;
    server.drain_on_shutdown(&reactor, args.drain);
    println!("listening on {}", listening.local_addr());
    reactor.run()?;
    log::info!("stopped");
    Ok(())
}

/// `--pool-threads N`: the worker pool's size, before its first job.
fn configure_pool(reactor: &Reactor, threads: Option<usize>) {
    if let Some(max_threads) = threads {
        reactor.configure_pool(PoolConfig {
            max_threads,
            ..PoolConfig::default()
        });
    }
}

/// N reactors on one port, each with its own server; SIGTERM drains every one.
fn serve_group(
    args: Args,
    threads: usize,
    accept: AcceptQueue,
    inherited: Option<std::net::TcpListener>,
    tls: Option<Arc<rustls::ServerConfig>>,
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
        None => {
            let options = listen_options(args.reuse_port);
            GroupListener::bind_with(([127, 0, 0, 1], args.port).into(), accept, &options)?
        }
    };
    let addr = listener.local_addr();
    let proxy = args.proxy.then_some(args.config.request_timeout);
    let (root, config, drain) = (args.root, args.config, args.drain);
    let (two_stage, pool_threads) = (args.two_stage, args.pool_threads);
    let group = ReactorGroup::builder()
        .threads(threads)
        .name("http")
        .start(move |reactor, _index| {
            configure_pool(reactor, pool_threads);
            let files = match &root {
                Some(dir) => Some(StaticFiles::new(reactor, dir)?.with_prefix("/static/")),
                None => None,
            };
            let site = site(reactor, files, two_stage);
            let server = HttpServer::with_config(reactor, site, config.clone());
            listen(reactor, &server, proxy, tls.clone(), Port::Group(&listener))?;
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

/// `TCP_NODELAY` inherited by every connection (as `HttpServer::listen` sets it), and
/// `SO_REUSEPORT` when asked.
fn listen_options(reuse_port: bool) -> ListenOptions {
    ListenOptions {
        nodelay: true,
        reuse_port,
        ..ListenOptions::default()
    }
}

/// Where a server listens.
enum Port<'a> {
    Bind(SocketAddr, ListenOptions),
    Inherited(std::net::TcpListener),
    Group(&'a GroupListener),
}

/// Listens with `server` on `port`: over TLS with `tls`, or with `proxy`, behind the
/// PROXY protocol, whose header must arrive within that time. Either way `server.drain`
/// stops the port.
fn listen(
    reactor: &Reactor,
    server: &HttpServer,
    proxy: Option<Duration>,
    tls: Option<Arc<rustls::ServerConfig>>,
    port: Port<'_>,
) -> std::io::Result<ListeningPort> {
    fn open<F: Factory>(reactor: &Reactor, port: Port<'_>, f: F) -> std::io::Result<ListeningPort> {
        match port {
            Port::Bind(addr, options) => reactor.listen_tcp_factory(addr, f, &options),
            Port::Inherited(listener) => reactor.adopt_tcp_listener_factory(listener, f),
            Port::Group(group) => group.listen_factory(reactor, f),
        }
    }
    if let Some(config) = tls {
        let server = server.clone();
        return match port {
            Port::Bind(addr, listen) => {
                let options = TlsOptions {
                    listen,
                    ..TlsOptions::default()
                };
                reactor.listen_tls_factory(addr, server, config, &options)
            }
            Port::Inherited(l) => {
                reactor.adopt_tls_listener_factory(l, server, config, &TlsOptions::default())
            }
            Port::Group(g) => g.listen_tls_factory(reactor, server, config, &TlsOptions::default()),
        };
    }
    match proxy {
        Some(timeout) => open(
            reactor,
            port,
            ProxyProtocol::new(reactor, server.clone(), timeout),
        ),
        None => open(reactor, port, server.clone()),
    }
}
