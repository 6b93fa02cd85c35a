//! The HTTP/1.1 client: [`Client`] sends requests over a keep-alive connection pool
//! (optionally following redirects) and gives each response back as a
//! `Deferred<`[`ClientResponse`]`>`.
//!
//! A script blocks on it with `wait()`; a server handler chains it into its own response.
//!
//! ```
//! # use ropewalk_protocols::http::{HttpServer, Request, Response};
//! use ropewalk_protocols::http::Client;
//! use ropewalk_reactor::Reactor;
//!
//! let reactor = Reactor::new()?;
//! # let server = HttpServer::new(&reactor, |_: Request| Ok(Response::text("Hello, World!")));
//! # let port = server.listen(&reactor, "127.0.0.1:0".parse().unwrap())?;
//! # let url = format!("http://{}/", port.local_addr());
//! let resp = Client::new(&reactor).get(&url).wait()?;
//! assert_eq!(resp.status(), 200);
//! assert_eq!(resp.text(), "Hello, World!");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::error::Error as StdError;
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Duration;

use ropewalk_deferred::{CancelHandle, Cancelled, Deferred, Failure, Resolver};
use ropewalk_reactor::{Address, Clock, DelayedCall, Protocol, Reactor, Target, TransportRef};

use super::wire::chunked::ChunkedDecoder;
use super::wire::framing::{body_framing, BodyFraming, FramingError, FramingFields, Message};
use super::wire::response_head::{parse_response_head, ResponseHead, ResponseHeadError};
use super::wire::token::is_token;
use super::{Headers, Version};

/// Why a request failed; carried in the [`Failure`] of the response Deferred.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::http::{Client, ClientError};
///
/// let reactor = ropewalk_reactor::Reactor::new()?;
/// let f = Client::new(&reactor).get("https://example.test/").wait().unwrap_err();
/// assert!(matches!(f.downcast_ref(), Some(ClientError::UnsupportedScheme(_))));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not an `http://host[:port][/path][?query]` URL.
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A scheme other than `http` (there is no TLS yet, so no `https`).
    #[error("unsupported scheme {0:?}: only http:// is supported (no TLS yet)")]
    UnsupportedScheme(String),
    /// The method or a header field cannot be sent (not a token, or CR/LF in a value).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Connecting failed (refused, name not resolved, …); the source says why.
    #[error("could not connect to {target}")]
    Connect {
        /// `host:port`.
        target: String,
        /// The reactor's [`ConnectionError`](ropewalk_reactor::ConnectionError).
        #[source]
        source: Box<dyn StdError + Send + Sync + 'static>,
    },
    /// No complete response within the timeout.
    #[error("request timed out after {0:?}")]
    TimedOut(Duration),
    /// The response head is larger than [`ClientConfig::max_head_bytes`].
    #[error("response head larger than {0} bytes")]
    HeadTooLarge(usize),
    /// The response has more header fields than [`ClientConfig::max_headers`].
    #[error("response has more than {0} header fields")]
    TooManyHeaders(usize),
    /// The response body is larger than [`ClientConfig::max_body`].
    #[error("response body larger than {0} bytes")]
    BodyTooLarge(u64),
    /// The response is not valid HTTP/1.x.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The server closed the connection before the response was complete.
    #[error("connection closed before the response was complete ({0})")]
    ConnectionClosed(String),
    /// More redirects in a row than [`ClientConfig::follow_redirects`] allows.
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    /// A redirect led back to a request already made in this chain.
    #[error("redirect loop: {0} again")]
    RedirectLoop(String),
}

impl ClientError {
    /// Whether the request timed out.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert!(ropewalk_protocols::http::ClientError::TimedOut(Duration::from_secs(1)).is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::TimedOut(_))
    }

    /// Whether the URL (or its scheme) was refused before any connection was made.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = ropewalk_protocols::http::ClientError::UnsupportedScheme("ftp".into());
    /// assert!(e.is_bad_url());
    /// ```
    pub fn is_bad_url(&self) -> bool {
        matches!(
            self,
            ClientError::InvalidUrl { .. } | ClientError::UnsupportedScheme(_)
        )
    }

    /// Whether connecting failed.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = ropewalk_protocols::http::ClientError::Malformed("x".into());
    /// assert!(!e.is_connect());
    /// ```
    pub fn is_connect(&self) -> bool {
        matches!(self, ClientError::Connect { .. })
    }
}

/// The client's limits and timeout.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ropewalk_protocols::http::ClientConfig;
///
/// let config = ClientConfig { timeout: Duration::from_secs(5), ..ClientConfig::default() };
/// assert_eq!(config.max_headers, 100);
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Time for the whole exchange: connecting, sending, and receiving the full
    /// response; past it, [`ClientError::TimedOut`]. Default 30 s.
    pub timeout: Duration,
    /// Most bytes in a response head (status line and header fields, each skipped `1xx`
    /// head counted on its own); past it, [`ClientError::HeadTooLarge`]. Default 64 KiB.
    pub max_head_bytes: usize,
    /// Most header fields in a response head; past it, [`ClientError::TooManyHeaders`].
    /// Default 100.
    pub max_headers: usize,
    /// Largest response body; past it, [`ClientError::BodyTooLarge`] (a `Content-Length`
    /// over it fails at once). Default 64 MiB.
    pub max_body: u64,
    /// The `User-Agent` sent unless the request has one (`None` sends none). Default
    /// `ropewalk/VERSION`.
    pub user_agent: Option<String>,
    /// Most connections open at once to one `host:port` (connecting, busy or idle);
    /// requests beyond it wait in a FIFO queue for a connection to come free. Default 8
    /// (0 counts as 1).
    pub max_per_host: usize,
    /// How long a kept-alive connection may sit idle in the pool before the client
    /// closes it (timed by the reactor's clock). Default 30 s.
    pub idle_timeout: Duration,
    /// Follow redirects, at most this many in a row (then
    /// [`ClientError::TooManyRedirects`]); `None`, the default, returns `3xx` responses
    /// as they are. See [redirects](Client#redirects).
    pub follow_redirects: Option<usize>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(30),
            max_head_bytes: 64 * 1024,
            max_headers: 100,
            max_body: 64 * 1024 * 1024,
            user_agent: Some(concat!("ropewalk/", env!("CARGO_PKG_VERSION")).to_string()),
            max_per_host: 8,
            idle_timeout: Duration::from_secs(30),
            follow_redirects: None,
        }
    }
}

/// A response received by the [`Client`].
///
/// # Examples
///
/// ```
/// # use ropewalk_protocols::http::{Client, HttpServer, Request, Response};
/// # let reactor = ropewalk_reactor::Reactor::new()?;
/// # let server = HttpServer::new(&reactor, |_: Request| Ok(Response::text("hi").with_header("X-A", "1")));
/// # let port = server.listen(&reactor, "127.0.0.1:0".parse().unwrap())?;
/// # let url = format!("http://{}/", port.local_addr());
/// let resp = Client::new(&reactor).get(&url).wait()?;
/// assert_eq!((resp.status(), resp.reason()), (200, "OK"));
/// assert_eq!(resp.headers().get("x-a"), Some("1"));
/// assert_eq!(resp.body(), b"hi");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ClientResponse {
    status: u16,
    reason: String,
    version: Version,
    headers: Headers,
    body: Vec<u8>,
}

impl ClientResponse {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason phrase, as sent (may be empty).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The server's HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The header fields, in the order received.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The body (empty for `HEAD`, `204` and `304`).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body out.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as text (invalid UTF-8 replaced with U+FFFD).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the status is `2xx`.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl fmt::Debug for ClientResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &format_args!("{} bytes", self.body.len()))
            .finish()
    }
}

/// An HTTP/1.1 client on a reactor (Twisted's `Agent`) with a keep-alive connection
/// pool. Cheap to clone: clones share the config and the pool.
///
/// # Examples
///
/// ```
/// # use ropewalk_protocols::http::{HttpServer, Request, Response};
/// use ropewalk_protocols::http::Client;
///
/// let reactor = ropewalk_reactor::Reactor::new()?;
/// # let server = HttpServer::new(&reactor, |r: Request| Ok(Response::bytes(r.into_body())));
/// # let port = server.listen(&reactor, "127.0.0.1:0".parse().unwrap())?;
/// # let url = format!("http://{}/echo", port.local_addr());
/// let client = Client::new(&reactor);
/// let n = client
///     .post(&url, b"rope".to_vec())
///     .add_callback(|resp| Ok(resp.body().len()))
///     .wait()?;
/// assert_eq!(n, 4);
/// // The connection went back to the pool; the next request reuses it.
/// client.get(&url).wait()?;
/// assert_eq!(client.pool_stats().open, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Connection pool
///
/// Connections are kept per `host:port` and reused for later requests: HTTP/1.1
/// responses keep the connection unless they say `Connection: close`; an HTTP/1.0
/// response keeps it only with `Connection: keep-alive`; a close-delimited body (no
/// `Content-Length`, not chunked) never does. At most [`ClientConfig::max_per_host`]
/// connections are open to one `host:port`; requests beyond it wait in a FIFO queue
/// and are sent, one at a time per connection (no pipelining), as connections come
/// free. An idle connection is closed after [`ClientConfig::idle_timeout`], or when the
/// server closes it; when the last clone of a `Client` is dropped, its idle connections
/// are closed (busy ones finish their exchange first).
///
/// A server may close an idle connection just as a request is written on it. So when a
/// **reused** connection fails before any byte of the response arrived, and the method
/// is idempotent (`GET`, `HEAD`, `PUT`, `DELETE`, `OPTIONS`, `TRACE`), the request is sent
/// once more on a fresh connection; a `POST` (or a second failure) fails with
/// [`ClientError::ConnectionClosed`] instead, since it may have been acted on.
///
/// # Redirects
///
/// Off by default; with [`ClientConfig::follow_redirects`] set to `Some(max)`, a `301`,
/// `302`, `303`, `307` or `308` response with a `Location` is followed (a `3xx` without
/// one is returned as it is):
///
/// - `301`, `302` and `303` are followed with a `GET` (a `HEAD` stays `HEAD`) without the
///   body and its `Content-Type`, as browsers do; `307` and `308` repeat the method and
///   the body.
/// - A relative `Location` (`/path`, `../x`, `?q`, `//host/path`) is resolved against
///   the URL it answered (RFC 3986 §5.2); the fragment is dropped.
/// - When the redirect goes to another origin (scheme, host or port), `Authorization`,
///   `Proxy-Authorization`, `Cookie` and a caller-given `Host` are dropped, and stay
///   dropped for the rest of the chain, so credentials never leak to a host the caller
///   did not name (Twisted's CVE-2022-21712).
/// - More than `max` redirects fail with [`ClientError::TooManyRedirects`]; a redirect
///   back to a request already made in the chain fails with
///   [`ClientError::RedirectLoop`]. A `Location` that is not an `http://` URL fails as a
///   bad URL would.
/// - Each hop has its own [`ClientConfig::timeout`].
///
/// ```
/// # use ropewalk_protocols::http::{HttpServer, Request, Response};
/// use ropewalk_protocols::http::{Client, ClientConfig};
///
/// let reactor = ropewalk_reactor::Reactor::new()?;
/// # let server = HttpServer::new(&reactor, |r: Request| Ok(match r.path() {
/// #     "/old" => Response::new(301).with_header("Location", "/new"),
/// #     _ => Response::text("new place"),
/// # }));
/// # let port = server.listen(&reactor, "127.0.0.1:0".parse().unwrap())?;
/// # let url = format!("http://{}/old", port.local_addr());
/// let config = ClientConfig { follow_redirects: Some(5), ..ClientConfig::default() };
/// let resp = Client::with_config(&reactor, config).get(&url).wait()?;
/// assert_eq!(resp.text(), "new place");
/// // Without it, the 301 itself comes back.
/// assert_eq!(Client::new(&reactor).get(&url).wait()?.status(), 301);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Implementation
///
/// A new connection is made with `connect_tcp` (a host name is resolved on the worker
/// pool). The response head is parsed with `httparse`, and the body read by
/// `Content-Length`, by chunks (the server's strict decoder) or until the server closes.
/// `1xx` responses are skipped; `HEAD`, `204` and `304` have no body. One timer covers
/// the whole exchange (waiting in the queue, connecting, request, response): past it,
/// the connection is aborted and the Deferred fails with [`ClientError::TimedOut`].
/// Cancelling the Deferred aborts the connection too (or takes the request out of the
/// queue). Bytes that arrive on an idle connection, or after a response, are a protocol
/// error: that connection is closed, never reused.
///
/// Not yet: TLS (`https://` URLs fail with [`ClientError::UnsupportedScheme`], and so
/// does a redirect to one), proxies, pipelining, cookies, and streaming response bodies (the body is collected, up to
/// [`ClientConfig::max_body`]).
#[derive(Clone)]
pub struct Client {
    reactor: Reactor,
    config: Rc<ClientConfig>,
    handle: Rc<PoolHandle>,
}

/// Counts of the pool's connections, over every `host:port`; see [`Client::pool_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Connections open or being opened (busy and idle).
    pub open: usize,
    /// Connections idle in the pool, ready for a request.
    pub idle: usize,
    /// Requests waiting for a connection.
    pub queued: usize,
}

impl Client {
    /// A client with the default [`ClientConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let _client = ropewalk_protocols::http::Client::new(&reactor);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(reactor: &Reactor) -> Client {
        Client::with_config(reactor, ClientConfig::default())
    }

    /// A client with `config`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_protocols::http::{Client, ClientConfig};
    ///
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let config = ClientConfig { timeout: Duration::from_secs(2), ..ClientConfig::default() };
    /// let client = Client::with_config(&reactor, config);
    /// assert_eq!(client.config().timeout, Duration::from_secs(2));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_config(reactor: &Reactor, config: ClientConfig) -> Client {
        let config = Rc::new(config);
        Client {
            reactor: reactor.clone(),
            config: config.clone(),
            handle: Rc::new(PoolHandle(Rc::new(Pool {
                reactor: reactor.clone(),
                config,
                hosts: RefCell::new(HashMap::new()),
                closed: Cell::new(false),
            }))),
        }
    }

    /// How many connections the pool holds, and how many requests wait for one.
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let client = ropewalk_protocols::http::Client::new(&reactor);
    /// assert_eq!(client.pool_stats().open, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pool_stats(&self) -> PoolStats {
        let hosts = self.handle.0.hosts.borrow();
        let mut stats = PoolStats::default();
        for host in hosts.values() {
            stats.open += host.open;
            stats.idle += host.idle.len();
            stats.queued += host
                .queue
                .iter()
                .filter(|ex| !matches!(ex.borrow().reading, Reading::Done))
                .count();
        }
        stats
    }

    /// The config.
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let client = ropewalk_protocols::http::Client::new(&reactor);
    /// assert_eq!(client.config().max_head_bytes, 64 * 1024);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// `GET url`.
    ///
    /// # Errors
    ///
    /// The Deferred fails with a [`ClientError`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::http::{HttpServer, Request, Response};
    /// # let reactor = ropewalk_reactor::Reactor::new()?;
    /// # let server = HttpServer::new(&reactor, |_: Request| Ok(Response::text("Hello")));
    /// # let port = server.listen(&reactor, "127.0.0.1:0".parse().unwrap())?;
    /// # let url = format!("http://{}/", port.local_addr());
    /// let resp = ropewalk_protocols::http::Client::new(&reactor).get(&url).wait()?;
    /// assert_eq!(resp.text(), "Hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self, url: &str) -> Deferred<ClientResponse> {
        self.request("GET", url, Headers::new(), Vec::new())
    }

    /// `POST url` with `body` (sent with its `Content-Length`).
    ///
    /// # Errors
    ///
    /// The Deferred fails with a [`ClientError`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::http::{HttpServer, Request, Response};
    /// # let reactor = ropewalk_reactor::Reactor::new()?;
    /// # let server = HttpServer::new(&reactor, |r: Request| Ok(Response::bytes(r.into_body())));
    /// # let port = server.listen(&reactor, "127.0.0.1:0".parse().unwrap())?;
    /// # let url = format!("http://{}/", port.local_addr());
    /// let resp = ropewalk_protocols::http::Client::new(&reactor).post(&url, b"x".to_vec()).wait()?;
    /// assert_eq!(resp.body(), b"x");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn post(&self, url: &str, body: Vec<u8>) -> Deferred<ClientResponse> {
        self.request("POST", url, Headers::new(), body)
    }

    /// Sends `method url` with `headers` and `body`.
    ///
    /// The client adds `Host` (unless `headers` has one), `User-Agent` (unless it has
    /// one), `Content-Length` (when there is a body, or the method is `POST`, `PUT` or
    /// `PATCH`); `Content-Length`, `Transfer-Encoding` and `Connection` given in
    /// `headers` are dropped, since the client does the framing and manages its
    /// connections (see the [pool](Client#connection-pool)).
    ///
    /// # Errors
    ///
    /// The Deferred fails with a [`ClientError`]: a bad URL or request at once, the rest
    /// as they happen.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_protocols::http::{HttpServer, Request, Response};
    /// # let reactor = ropewalk_reactor::Reactor::new()?;
    /// # let server = HttpServer::new(&reactor, |r: Request| Ok(Response::text(
    /// #     format!("{} {}", r.method(), r.headers().get("x-token").unwrap_or("-")))));
    /// # let port = server.listen(&reactor, "127.0.0.1:0".parse().unwrap())?;
    /// # let url = format!("http://{}/item", port.local_addr());
    /// use ropewalk_protocols::http::{Client, Headers};
    ///
    /// let mut headers = Headers::new();
    /// headers.append("X-Token", "abc");
    /// let resp = Client::new(&reactor).request("PUT", &url, headers, b"{}".to_vec()).wait()?;
    /// assert_eq!(resp.text(), "PUT abc");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn request(
        &self,
        method: &str,
        url: &str,
        headers: Headers,
        body: Vec<u8>,
    ) -> Deferred<ClientResponse> {
        let url = match Url::parse(url) {
            Ok(u) => u,
            Err(e) => return Deferred::fail(e),
        };
        match self.config.follow_redirects {
            None => self.send(method, &url, headers, body),
            Some(max) => self.follow(method.to_string(), url, headers, body, max, Vec::new()),
        }
    }

    /// Sends the request, then follows redirects while `hops_left` allows.
    fn follow(
        &self,
        method: String,
        url: Url,
        headers: Headers,
        body: Vec<u8>,
        hops_left: usize,
        mut visited: Vec<(String, Url)>,
    ) -> Deferred<ClientResponse> {
        visited.push((method.clone(), url.clone()));
        let client = self.clone();
        self.send(&method, &url, headers.clone(), body.clone())
            .add_callback(move |resp: ClientResponse| {
                let status = resp.status();
                if !matches!(status, 301 | 302 | 303 | 307 | 308) {
                    return Deferred::succeed(resp);
                }
                let Some(location) = resp.headers().get("location") else {
                    return Deferred::succeed(resp);
                };
                let next = match url.join(location) {
                    Ok(u) => u,
                    Err(e) => return Deferred::fail(e),
                };
                if hops_left == 0 {
                    let max = client.config.follow_redirects.unwrap_or(0);
                    return Deferred::fail(ClientError::TooManyRedirects(max));
                }
                let (method, body, mut headers) = if matches!(status, 307 | 308) {
                    (method, body, headers)
                } else {
                    let mut headers = headers;
                    headers.remove("content-type");
                    let method = if method == "HEAD" {
                        method
                    } else {
                        "GET".into()
                    };
                    (method, Vec::new(), headers)
                };
                if visited.iter().any(|(m, u)| *m == method && *u == next) {
                    return Deferred::fail(ClientError::RedirectLoop(next.to_string()));
                }
                if next.origin() != url.origin() {
                    // CVE-2022-21712: credentials never follow to another origin.
                    for name in ["authorization", "proxy-authorization", "cookie", "host"] {
                        headers.remove(name);
                    }
                }
                log::debug!("http client: {status} redirect to {next}");
                client.follow(method, next, headers, body, hops_left - 1, visited)
            })
    }

    /// One request, no redirects.
    fn send(
        &self,
        method: &str,
        url: &Url,
        headers: Headers,
        body: Vec<u8>,
    ) -> Deferred<ClientResponse> {
        let url = url.clone();
        let bytes = match serialize_request(method, &url, headers, &body, &self.config) {
            Ok(b) => b,
            Err(e) => return Deferred::fail(e),
        };
        log::debug!("{method} http://{}{}", url.authority(), url.target);
        let key = url.authority();
        let target: Target = match url.host.parse::<std::net::IpAddr>() {
            Ok(ip) => std::net::SocketAddr::new(ip, url.port).into(),
            Err(_) => Target::Name(key.clone()),
        };
        let exchange = Rc::new(RefCell::new(Exchange {
            request: bytes.into(),
            head_only: method == "HEAD",
            idempotent: matches!(
                method,
                "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
            ),
            retried: false,
            reused: false,
            key,
            target,
            config: self.config.clone(),
            conn: None,
            resolver: None,
            buf: Vec::new(),
            reading: Reading::Head,
        }));
        let weak = Rc::downgrade(&exchange);
        let (d, resolver) = Deferred::with_canceller(move || {
            if let Some(ex) = weak.upgrade() {
                Exchange::abandon(&ex);
            }
            None
        });
        exchange.borrow_mut().resolver = Some(resolver);
        Pool::submit(&self.handle.0, exchange);
        d.add_timeout_with(
            self.config.timeout,
            &self.reactor,
            |result, timeout| match result {
                Err(f) if f.is::<Cancelled>() => Err(Failure::new(ClientError::TimedOut(timeout))),
                other => other,
            },
        )
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish()
    }
}

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    /// Lowercase; an IPv6 address without brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Path and query, starting with `/`.
    pub(crate) target: String,
}

impl Url {
    pub(crate) fn parse(url: &str) -> Result<Url, ClientError> {
        let bad = |reason| ClientError::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad("no scheme: expected http://host[:port]/path"));
        };
        if scheme.is_empty()
            || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(bad("malformed scheme"));
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(ClientError::UnsupportedScheme(scheme.to_ascii_lowercase()));
        }
        if rest.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err(bad(
                "spaces, control characters and non-ASCII must be percent-encoded",
            ));
        }
        // The fragment is never sent.
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(end);
        if authority.contains('@') {
            return Err(bad("credentials in URLs are not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((ip, after)) = v6.split_once(']') else {
                return Err(bad("unclosed [ in host"));
            };
            if ip.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("bad IPv6 address"));
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
            };
            (ip.to_ascii_lowercase(), port)
        } else {
            let (host, port) = match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            if host.is_empty() {
                return Err(bad("no host"));
            }
            let labels_ok = host.split('.').enumerate().all(|(i, label)| {
                // A trailing dot (a fully qualified name) leaves one empty label at the end.
                (!label.is_empty() || (i > 0 && host.ends_with('.') && label.is_empty()))
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
            if !labels_ok || host.starts_with('.') || host.ends_with("..") {
                return Err(bad("bad host name"));
            }
            (host.to_ascii_lowercase(), port)
        };
        let port = match port {
            None => 80,
            Some(p) => {
                if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("bad port"));
                }
                match p.parse::<u16>() {
                    Ok(0) | Err(_) => return Err(bad("port out of range")),
                    Ok(n) => n,
                }
            }
        };
        let target = if target.starts_with('/') {
            target.to_string()
        } else {
            format!("/{target}")
        };
        let b = target.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            if c == b'%'
                && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return Err(bad("% not followed by two hex digits"));
            }
            if b"\"<>\\^`{|}".contains(&c) {
                return Err(bad(
                    "characters like \" < > { } | \\ ^ ` must be percent-encoded",
                ));
            }
        }
        Ok(Url { host, port, target })
    }

    /// Scheme, host and port: what must match for credentials to be sent on.
    fn origin(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// `reference` (a `Location` value) resolved against this URL (RFC 3986 §5.2).
    pub(crate) fn join(&self, reference: &str) -> Result<Url, ClientError> {
        let reference = reference.trim();
        let reference = reference.split_once('#').map_or(reference, |(r, _)| r);
        let has_scheme = reference.find(':').is_some_and(|i| {
            let scheme = &reference[..i];
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        });
        if has_scheme {
            return Url::parse(reference);
        }
        if let Some(rest) = reference.strip_prefix("//") {
            return Url::parse(&format!("http://{rest}"));
        }
        let (base_path, _) = self
            .target
            .split_once('?')
            .unwrap_or((self.target.as_str(), ""));
        let target = if reference.is_empty() {
            self.target.clone()
        } else if reference.starts_with('?') {
            format!("{base_path}{reference}")
        } else {
            let (path, query) = match reference.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (reference, None),
            };
            let merged = if path.starts_with('/') {
                path.to_string()
            } else {
                let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
                format!("{dir}{path}")
            };
            let mut target = remove_dot_segments(&merged);
            if let Some(q) = query {
                target.push('?');
                target.push_str(q);
            }
            target
        };
        Url::parse(&format!("http://{}{target}", self.host_header()))
    }

    /// `host:port` (brackets around IPv6), for connecting and error messages.
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The `Host` header: the port only when it is not 80.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.host_header(), self.target)
    }
}

/// RFC 3986 §5.2.4, for an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." | ".." => {
                if *seg == ".." {
                    out.pop();
                }
                // A trailing `.` or `..` leaves a directory: `/a/b/..` is `/a/`.
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

fn serialize_request(
    method: &str,
    url: &Url,
    mut headers: Headers,
    body: &[u8],
    config: &ClientConfig,
) -> Result<Vec<u8>, ClientError> {
    if !is_token(method) {
        return Err(ClientError::InvalidRequest(format!(
            "method {method:?} is not a token"
        )));
    }
    for (name, value) in headers.iter() {
        if !is_token(name) {
            return Err(ClientError::InvalidRequest(format!(
                "header name {name:?} is not a token"
            )));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(ClientError::InvalidRequest(format!(
                "header {name} has CR, LF or NUL in its value"
            )));
        }
    }
    headers.remove("content-length");
    headers.remove("transfer-encoding");
    headers.remove("connection");
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(format!("{method} {} HTTP/1.1\r\n", url.target).as_bytes());
    let mut field = |name: &str, value: &str| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    if !headers.contains("host") {
        field("Host", &url.host_header());
    }
    if let Some(ua) = &config.user_agent {
        if !headers.contains("user-agent") {
            field("User-Agent", ua);
        }
    }
    for (name, value) in headers.iter() {
        field(name, value);
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        field("Content-Length", &body.len().to_string());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Ok(out)
}

/// How the rest of a response body is read.
enum BodyReader {
    /// This many bytes are left.
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// Where an exchange is in reading its response.
enum Reading {
    Head,
    Body {
        response: ClientResponse,
        body: BodyReader,
    },
    Done,
}

/// One request and its response; shared by the connection carrying it (or the queue
/// it waits in) and the canceller.
struct Exchange {
    /// The serialized request, kept for a retry.
    request: Rc<[u8]>,
    head_only: bool,
    idempotent: bool,
    /// Already sent once more after a reused connection failed.
    retried: bool,
    /// Sent on a connection that had carried an earlier exchange.
    reused: bool,
    /// `host:port`: the pool's key.
    key: String,
    target: Target,
    config: Rc<ClientConfig>,
    conn: Option<Weak<RefCell<Conn>>>,
    resolver: Option<Resolver<ClientResponse>>,
    buf: Vec<u8>,
    reading: Reading,
}

/// What parsing decided.
enum Parsed {
    More,
    Complete(ClientResponse),
    Failed(ClientError),
}

impl Exchange {
    /// A complete response: the connection goes back to the pool (or is closed), then
    /// the resolver fires, outside every borrow, since its callbacks may do anything.
    fn complete(ex: &Rc<RefCell<Exchange>>, response: ClientResponse) {
        let (resolver, conn, leftover) = {
            let mut e = ex.borrow_mut();
            e.reading = Reading::Done;
            let leftover = !e.buf.is_empty();
            e.buf = Vec::new();
            (e.resolver.take(), e.conn.take(), leftover)
        };
        if let Some(conn) = conn.and_then(|c| c.upgrade()) {
            if !leftover && keeps_alive(&response) {
                Conn::release(&conn);
            } else {
                let t = conn.borrow().transport.clone();
                if let Some(t) = t {
                    t.lose_connection();
                }
            }
        }
        if let Some(r) = resolver {
            let _ = r.callback(response);
        }
    }

    /// Fails the exchange and aborts its connection.
    fn fail(ex: &Rc<RefCell<Exchange>>, error: ClientError) {
        log::debug!("http client: {error}");
        let (resolver, conn) = {
            let mut e = ex.borrow_mut();
            e.reading = Reading::Done;
            e.buf = Vec::new();
            (e.resolver.take(), e.conn.take())
        };
        if let Some(conn) = conn.and_then(|c| c.upgrade()) {
            let t = conn.borrow().transport.clone();
            if let Some(t) = t {
                t.abort_connection();
            }
        }
        if let Some(r) = resolver {
            let _ = r.errback(error);
        }
    }

    /// Cancelled (or timed out): stop connecting, drop the connection; a queued
    /// exchange is skipped when its turn comes.
    fn abandon(ex: &Rc<RefCell<Exchange>>) {
        let (conn, resolver) = {
            let mut e = ex.borrow_mut();
            e.reading = Reading::Done;
            (e.conn.take(), e.resolver.take())
        };
        if let Some(conn) = conn.and_then(|c| c.upgrade()) {
            let (transport, connect) = {
                let mut c = conn.borrow_mut();
                (c.transport.clone(), c.connect.take())
            };
            match (transport, connect) {
                (Some(t), _) => t.abort_connection(),
                (None, Some(c)) => c.cancel(),
                (None, None) => {}
            }
        }
        // The Deferred already has its result (Cancelled); this late fire is swallowed.
        drop(resolver);
    }

    fn is_done(&self) -> bool {
        matches!(self.reading, Reading::Done)
    }

    fn parse(&mut self) -> Parsed {
        loop {
            match &mut self.reading {
                Reading::Done => return Parsed::More,
                Reading::Head => match self.parse_head() {
                    Ok(true) => continue,
                    Ok(false) => return Parsed::More,
                    Err(e) => return Parsed::Failed(e),
                },
                Reading::Body { response, body } => {
                    let max = self.config.max_body;
                    let done = match body {
                        BodyReader::Length(left) => {
                            let n = (*left).min(self.buf.len() as u64) as usize;
                            response.body.extend_from_slice(&self.buf[..n]);
                            self.buf.drain(..n);
                            *left -= n as u64;
                            *left == 0
                        }
                        BodyReader::Chunked(decoder) => {
                            match decoder.decode(&self.buf, &mut response.body) {
                                Ok(n) => {
                                    self.buf.drain(..n);
                                    decoder.is_done()
                                }
                                Err(413) => return Parsed::Failed(ClientError::BodyTooLarge(max)),
                                Err(_) => {
                                    return Parsed::Failed(ClientError::Malformed(
                                        "bad chunked framing".into(),
                                    ))
                                }
                            }
                        }
                        BodyReader::UntilClose => {
                            response.body.append(&mut self.buf);
                            if response.body.len() as u64 > max {
                                return Parsed::Failed(ClientError::BodyTooLarge(max));
                            }
                            false
                        }
                    };
                    if !done {
                        return Parsed::More;
                    }
                    let Reading::Body { response, .. } =
                        std::mem::replace(&mut self.reading, Reading::Done)
                    else {
                        unreachable!("matched above")
                    };
                    return Parsed::Complete(response);
                }
            }
        }
    }

    /// Parses a response head from the buffer: `Ok(true)` if one was taken (a `1xx`
    /// skipped, or the final head), `Ok(false)` if more bytes are needed.
    fn parse_head(&mut self) -> Result<bool, ClientError> {
        let config = &self.config;
        let parsed = parse_response_head(&self.buf, config.max_head_bytes, config.max_headers);
        let (head, n) = match parsed {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(false),
            Err(ResponseHeadError::TooLarge) => {
                return Err(ClientError::HeadTooLarge(config.max_head_bytes))
            }
            Err(ResponseHeadError::TooManyHeaders) => {
                return Err(ClientError::TooManyHeaders(config.max_headers))
            }
            Err(ResponseHeadError::Malformed(m)) => return Err(ClientError::Malformed(m)),
        };
        self.buf.drain(..n);
        let ResponseHead {
            status,
            reason,
            version,
            headers,
        } = head;
        if status == 101 {
            return Err(ClientError::Malformed(
                "unexpected 101 Switching Protocols (no upgrade was asked for)".into(),
            ));
        }
        if (100..200).contains(&status) {
            // 100 Continue, 103 Early Hints, …: the final response follows.
            return Ok(true);
        }
        let body = self.body_reader(status, &headers)?;
        self.reading = Reading::Body {
            response: ClientResponse {
                status,
                reason,
                version,
                headers,
                body: Vec::new(),
            },
            body,
        };
        Ok(true)
    }

    /// How the body of a response with `status` and `headers` is read: the framing the
    /// server uses for requests, with a response's rules (RFC 9112 §6.3).
    fn body_reader(&self, status: u16, headers: &Headers) -> Result<BodyReader, ClientError> {
        let max = self.config.max_body;
        let message = Message::Response {
            status,
            to_head: self.head_only,
        };
        match body_framing(message, headers, &FramingFields::of(headers), max) {
            Ok(BodyFraming::Length(n)) => Ok(BodyReader::Length(n)),
            Ok(BodyFraming::Chunked) => Ok(BodyReader::Chunked(ChunkedDecoder::new(max))),
            Ok(BodyFraming::UntilClose) => Ok(BodyReader::UntilClose),
            Err(FramingError::TooLarge) => Err(ClientError::BodyTooLarge(max)),
            Err(e) => {
                let field = match e {
                    FramingError::InvalidLength => "content-length",
                    _ => "transfer-encoding",
                };
                let values: Vec<&str> = headers.get_all(field).collect();
                Err(ClientError::Malformed(format!(
                    "{e} {:?}",
                    values.join(", ")
                )))
            }
        }
    }
}

/// Whether the connection that carried `response` may carry another request.
fn keeps_alive(response: &ClientResponse) -> bool {
    let has = |token: &str| {
        response
            .headers
            .get_all("connection")
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    match response.version {
        Version::Http11 => !has("close"),
        Version::Http10 => has("keep-alive") && !has("close"),
    }
}

/// The pool's connections to one `host:port`.
#[derive(Default)]
struct HostPool {
    /// Connections counted against `max_per_host`: connecting, busy or idle.
    open: usize,
    /// Idle connections; the most recently used is taken first.
    idle: Vec<Rc<RefCell<Conn>>>,
    /// Requests waiting for a connection, oldest first.
    queue: VecDeque<Rc<RefCell<Exchange>>>,
}

/// The connection pool, shared by a client's clones and its connections.
struct Pool {
    reactor: Reactor,
    config: Rc<ClientConfig>,
    hosts: RefCell<HashMap<String, HostPool>>,
    /// Every `Client` clone is gone: connections are closed instead of kept idle.
    closed: Cell<bool>,
}

/// Owned by the `Client` clones: when the last one goes, idle connections are closed.
struct PoolHandle(Rc<Pool>);

impl Drop for PoolHandle {
    fn drop(&mut self) {
        self.0.closed.set(true);
        let idle: Vec<_> = self
            .0
            .hosts
            .borrow_mut()
            .values_mut()
            .flat_map(|h| std::mem::take(&mut h.idle))
            .collect();
        for conn in idle {
            Conn::close_idle(&conn);
        }
    }
}

enum Placement {
    Reuse(Rc<RefCell<Conn>>),
    Open,
    Queued,
}

impl Pool {
    fn max_per_host(&self) -> usize {
        self.config.max_per_host.max(1)
    }

    /// Sends `ex` on an idle connection, on a new one, or queues it.
    fn submit(pool: &Rc<Pool>, ex: Rc<RefCell<Exchange>>) {
        let key = ex.borrow().key.clone();
        let placement = {
            let mut hosts = pool.hosts.borrow_mut();
            let host = hosts.entry(key).or_default();
            if let Some(conn) = host.idle.pop() {
                Placement::Reuse(conn)
            } else if host.open < pool.max_per_host() {
                host.open += 1;
                Placement::Open
            } else {
                host.queue.push_back(ex.clone());
                Placement::Queued
            }
        };
        match placement {
            Placement::Reuse(conn) => Conn::assign(&conn, ex),
            Placement::Open => Pool::open(pool, ex),
            Placement::Queued => {}
        }
    }

    /// The next live queued exchange for `key`, if any.
    fn next_queued(&self, key: &str) -> Option<Rc<RefCell<Exchange>>> {
        let mut hosts = self.hosts.borrow_mut();
        let host = hosts.get_mut(key)?;
        while let Some(ex) = host.queue.pop_front() {
            if !ex.borrow().is_done() {
                return Some(ex);
            }
        }
        None
    }

    /// Opens connections for queued exchanges while the limit allows.
    fn pump(pool: &Rc<Pool>, key: &str) {
        loop {
            {
                let hosts = pool.hosts.borrow();
                match hosts.get(key) {
                    Some(h) if h.open < pool.max_per_host() => {}
                    _ => return,
                }
            }
            let Some(ex) = pool.next_queued(key) else {
                let mut hosts = pool.hosts.borrow_mut();
                if hosts
                    .get(key)
                    .is_some_and(|h| h.open == 0 && h.idle.is_empty() && h.queue.is_empty())
                {
                    hosts.remove(key);
                }
                return;
            };
            if let Some(h) = pool.hosts.borrow_mut().get_mut(key) {
                h.open += 1;
            }
            Pool::open(pool, ex);
        }
    }

    /// Connects a new connection for `ex` (already counted in `open`).
    fn open(pool: &Rc<Pool>, ex: Rc<RefCell<Exchange>>) {
        let (key, target) = {
            let e = ex.borrow();
            (e.key.clone(), e.target.clone())
        };
        let conn = Rc::new(RefCell::new(Conn {
            key: key.clone(),
            pool: pool.clone(),
            transport: None,
            exchange: Some(ex.clone()),
            uses: 0,
            idle_timer: None,
            connect: None,
            dead: false,
        }));
        {
            let mut e = ex.borrow_mut();
            e.conn = Some(Rc::downgrade(&conn));
            e.reused = false;
        }
        let factory_conn = conn.clone();
        let connect = pool.reactor.connect_tcp(
            target,
            move |_: &Address| {
                Some(ClientProtocol {
                    conn: factory_conn.clone(),
                })
            },
            pool.config.timeout,
        );
        conn.borrow_mut().connect = Some(connect.cancel_handle());
        connect.add_both(move |result| {
            if let Err(f) = result {
                // Never connected.
                if let Some(ex) = Conn::die(&conn) {
                    if !f.is::<Cancelled>() && !ex.borrow().is_done() {
                        Exchange::fail(
                            &ex,
                            ClientError::Connect {
                                target: key.clone(),
                                source: f.into_boxed_error(),
                            },
                        );
                    }
                }
                let pool = conn.borrow().pool.clone();
                Pool::pump(&pool, &key);
            }
            Ok(())
        });
    }
}

/// One pooled connection.
struct Conn {
    key: String,
    pool: Rc<Pool>,
    transport: Option<TransportRef>,
    /// The exchange on it; `None` while idle.
    exchange: Option<Rc<RefCell<Exchange>>>,
    /// Responses completed on it.
    uses: u32,
    idle_timer: Option<DelayedCall>,
    connect: Option<CancelHandle>,
    dead: bool,
}

impl Conn {
    /// Sends `ex` on this (connected, idle) connection.
    fn assign(conn: &Rc<RefCell<Conn>>, ex: Rc<RefCell<Exchange>>) {
        let (transport, request) = {
            let mut c = conn.borrow_mut();
            if let Some(timer) = c.idle_timer.take() {
                let _ = timer.cancel();
            }
            c.exchange = Some(ex.clone());
            let mut e = ex.borrow_mut();
            e.conn = Some(Rc::downgrade(conn));
            e.reused = c.uses > 0;
            (c.transport.clone(), e.request.clone())
        };
        if let Some(t) = transport {
            t.write(&request);
        }
    }

    /// The exchange on it is done and the connection can be reused: the next queued
    /// exchange goes on it, or it waits idle.
    fn release(conn: &Rc<RefCell<Conn>>) {
        let (pool, key) = {
            let mut c = conn.borrow_mut();
            c.exchange = None;
            c.uses += 1;
            (c.pool.clone(), c.key.clone())
        };
        if pool.closed.get() {
            Conn::close_idle(conn);
            return;
        }
        if let Some(ex) = pool.next_queued(&key) {
            Conn::assign(conn, ex);
            return;
        }
        let weak = Rc::downgrade(conn);
        let timer = pool.reactor.call_later(pool.config.idle_timeout, move || {
            if let Some(conn) = weak.upgrade() {
                log::debug!("http client: closing an idle connection");
                conn.borrow_mut().idle_timer = None;
                Conn::close_idle(&conn);
            }
        });
        conn.borrow_mut().idle_timer = Some(timer);
        pool.hosts
            .borrow_mut()
            .entry(key)
            .or_default()
            .idle
            .push(conn.clone());
    }

    /// Takes an idle connection out of the pool and closes it.
    fn close_idle(conn: &Rc<RefCell<Conn>>) {
        let (pool, key, transport, timer) = {
            let mut c = conn.borrow_mut();
            (
                c.pool.clone(),
                c.key.clone(),
                c.transport.clone(),
                c.idle_timer.take(),
            )
        };
        if let Some(timer) = timer {
            let _ = timer.cancel();
        }
        if let Some(h) = pool.hosts.borrow_mut().get_mut(&key) {
            h.idle.retain(|c| !Rc::ptr_eq(c, conn));
        }
        if let Some(t) = transport {
            t.lose_connection();
        }
    }

    /// The connection is gone (or never came): it leaves the pool, and the exchange it
    /// carried, if any, is handed back. The caller pumps the queue afterwards.
    fn die(conn: &Rc<RefCell<Conn>>) -> Option<Rc<RefCell<Exchange>>> {
        let (pool, key, timer, exchange) = {
            let mut c = conn.borrow_mut();
            if c.dead {
                return None;
            }
            c.dead = true;
            c.transport = None;
            c.connect = None;
            (
                c.pool.clone(),
                c.key.clone(),
                c.idle_timer.take(),
                c.exchange.take(),
            )
        };
        if let Some(timer) = timer {
            let _ = timer.cancel();
        }
        if let Some(h) = pool.hosts.borrow_mut().get_mut(&key) {
            h.open = h.open.saturating_sub(1);
            h.idle.retain(|c| !Rc::ptr_eq(c, conn));
        }
        exchange
    }
}

/// The client's side of one connection.
struct ClientProtocol {
    conn: Rc<RefCell<Conn>>,
}

impl Protocol for ClientProtocol {
    fn connection_made(&mut self, transport: TransportRef) {
        let _ = transport.set_nodelay(true);
        let (exchange, request) = {
            let mut c = self.conn.borrow_mut();
            c.connect = None;
            c.transport = Some(transport.clone());
            let ex = c.exchange.clone();
            let request = ex
                .as_ref()
                .filter(|e| !e.borrow().is_done())
                .map(|e| e.borrow().request.clone());
            (ex, request)
        };
        match request {
            Some(request) => transport.write(&request),
            None => {
                // Its exchange was abandoned while connecting: serve the queue instead.
                drop(exchange);
                self.conn.borrow_mut().uses = 0;
                Conn::release(&self.conn);
            }
        }
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        let ex = self.conn.borrow().exchange.clone();
        let Some(ex) = ex.filter(|e| !e.borrow().is_done()) else {
            // Bytes nobody asked for: the connection cannot be trusted any more.
            log::debug!("http client: unexpected bytes on an idle connection; closing it");
            let (t, idle) = {
                let c = self.conn.borrow();
                (c.transport.clone(), c.exchange.is_none())
            };
            if idle {
                Conn::close_idle(&self.conn);
            }
            if let Some(t) = t {
                t.abort_connection();
            }
            return Ok(());
        };
        let parsed = {
            let mut e = ex.borrow_mut();
            e.buf.extend_from_slice(data);
            e.parse()
        };
        match parsed {
            Parsed::More => {}
            Parsed::Complete(resp) => Exchange::complete(&ex, resp),
            Parsed::Failed(e) => Exchange::fail(&ex, e),
        }
        Ok(())
    }

    fn connection_lost(&mut self, reason: Failure) {
        let pool = self.conn.borrow().pool.clone();
        let key = self.conn.borrow().key.clone();
        if let Some(ex) = Conn::die(&self.conn) {
            Self::lost_during(&pool, ex, reason);
        }
        Pool::pump(&pool, &key);
    }
}

impl ClientProtocol {
    /// The connection carrying `ex` is gone.
    fn lost_during(pool: &Rc<Pool>, ex: Rc<RefCell<Exchange>>, reason: Failure) {
        let outcome = {
            let mut e = ex.borrow_mut();
            e.conn = None;
            let nothing_yet = matches!(e.reading, Reading::Head) && e.buf.is_empty();
            if nothing_yet && e.reused && e.idempotent && !e.retried {
                // A kept-alive connection the server had closed: once more, fresh.
                log::debug!("http client: reused connection failed ({reason}); retrying");
                e.retried = true;
                None
            } else {
                Some(match std::mem::replace(&mut e.reading, Reading::Done) {
                    Reading::Done => return,
                    Reading::Body {
                        response,
                        body: BodyReader::UntilClose,
                    } if reason
                        .downcast_ref::<ropewalk_reactor::ConnectionError>()
                        .is_some_and(|e| e.is_clean()) =>
                    {
                        Ok(response)
                    }
                    Reading::Head if e.buf.is_empty() => Err(format!("no response: {reason}")),
                    Reading::Head => Err(format!("inside the response head: {reason}")),
                    Reading::Body { .. } => Err(format!("inside the response body: {reason}")),
                })
            }
        };
        match outcome {
            // The slot the dead connection held is free: the retry takes it.
            None => {
                let key = ex.borrow().key.clone();
                if let Some(h) = pool.hosts.borrow_mut().get_mut(&key) {
                    h.open += 1;
                }
                Pool::open(pool, ex);
            }
            Some(Ok(response)) => Exchange::complete(&ex, response),
            Some(Err(why)) => Exchange::fail(&ex, ClientError::ConnectionClosed(why)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://Example.TEST:8080/a/b?c=d#frag").unwrap();
        assert_eq!(u.host, "example.test");
        assert_eq!(u.port, 8080);
        assert_eq!(u.target, "/a/b?c=d");
        assert_eq!(u.host_header(), "example.test:8080");
        let u = Url::parse("HTTP://127.0.0.1").unwrap();
        assert_eq!((u.port, u.target.as_str()), (80, "/"));
        assert_eq!(u.host_header(), "127.0.0.1");
        let u = Url::parse("http://[::1]:9/x").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.authority(), "[::1]:9");
        let u = Url::parse("http://h?q=1").unwrap();
        assert_eq!(u.target, "/?q=1");
    }

    #[test]
    fn bad_urls() {
        for bad in [
            "",
            "example.test/",
            "://x",
            "http://",
            "http:///path",
            "http://a b/",
            "http://h/a b",
            "http://h:/",
            "http://h:0/",
            "http://h:65536/",
            "http://h:8x/",
            "http://user:pw@h/",
            "http://[::1/",
            "http://[zz]/",
            "http://h/%zz",
            "http://h/%4",
            "http://h/é",
            "http://h..x/",
            "http://.h/",
            "http://h/<script>",
        ] {
            let e = Url::parse(bad).unwrap_err();
            assert!(
                matches!(e, ClientError::InvalidUrl { .. }),
                "{bad:?}: {e:?}"
            );
        }
        for other in ["https://h/", "ftp://h/", "HTTPS://h"] {
            assert!(matches!(
                Url::parse(other),
                Err(ClientError::UnsupportedScheme(_))
            ));
        }
    }

    #[test]
    fn redirect_targets() {
        let base = Url::parse("http://h:81/a/b/c?q=1").unwrap();
        for (reference, expected) in [
            ("/x", "http://h:81/x"),
            ("x", "http://h:81/a/b/x"),
            ("../x?y=2", "http://h:81/a/x?y=2"),
            ("../../../../x", "http://h:81/x"),
            ("./", "http://h:81/a/b/"),
            ("..", "http://h:81/a/"),
            ("?z", "http://h:81/a/b/c?z"),
            ("", "http://h:81/a/b/c?q=1"),
            ("#frag", "http://h:81/a/b/c?q=1"),
            ("//other:9/p", "http://other:9/p"),
            ("HTTP://Other/p#f", "http://other/p"),
        ] {
            assert_eq!(
                base.join(reference).unwrap().to_string(),
                expected,
                "{reference}"
            );
        }
        assert!(matches!(
            base.join("https://h/"),
            Err(ClientError::UnsupportedScheme(_))
        ));
        assert!(base.join("/a b").is_err());
    }

    #[test]
    fn request_bytes() {
        let url = Url::parse("http://h:81/p?q").unwrap();
        let mut headers = Headers::new();
        headers.append("Content-Length", "99");
        headers.append("X-A", "1");
        let out =
            serialize_request("POST", &url, headers, b"hi", &ClientConfig::default()).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("POST /p?q HTTP/1.1\r\nHost: h:81\r\nUser-Agent: ropewalk/"));
        assert!(out.ends_with("X-A: 1\r\nContent-Length: 2\r\n\r\nhi"));
        let mut headers = Headers::new();
        headers.append("X-A", "1\r\nX-B: 2");
        assert!(serialize_request("GET", &url, headers, b"", &ClientConfig::default()).is_err());
        assert!(
            serialize_request("G T", &url, Headers::new(), b"", &ClientConfig::default()).is_err()
        );
    }
}
