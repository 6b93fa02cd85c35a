//! The HTTP/1.1 server: [`HttpServer`] (a [`Factory`]) with its [`ServerConfig`], the
//! [`Handler`] it hands requests to, and what it is built from:
//!
//! - `connection.rs`: [`HttpConnection`], the per-connection state machine (parsing,
//!   the pipeline of response slots, timeouts, streamed bodies).
//! - `drain.rs`: graceful drain ([`HttpServer::drain`]): the registry of live
//!   connections.
//! - `flow.rs`: flow control between a connection and its transport.
//! - `response.rs`: [`Response`] and [`BodyWriter`], what a handler answers, and how a
//!   response is written on the wire (its head, cached per second; the access log).
//! - `site.rs`: [`Site`], routing by path and method.
//! - `stage_two.rs`: [`StageTwo`], a handler run on the worker pool (the two-stage
//!   server, [`HttpServer::two_stage`]).
//! - `static_files.rs`: [`StaticFiles`], a directory served.
//!
//! # Implementation
//!
//! Each connection parses every complete request in its buffer, hands each to the
//! handler (which returns a Deferred), and queues a slot per request. Responses leave
//! strictly in request order: whenever the front slots are ready they are serialized into
//! one buffer and written with one `write`. While `max_pipelined` requests wait for their
//! responses, reading pauses, so read-ahead stays bounded (Twisted's CVE-2023-46137 and
//! CVE-2024-41671 were out-of-order responses to pipelined requests).
//!
//! A two-stage server ([`HttpServer::two_stage`], or [`StageTwo`] on some routes) changes
//! only where the handler runs: the request, owned, goes to a worker thread, and the
//! response comes back as the Deferred the slot waits for, so the order, the pipelining
//! bound and the drain work as for any handler that answers later.

mod budget;
mod connection;
mod drain;
mod flow;
mod response;
mod site;
mod stage_two;
mod static_files;

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ropewalk_deferred::{maybe_deferred, Deferred, Failure, IntoOutcome, Outcome};
use ropewalk_reactor::tls::{rustls, TlsOptions};
use ropewalk_reactor::{
    Address, Clock, Factory, GroupListener, ListenOptions, ListeningPort, LogLimiter, Phase,
    Reactor, SystemEvent, TriggerId,
};

use super::wire::date::DateLines;
use super::wire::head::write_field;
use super::wire::request_head::Limits;
use super::Request;
use budget::BodyBudget;
use response::HeadCache;

pub use connection::HttpConnection;
pub use response::{BodyWriter, Response, ACCESS_LOG_TARGET};
pub use site::Site;
pub use stage_two::StageTwo;
pub use static_files::{content_type, StaticFiles};

/// Answers requests: anything `Fn(Request) -> R` where `R` is `Result<Response, Failure>`,
/// `Deferred<Response>` (an `async` block spawned on the reactor is one) or an
/// [`Outcome`](ropewalk_deferred::Outcome).
///
/// A handler that fails (an `Err`, a failed Deferred, a panic) gives a 500 with no
/// details; the failure is logged. A failure that is the worker pool refusing a job
/// ([`ReactorError::PoolFull`](ropewalk_reactor::ReactorError::PoolFull) or `PoolShutDown`,
/// from `defer_to_thread`) is overload, not a bug: 503 with `Retry-After: 1`, logged as
/// a warning at most once a second (with a count of the ones held back).
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::http::{Handler, Request, Response};
///
/// let hello = |_req: Request| Ok(Response::text("Hello, World!"));
/// let d = hello.handle(Request::new("GET", "/", ropewalk_protocols::http::Version::Http11,
///     Default::default(), vec![]));
/// assert_eq!(d.wait().unwrap().status(), 200);
/// ```
pub trait Handler: 'static {
    /// The response to `request`, now or later.
    ///
    /// # Examples
    ///
    /// See [`Handler`].
    fn handle(&self, request: Request) -> Deferred<Response>;

    /// The response to `request` as an [`Outcome`]: a response or a failure now, or a
    /// Deferred of one. The server calls this, so that a handler that answers at once
    /// costs no Deferred; a panic must be returned as a failure, as
    /// [`handle`](Self::handle) would. The default wraps `handle` (closures and [`Site`]
    /// answer directly).
    ///
    /// [`Site`]: super::Site
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::Outcome;
    /// use ropewalk_protocols::http::{Handler, Request, Response, Version};
    ///
    /// let hello = |_req: Request| Ok(Response::static_text("hi"));
    /// let req = Request::new("GET", "/", Version::Http11, Default::default(), vec![]);
    /// assert!(matches!(hello.handle_outcome(req), Outcome::Value(r) if r.status() == 200));
    /// ```
    fn handle_outcome(&self, request: Request) -> Outcome<Response> {
        Outcome::Chain(self.handle(request))
    }
}

impl<F, R> Handler for F
where
    F: Fn(Request) -> R + 'static,
    R: IntoOutcome<Response>,
{
    fn handle(&self, request: Request) -> Deferred<Response> {
        maybe_deferred(|| self(request))
    }

    fn handle_outcome(&self, request: Request) -> Outcome<Response> {
        // As `maybe_deferred`: a panic is a failure.
        catch_unwind(AssertUnwindSafe(|| self(request).into_outcome()))
            .unwrap_or_else(|p| Outcome::Failure(Failure::from_panic(p)))
    }
}

/// The server's limits and timeouts.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ropewalk_protocols::http::ServerConfig;
///
/// let config = ServerConfig { max_body: 1 << 20, idle_timeout: Duration::from_secs(5), ..ServerConfig::default() };
/// assert_eq!(config.max_headers, 100);
/// ```
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Most bytes in a request head (request line and header fields); past it, 431.
    /// Default 64 KiB.
    pub max_header_bytes: usize,
    /// Most header fields in a request; past it, 431. Default 100.
    pub max_headers: usize,
    /// Longest request target; past it, 414. Default 8 KiB.
    pub max_uri: usize,
    /// Largest request body; past it, 413 (the body is not read). Default 16 MiB.
    pub max_body: u64,
    /// Most bytes of request bodies held at once across all of this server's
    /// connections (bodies are buffered whole before the handler sees them): a request
    /// whose body would pass it gets 503 with `Retry-After` and the connection closes. A
    /// body reserves its `Content-Length` when its head arrives (a chunked one, as it
    /// grows) and gives it back when its response is written or its connection ends.
    /// Default 256 MiB: sixteen bodies of the default `max_body` at once, where only the
    /// per-request cap let twenty 15 MiB uploads hold 600 MiB. One server (one reactor)
    /// has one budget: several reactors have one each.
    pub max_buffered_bodies: u64,
    /// Time to receive a request head from its first byte, and the longest pause inside
    /// a body; past it, 408 and close. Default 30 s.
    pub request_timeout: Duration,
    /// With [`min_body_rate`](Self::min_body_rate), the total time a request body may take
    /// (Apache's `mod_reqtimeout` `body=20,MinRate=500`): `body_timeout` from the end of
    /// the head, plus one second for every `min_body_rate` bytes received. Past it, 408
    /// and close, however short each pause was (a body trickled at a byte every 2 s is
    /// cut after about 20 s). Default 20 s.
    pub body_timeout: Duration,
    /// Bytes per second a body must keep up to earn more time past
    /// [`body_timeout`](Self::body_timeout); 0 makes `body_timeout` a fixed bound on the
    /// whole body. Default 500 (a 16 MiB body may take 9 hours at that rate: the bound
    /// catches trickles, not slow links).
    pub min_body_rate: u64,
    /// How long an idle keep-alive connection stays open. Default 60 s.
    pub idle_timeout: Duration,
    /// After the server starts closing a connection (a timeout, a bad request,
    /// `Connection: close`), how long the peer has to let it close (to read what is still
    /// being written) before the connection is aborted; `None` never aborts. Default 15 s
    /// (Twisted's `abortTimeout`, which Twisted applies to timeouts only): a peer that
    /// stops reading cannot hold a closing connection open.
    pub abort_timeout: Option<Duration>,
    /// How long a peer may accept no bytes of what is being sent to it (nginx's
    /// `send_timeout`): while anything waits in the connection's write queue (a buffered
    /// response, a streamed body, the last bytes before a close), the time since the
    /// socket last took some of it; past it the connection is aborted (logged at debug).
    /// A peer that reads slowly but steadily is never cut; with nothing queued no timer
    /// runs. Default 60 s (nginx's).
    pub send_timeout: Duration,
    /// Most requests read ahead while their responses are pending; past it, reading
    /// pauses. Default 16.
    pub max_pipelined: usize,
    /// The `Server` header (`None` sends none). Default `ropewalk`.
    pub server_name: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_uri: 8 * 1024,
            max_body: 16 * 1024 * 1024,
            max_buffered_bodies: 256 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(20),
            min_body_rate: 500,
            abort_timeout: Some(Duration::from_secs(15)),
            send_timeout: Duration::from_secs(60),
            max_pipelined: 16,
            server_name: Some("ropewalk".to_string()),
        }
    }
}

pub(super) struct ServerShared {
    handler: Box<dyn Handler>,
    config: ServerConfig,
    limits: Limits,
    clock: Rc<dyn Clock>,
    /// The `Date` line (`Date: …\r\n`) and the `Server` line after it, made again at
    /// the start of the next second.
    date: RefCell<DateLines>,
    /// The `Server` field, whole, checked and cleaned once.
    server_line: Option<Vec<u8>>,
    /// The head of the last common response written on any connection (see
    /// [`HeadCache`]): one per server, not per connection, so an idle connection holds
    /// none.
    head: RefCell<HeadCache>,
    /// The warning for requests refused because the worker pool is full: one a second.
    overload_log: LogLimiter,
    /// Request bodies buffered on all connections, against `max_buffered_bodies`.
    bodies: Rc<BodyBudget>,
    /// The live connections and ports, for a graceful drain.
    drain: drain::DrainState,
}

impl ServerShared {
    /// The `Date` and `Server` lines, made once a second. The wall clock is read once
    /// per turn of the loop (when the clock's `loop_time` moves), not once per batch of
    /// responses: a turn answers many connections. (While they are borrowed, a borrow
    /// from the same batch of responses, they are not made again.)
    fn date_lines(&self) -> std::cell::Ref<'_, DateLines> {
        let turn = self.clock.loop_time();
        if let Ok(mut cache) = self.date.try_borrow_mut() {
            let now = if cache.turn == Some(turn) {
                None
            } else {
                cache.turn = Some(turn);
                Some(SystemTime::now())
            };
            if let Some(now) = now {
                cache.update(now, self.server_line.as_deref());
            }
        }
        self.date.borrow()
    }
}

/// An HTTP/1.1 server: a [`Factory`] of connections that hand requests to a [`Handler`].
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::http::{HttpServer, Request, Response};
/// use ropewalk_reactor::Reactor;
///
/// let reactor = Reactor::new()?;
/// let server = HttpServer::new(&reactor, |_req: Request| Ok(Response::text("Hello, World!")));
/// let port = server.listen(&reactor, "127.0.0.1:0".parse().unwrap())?;
/// println!("listening on {}", port.local_addr());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct HttpServer {
    shared: Rc<ServerShared>,
}

impl HttpServer {
    /// A server with the default [`ServerConfig`]; `clock` (the reactor, or a
    /// `ManualClock` in tests) runs its timeouts.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::{HttpServer, Request, Response};
    /// let clock = ropewalk_reactor::ManualClock::new();
    /// let _server = HttpServer::new(&clock, |_: Request| Ok(Response::new(204)));
    /// ```
    pub fn new(clock: &(impl Clock + Clone + 'static), handler: impl Handler) -> HttpServer {
        HttpServer::with_config(clock, handler, ServerConfig::default())
    }

    /// A server with `config`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::{HttpServer, Request, Response, ServerConfig};
    /// let clock = ropewalk_reactor::ManualClock::new();
    /// let config = ServerConfig { server_name: None, ..ServerConfig::default() };
    /// let _server = HttpServer::with_config(&clock, |_: Request| Ok(Response::new(204)), config);
    /// ```
    pub fn with_config(
        clock: &(impl Clock + Clone + 'static),
        handler: impl Handler,
        config: ServerConfig,
    ) -> HttpServer {
        let limits = Limits {
            max_header_bytes: config.max_header_bytes,
            max_headers: config.max_headers,
            max_uri: config.max_uri,
            max_body: config.max_body,
        };
        let server_line = config.server_name.as_deref().map(|name| {
            let mut line = Vec::new();
            write_field(&mut line, "Server", name);
            line
        });
        let bodies = BodyBudget::new(config.max_buffered_bodies);
        HttpServer {
            shared: Rc::new(ServerShared {
                handler: Box::new(handler),
                config,
                limits,
                clock: Rc::new(clock.clone()),
                date: RefCell::new(DateLines::new()),
                server_line,
                head: RefCell::new(HeadCache::default()),
                overload_log: LogLimiter::new(Duration::from_secs(1)),
                bodies,
                drain: drain::DrainState::default(),
            }),
        }
    }

    /// A two-stage server with `config`: the reactor does the I/O (stage one: reading,
    /// parsing, writing responses in request order), and `handler` runs on the
    /// reactor's worker pool (stage two), one job per request; it is the same handler a
    /// one-stage server takes, as long as it is `Send + Sync`. A shorthand for
    /// [`with_config`](Self::with_config) with [`StageTwo::new`]`(reactor, handler)`,
    /// which says what runs where, what a full pool answers (503) and what cannot leave
    /// a worker thread (a streamed body). To keep some routes on the reactor (static
    /// files, handlers that use the reactor), put `StageTwo` in a [`Site`] instead.
    ///
    /// The pool is the reactor's, sized with [`Reactor::configure_pool`] (10 threads by
    /// default). Pipelined requests on one connection run side by side on it, up to
    /// [`ServerConfig::max_pipelined`]; their responses still leave in request order.
    /// A [`drain`](Self::drain) waits for the requests on the pool as for any other.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::{HttpServer, Request, Response, ServerConfig};
    /// use ropewalk_reactor::{PoolConfig, Reactor};
    ///
    /// let reactor = Reactor::new()?;
    /// reactor.configure_pool(PoolConfig { max_threads: 4, ..PoolConfig::default() });
    /// let handler = |_: Request| {
    ///     let n: u64 = (1..=20).product(); // work that would hold up the reactor
    ///     Ok(Response::text(n.to_string()))
    /// };
    /// let server = HttpServer::two_stage(&reactor, handler, ServerConfig::default());
    /// let port = server.listen(&reactor, "127.0.0.1:0".parse().unwrap())?;
    /// println!("listening on {}", port.local_addr());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn two_stage(
        reactor: &Reactor,
        handler: impl Handler + Send + Sync,
        config: ServerConfig,
    ) -> HttpServer {
        HttpServer::with_config(reactor, StageTwo::new(reactor, handler), config)
    }

    /// Listens on `addr` with this server.
    ///
    /// The listening socket has `TCP_NODELAY` on, which its connections inherit: each
    /// response goes out as soon as it is written (the server turns Nagle's algorithm off
    /// on every connection anyway; inherited, that costs no system call per connection).
    ///
    /// # Errors
    ///
    /// The system error if the address cannot be bound.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::http::{HttpServer, Request, Response};
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let server = HttpServer::new(&reactor, |_: Request| Ok(Response::text("ok")));
    /// let port = server.listen(&reactor, "127.0.0.1:0".parse().unwrap())?;
    /// port.stop_listening();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen(&self, reactor: &Reactor, addr: SocketAddr) -> io::Result<ListeningPort> {
        let options = ListenOptions {
            nodelay: true,
            ..ListenOptions::default()
        };
        reactor.listen_tcp_factory(addr, self.clone(), &options)
    }

    /// Listens for HTTPS on `addr` with this server: TLS with `config` (see
    /// [`ropewalk_reactor::tls`]), then HTTP/1.1 as on [`listen`](Self::listen). Give the
    /// configuration the ALPN protocol `http/1.1` (`TlsServerBuilder::alpn`) to refuse
    /// clients that can only speak another protocol.
    ///
    /// # Errors
    ///
    /// The system error if the address cannot be bound.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use ropewalk_protocols::http::{HttpServer, Request, Response};
    /// use ropewalk_reactor::tls::TlsServerBuilder;
    ///
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let config = TlsServerBuilder::from_pem_files("cert.pem", "key.pem")?
    ///     .alpn(&[b"http/1.1"])
    ///     .build()?;
    /// let server = HttpServer::new(&reactor, |_: Request| Ok(Response::text("ok")));
    /// let port = server.listen_tls(&reactor, "127.0.0.1:8443".parse()?, config)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen_tls(
        &self,
        reactor: &Reactor,
        addr: SocketAddr,
        config: Arc<rustls::ServerConfig>,
    ) -> io::Result<ListeningPort> {
        let options = TlsOptions {
            listen: ListenOptions {
                nodelay: true,
                ..ListenOptions::default()
            },
            ..TlsOptions::default()
        };
        reactor.listen_tls_factory(addr, self.clone(), config, &options)
    }

    /// Serves on this reactor's share of a [`GroupListener`] (call it in a
    /// [`ReactorGroup`](ropewalk_reactor::ReactorGroup)'s setup, with each reactor's own
    /// server); [`drain`](Self::drain) stops it.
    ///
    /// # Errors
    ///
    /// The system error if the socket cannot be bound, duplicated or registered.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::{HttpServer, Request, Response};
    /// use ropewalk_reactor::{AcceptQueue, GroupListener, ReactorGroup};
    ///
    /// let listener = GroupListener::bind("127.0.0.1:0".parse().unwrap(), AcceptQueue::Shared)?;
    /// let group = ReactorGroup::start(2, move |reactor, _| {
    ///     let server = HttpServer::new(reactor, |_: Request| Ok(Response::text("ok")));
    ///     server.listen_group(reactor, &listener)?;
    ///     Ok(())
    /// })?;
    /// group.stop()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen_group(
        &self,
        reactor: &Reactor,
        listener: &GroupListener,
    ) -> io::Result<ListeningPort> {
        listener.listen_factory(reactor, self.clone())
    }

    /// Serves HTTPS on this reactor's share of a [`GroupListener`], as
    /// [`listen_group`](Self::listen_group) serves HTTP: TLS with `config` (one
    /// configuration for the whole group, its `Arc` cloned into each reactor's setup), then
    /// HTTP/1.1. [`drain`](Self::drain) stops it.
    ///
    /// # Errors
    ///
    /// The system error if the socket cannot be bound, duplicated or registered.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ropewalk_protocols::http::{HttpServer, Request, Response};
    /// use ropewalk_reactor::tls::TlsServerBuilder;
    /// use ropewalk_reactor::{AcceptQueue, GroupListener, ReactorGroup};
    ///
    /// let config = TlsServerBuilder::from_pem_files("cert.pem", "key.pem")?
    ///     .alpn(&[b"http/1.1"])
    ///     .build()?;
    /// let listener = GroupListener::bind("127.0.0.1:8443".parse()?, AcceptQueue::Shared)?;
    /// let group = ReactorGroup::start(2, move |reactor, _| {
    ///     let server = HttpServer::new(reactor, |_: Request| Ok(Response::text("ok")));
    ///     server.listen_group_tls(reactor, &listener, config.clone())?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen_group_tls(
        &self,
        reactor: &Reactor,
        listener: &GroupListener,
        config: Arc<rustls::ServerConfig>,
    ) -> io::Result<ListeningPort> {
        let port =
            listener.listen_tls_factory(reactor, self.clone(), config, &TlsOptions::default())?;
        self.shared.drain.add_port(port.clone());
        Ok(port)
    }

    /// Serves HTTPS on a listening socket made elsewhere (inherited from systemd or a
    /// parent process, or bound by hand), as [`listen_on`](Self::listen_on) serves HTTP.
    /// It is made non-blocking; [`drain`](Self::drain) stops it.
    ///
    /// # Errors
    ///
    /// The system error if the socket cannot be registered.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ropewalk_protocols::http::{HttpServer, Request, Response};
    /// use ropewalk_reactor::tls::TlsServerBuilder;
    ///
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let config = TlsServerBuilder::from_pem_files("cert.pem", "key.pem")?.build()?;
    /// let server = HttpServer::new(&reactor, |_: Request| Ok(Response::text("ok")));
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let port = server.listen_on_tls(&reactor, listener, config)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen_on_tls(
        &self,
        reactor: &Reactor,
        listener: std::net::TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> io::Result<ListeningPort> {
        let port = reactor.adopt_tls_listener_factory(
            listener,
            self.clone(),
            config,
            &TlsOptions::default(),
        )?;
        self.shared.drain.add_port(port.clone());
        Ok(port)
    }

    /// Serves on a listening socket made elsewhere: inherited from systemd or a parent
    /// process, or bound by hand. It is made
    /// non-blocking; [`drain`](Self::drain) stops it.
    ///
    /// # Errors
    ///
    /// The system error if the socket cannot be registered.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::{HttpServer, Request, Response};
    ///
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let server = HttpServer::new(&reactor, |_: Request| Ok(Response::text("ok")));
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let port = server.listen_on(&reactor, listener)?;
    /// assert!(port.local_addr().inet().unwrap().ip().is_loopback());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen_on(
        &self,
        reactor: &Reactor,
        listener: std::net::TcpListener,
    ) -> io::Result<ListeningPort> {
        reactor.adopt_tcp_listener_factory(listener, self.clone())
    }

    /// Drains the server gracefully: stops listening on every port that serves it (a new
    /// connect is refused: the ports its `listen*` methods opened, and any other port
    /// opened with this server as its factory, wrapped or not) and refuses connections
    /// accepted before that but not yet made;
    /// closes idle keep-alive connections at once; lets each request in flight (or being
    /// read) finish, answered with `Connection: close`, after which its connection closes.
    /// The Deferred fires when the last connection has closed; connections still open
    /// `deadline` after the first call are aborted then. Calling it again returns another
    /// Deferred for the same drain (the first deadline stands).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_protocols::http::{HttpServer, Request, Response};
    ///
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let server = HttpServer::new(&reactor, |_: Request| Ok(Response::text("ok")));
    /// let _port = server.listen(&reactor, "127.0.0.1:0".parse().unwrap())?;
    /// // No connections: drained at once.
    /// server.drain(Duration::from_secs(10)).wait()?;
    /// assert!(server.is_draining());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn drain(&self, deadline: Duration) -> Deferred<()> {
        let weak = Rc::downgrade(&self.shared);
        let clock = self.shared.clock.clone();
        self.shared.drain.start(move || {
            Some(clock.call_later_boxed(
                deadline,
                Box::new(move || {
                    if let Some(shared) = weak.upgrade() {
                        shared.drain.abort_all();
                    }
                }),
            ))
        })
    }

    /// Drains the server (see [`drain`](Self::drain)) when `reactor` shuts down, before its
    /// connections are closed: a `Before` shutdown trigger whose Deferred the reactor
    /// waits for, as Twisted's web server does. With
    /// [`Reactor::install_signal_handlers`] this is the graceful stop on SIGTERM or
    /// SIGINT; a second signal stops at once. The reactor's
    /// [shutdown timeout](Reactor::set_shutdown_timeout) is raised to a second past
    /// `deadline` if it is shorter.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_protocols::http::{HttpServer, Request, Response};
    ///
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let server = HttpServer::new(&reactor, |_: Request| Ok(Response::text("ok")));
    /// let _port = server.listen(&reactor, "127.0.0.1:0".parse().unwrap())?;
    /// server.drain_on_shutdown(&reactor, Duration::from_secs(10));
    /// let r = reactor.clone();
    /// reactor.call_soon(move || r.stop().unwrap());
    /// reactor.run()?; // drains, then returns
    /// assert!(server.is_draining());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn drain_on_shutdown(&self, reactor: &Reactor, deadline: Duration) -> TriggerId {
        let wanted = deadline + Duration::from_secs(1);
        if reactor.shutdown_timeout() < wanted {
            reactor.set_shutdown_timeout(wanted);
        }
        let server = self.clone();
        reactor.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, move || {
            server.drain(deadline)
        })
    }

    /// Whether [`drain`](Self::drain) has been called.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::{HttpServer, Request, Response};
    /// let clock = ropewalk_reactor::ManualClock::new();
    /// let server = HttpServer::new(&clock, |_: Request| Ok(Response::new(204)));
    /// assert!(!server.is_draining());
    /// ```
    pub fn is_draining(&self) -> bool {
        self.shared.drain.draining()
    }

    /// How many connections of this server are open.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::{HttpServer, Request, Response};
    /// let clock = ropewalk_reactor::ManualClock::new();
    /// let server = HttpServer::new(&clock, |_: Request| Ok(Response::new(204)));
    /// assert_eq!(server.live_connections(), 0);
    /// ```
    pub fn live_connections(&self) -> usize {
        self.shared.drain.live()
    }

    /// The protocol for one connection (for tests with a `StringTransport`, or custom
    /// factories).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::{HttpServer, Request, Response};
    /// use ropewalk_reactor::{testing::StringTransport, ManualClock, Protocol};
    ///
    /// let clock = ManualClock::new();
    /// let server = HttpServer::new(&clock, |_: Request| Ok(Response::text("hi")));
    /// let mut conn = server.connection();
    /// let t = StringTransport::connect(&mut conn);
    /// conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    /// let out = String::from_utf8(t.value()).unwrap();
    /// assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));
    /// assert!(out.ends_with("\r\n\r\nhi"));
    /// ```
    pub fn connection(&self) -> HttpConnection {
        HttpConnection::new(self.shared.clone())
    }
}

impl Factory for HttpServer {
    type Protocol = HttpConnection;

    fn build_protocol(&self, _peer: &Address) -> Option<HttpConnection> {
        if self.shared.drain.draining() {
            return None;
        }
        Some(self.connection())
    }

    /// Every port that listens with this server, whichever function opened it (and
    /// through a wrapping factory such as
    /// [`ProxyProtocol`](crate::proxy_header::ProxyProtocol)), is one
    /// [`drain`](Self::drain) stops.
    fn port_listening(&self, port: &ListeningPort) {
        self.shared.drain.add_port(port.clone());
    }
}

impl fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServer")
            .field("config", &self.shared.config)
            .finish()
    }
}
