//! The HTTP/1.1 client: [`Client`] sends requests over a keep-alive connection pool
//! (optionally following redirects) and gives each response back as a
//! `Deferred<`[`ClientResponse`]`>`.
//!
//! A script blocks on it with `wait()`; a server handler chains it into its own response.
//!
//! This file holds the [`Client`], its [`ClientConfig`], [`ClientResponse`] and
//! [`ClientError`]; the rest is in:
//!
//! - `url.rs`: `http://` and `https://` URLs parsed, and redirect targets resolved.
//! - `exchange.rs`: one request written and its response read (head, framing, body).
//! - `pool.rs`: the keep-alive connection pool and its connections' protocol.
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

mod exchange;
mod pool;
#[cfg(feature = "fuzzing")]
pub(crate) mod probe;
mod url;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ropewalk_deferred::{Cancelled, Deferred, Failure};
use ropewalk_reactor::tls::rustls;
use ropewalk_reactor::{Reactor, Target};

use super::{Headers, Version};
use exchange::{serialize_request, Exchange, ReadingResponse};
use pool::{Pool, PoolHandle};
use url::Url;

/// Why a request failed; carried in the [`Failure`] of the response Deferred.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::http::{Client, ClientError};
///
/// let reactor = ropewalk_reactor::Reactor::new()?;
/// let f = Client::new(&reactor).get("ftp://example.test/").wait().unwrap_err();
/// assert!(matches!(f.downcast_ref(), Some(ClientError::UnsupportedScheme(_))));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not an `http[s]://host[:port][/path][?query]` URL.
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A scheme other than `http` and `https`.
    #[error("unsupported scheme {0:?}: only http:// and https:// are supported")]
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
    /// The TLS configuration of `https://` requests (its roots, ALPN...); `None`, the
    /// default, verifies servers against the `webpki-roots` set with ALPN `http/1.1`
    /// ([`TlsClientBuilder`](ropewalk_reactor::tls::TlsClientBuilder)). Its session
    /// cache resumes sessions across connections.
    pub tls: Option<Arc<rustls::ClientConfig>>,
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
            tls: None,
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
/// # let server = HttpServer::new(&reactor, |req: Request| Ok(match req.path() {
/// #     "/" => Response::text("hi").with_header("X-A", "1"),
/// #     _ => Response::text("no").with_status(404),
/// # }));
/// # let port = server.listen(&reactor, "127.0.0.1:0".parse().unwrap())?;
/// # let url = format!("http://{}/", port.local_addr());
/// use ropewalk_protocols::http::Version;
///
/// let client = Client::new(&reactor);
/// let resp = client.get(&url).wait()?;
/// assert_eq!((resp.status(), resp.reason()), (200, "OK"));
/// assert!(resp.is_success());
/// assert_eq!(resp.version(), Version::Http11);
/// assert_eq!(resp.headers().get("x-a"), Some("1"));
/// assert_eq!(resp.body(), b"hi");
/// assert_eq!(resp.text(), "hi");
/// assert_eq!(resp.into_body(), b"hi".to_vec());
///
/// // A 404 is a response, not an error: check is_success.
/// # let url = format!("http://{}/nowhere", port.local_addr());
/// let missing = client.get(&url).wait()?;
/// assert!(!missing.is_success());
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
    ///
    /// # Examples
    ///
    /// See [`ClientResponse`].
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason phrase, as sent (may be empty).
    ///
    /// # Examples
    ///
    /// See [`ClientResponse`].
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The server's HTTP version.
    ///
    /// # Examples
    ///
    /// See [`ClientResponse`].
    pub fn version(&self) -> Version {
        self.version
    }

    /// The header fields, in the order received.
    ///
    /// # Examples
    ///
    /// See [`ClientResponse`].
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The body (empty for `HEAD`, `204` and `304`).
    ///
    /// # Examples
    ///
    /// See [`ClientResponse`].
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body out.
    ///
    /// # Examples
    ///
    /// See [`ClientResponse`].
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as text (invalid UTF-8 replaced with U+FFFD).
    ///
    /// # Examples
    ///
    /// See [`ClientResponse`].
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the status is `2xx`.
    ///
    /// # Examples
    ///
    /// See [`ClientResponse`].
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
/// response keeps it only with `Connection: keep-alive` and no `Transfer-Encoding`
/// (RFC 9112 §6.1); a close-delimited body (no `Content-Length`, not chunked) never
/// does. At most [`ClientConfig::max_per_host`]
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
/// pool), or `connect_tls` for an `https://` URL (verified against
/// [`ClientConfig::tls`]; the pool keeps `http` and `https` connections to one host and
/// port apart, and a redirect to the other scheme is another origin). The response head is parsed with `httparse`, and the body read by
/// `Content-Length`, by chunks (the server's strict decoder) or until the server closes.
/// `1xx` responses are skipped; `HEAD`, `204` and `304` have no body. One timer covers
/// the whole exchange (waiting in the queue, connecting, request, response): past it,
/// the connection is aborted and the Deferred fails with [`ClientError::TimedOut`].
/// Cancelling the Deferred aborts the connection too (or takes the request out of the
/// queue). Bytes that arrive on an idle connection, or after a response, are a protocol
/// error: that connection is closed, never reused.
///
/// Not yet: proxies, pipelining, cookies, and streaming response bodies (the body is
/// collected, up to
/// [`ClientConfig::max_body`]).
#[derive(Clone)]
pub struct Client {
    reactor: Reactor,
    config: Rc<ClientConfig>,
    handle: Rc<PoolHandle>,
}

/// Counts of the client's connection pool, over every `host:port`; see
/// [`Client::pool_stats`]. (Not the reactor's worker-pool `PoolStats`.)
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::http::{Client, ConnectionPoolStats};
///
/// let reactor = ropewalk_reactor::Reactor::new()?;
/// let stats: ConnectionPoolStats = Client::new(&reactor).pool_stats();
/// assert_eq!((stats.open, stats.idle, stats.queued), (0, 0, 0));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionPoolStats {
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
    pub fn pool_stats(&self) -> ConnectionPoolStats {
        let hosts = self.handle.0.hosts.borrow();
        let mut stats = ConnectionPoolStats::default();
        for host in hosts.values() {
            stats.open += host.open;
            stats.idle += host.idle.len();
            stats.queued += host
                .queue
                .iter()
                .filter(|ex| !matches!(ex.borrow().reading, ReadingResponse::Done))
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
        log::debug!(
            "{method} {}://{}{}",
            url.scheme(),
            url.authority(),
            url.target
        );
        let authority = url.authority();
        let target: Target = match url.host.parse::<std::net::IpAddr>() {
            Ok(ip) => std::net::SocketAddr::new(ip, url.port).into(),
            Err(_) => Target::Name(authority.clone()),
        };
        // A pool per scheme, host and port: a TLS connection never carries plain HTTP.
        let (key, tls_name) = if url.tls {
            (format!("https://{authority}"), Some(url.host.clone()))
        } else {
            (authority, None)
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
            tls_name,
            config: self.config.clone(),
            conn: None,
            resolver: None,
            buf: Vec::new(),
            reading: ReadingResponse::Head,
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
