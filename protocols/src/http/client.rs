//! The HTTP/1.1 client: [`Client`] sends one request per connection and gives the
//! response back as a `Deferred<`[`ClientResponse`]`>`.
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

use std::cell::RefCell;
use std::error::Error as StdError;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use ropewalk_deferred::{CancelHandle, Cancelled, Deferred, Failure, Resolver};
use ropewalk_reactor::{Address, Protocol, Reactor, Target, TransportRef};

use super::parse::ChunkedDecoder;
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
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(30),
            max_head_bytes: 64 * 1024,
            max_headers: 100,
            max_body: 64 * 1024 * 1024,
            user_agent: Some(concat!("ropewalk/", env!("CARGO_PKG_VERSION")).to_string()),
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

/// An HTTP/1.1 client on a reactor (Twisted's `Agent`). Cheap to clone: a reactor handle
/// and the config.
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
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Implementation
///
/// Each request connects with `connect_tcp` (a host name is resolved on the worker pool),
/// writes the request with `Connection: close`, parses the response head with
/// `httparse`, and reads the body by `Content-Length`, by chunks (the server's strict
/// decoder) or until the server closes. `1xx` responses are skipped; `HEAD`, `204` and
/// `304` have no body. One timer covers the whole exchange (connect, request, response):
/// past it, the connection is aborted and the Deferred fails with
/// [`ClientError::TimedOut`]. Cancelling the Deferred aborts the connection too.
///
/// Not yet: keep-alive connection pooling (every request opens its own connection and
/// closes it), TLS (`https://` URLs fail with [`ClientError::UnsupportedScheme`]),
/// redirects (a `3xx` is returned as is), proxies, and streaming response bodies (the body
/// is collected, up to [`ClientConfig::max_body`]).
#[derive(Clone)]
pub struct Client {
    reactor: Reactor,
    config: Rc<ClientConfig>,
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
        Client {
            reactor: reactor.clone(),
            config: Rc::new(config),
        }
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
    /// `PATCH`) and `Connection: close`; `Content-Length`, `Transfer-Encoding` and
    /// `Connection` given in `headers` are replaced, since the client does the framing.
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
        let bytes = match serialize_request(method, &url, headers, &body, &self.config) {
            Ok(b) => b,
            Err(e) => return Deferred::fail(e),
        };
        log::debug!("{method} http://{}{}", url.authority(), url.target);
        let exchange = Rc::new(RefCell::new(Exchange {
            request: Some(bytes),
            head_only: method == "HEAD",
            config: self.config.clone(),
            transport: None,
            resolver: None,
            connect: None,
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

        let target_name = url.authority();
        let target: Target = match url.host.parse::<std::net::IpAddr>() {
            Ok(ip) => std::net::SocketAddr::new(ip, url.port).into(),
            Err(_) => Target::Name(target_name.clone()),
        };
        let factory_ex = exchange.clone();
        let connect = self.reactor.connect_tcp(
            target,
            move |_: &Address| {
                Some(ClientProtocol {
                    exchange: factory_ex.clone(),
                })
            },
            self.config.timeout,
        );
        exchange.borrow_mut().connect = Some(connect.cancel_handle());
        let ex = Rc::downgrade(&exchange);
        connect.add_both(move |result| {
            if let (Err(f), Some(ex)) = (result, ex.upgrade()) {
                if !f.is::<Cancelled>() {
                    Exchange::fail(
                        &ex,
                        ClientError::Connect {
                            target: target_name,
                            source: f.into_boxed_error(),
                        },
                    );
                }
            }
            Ok(())
        });
        // The exchange lives as long as its connection (the protocol holds it) or
        // until it fails; the canceller only needs a weak reference.
        drop(exchange);
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

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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
    // One request per connection for now (no pooling yet).
    field("Connection", "close");
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Ok(out)
}

/// How the response body is framed.
enum Framing {
    None,
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

enum Reading {
    Head,
    Body {
        response: ClientResponse,
        framing: Framing,
    },
    Done,
}

/// One request and its response; shared by the protocol, the connect callback and the
/// canceller.
struct Exchange {
    request: Option<Vec<u8>>,
    head_only: bool,
    config: Rc<ClientConfig>,
    transport: Option<TransportRef>,
    resolver: Option<Resolver<ClientResponse>>,
    connect: Option<CancelHandle>,
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
    /// Ends the exchange with `result`: the resolver is fired outside the borrow, since
    /// its callbacks may do anything.
    fn finish(ex: &Rc<RefCell<Exchange>>, result: Result<ClientResponse, ClientError>) {
        let (resolver, transport) = {
            let mut e = ex.borrow_mut();
            e.reading = Reading::Done;
            e.buf = Vec::new();
            (e.resolver.take(), e.transport.take())
        };
        if let Some(t) = transport {
            match result {
                Ok(_) => t.lose_connection(),
                Err(_) => t.abort_connection(),
            }
        }
        if let Some(r) = resolver {
            let _ = match result {
                Ok(resp) => r.callback(resp),
                Err(e) => r.errback(e),
            };
        }
    }

    fn fail(ex: &Rc<RefCell<Exchange>>, error: ClientError) {
        log::debug!("http client: {error}");
        Exchange::finish(ex, Err(error));
    }

    /// Cancelled (or timed out): stop connecting, drop the connection.
    fn abandon(ex: &Rc<RefCell<Exchange>>) {
        let (connect, transport, resolver) = {
            let mut e = ex.borrow_mut();
            e.reading = Reading::Done;
            (e.connect.take(), e.transport.take(), e.resolver.take())
        };
        if let Some(c) = connect {
            c.cancel();
        }
        if let Some(t) = transport {
            t.abort_connection();
        }
        // The Deferred already has its result (Cancelled); this late fire is swallowed.
        drop(resolver);
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
                Reading::Body { response, framing } => {
                    let max = self.config.max_body;
                    let done = match framing {
                        Framing::None => true,
                        Framing::Length(left) => {
                            let n = (*left).min(self.buf.len() as u64) as usize;
                            response.body.extend_from_slice(&self.buf[..n]);
                            self.buf.drain(..n);
                            *left -= n as u64;
                            *left == 0
                        }
                        Framing::Chunked(decoder) => {
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
                        Framing::UntilClose => {
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
        let mut storage = vec![httparse::EMPTY_HEADER; config.max_headers];
        let mut parsed = httparse::Response::new(&mut storage);
        let n = match parsed.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if self.buf.len() > config.max_head_bytes {
                    return Err(ClientError::HeadTooLarge(config.max_head_bytes));
                }
                return Ok(false);
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ClientError::TooManyHeaders(config.max_headers))
            }
            Err(e) => return Err(ClientError::Malformed(format!("bad response head: {e}"))),
        };
        if n > config.max_head_bytes {
            return Err(ClientError::HeadTooLarge(config.max_head_bytes));
        }
        let status = parsed.code.unwrap_or(0);
        if !(100..=999).contains(&status) {
            return Err(ClientError::Malformed(format!("bad status {status}")));
        }
        let version = match parsed.version {
            Some(0) => Version::Http10,
            _ => Version::Http11,
        };
        let reason = parsed.reason.unwrap_or("").to_string();
        let mut headers = Headers::new();
        for h in parsed.headers.iter() {
            let value = String::from_utf8_lossy(h.value);
            headers.append(h.name, value.trim_matches([' ', '\t']));
        }
        self.buf.drain(..n);
        if status == 101 {
            return Err(ClientError::Malformed(
                "unexpected 101 Switching Protocols (no upgrade was asked for)".into(),
            ));
        }
        if (100..200).contains(&status) {
            // 100 Continue, 103 Early Hints, …: the final response follows.
            return Ok(true);
        }
        let framing = self.framing(status, &headers)?;
        self.reading = Reading::Body {
            response: ClientResponse {
                status,
                reason,
                version,
                headers,
                body: Vec::new(),
            },
            framing,
        };
        Ok(true)
    }

    /// RFC 9112 §6.3, strictly: conflicting framing is an error, never a guess.
    fn framing(&self, status: u16, headers: &Headers) -> Result<Framing, ClientError> {
        if self.head_only || status == 204 || status == 304 {
            return Ok(Framing::None);
        }
        let max = self.config.max_body;
        if headers.contains("transfer-encoding") {
            if headers.contains("content-length") {
                return Err(ClientError::Malformed(
                    "both Transfer-Encoding and Content-Length".into(),
                ));
            }
            let codings: Vec<String> = headers
                .get_all("transfer-encoding")
                .flat_map(|v| v.split(','))
                .map(|c| c.trim().to_ascii_lowercase())
                .collect();
            return match codings.as_slice() {
                [only] if only == "chunked" => Ok(Framing::Chunked(ChunkedDecoder::new(max))),
                _ => Err(ClientError::Malformed(format!(
                    "unsupported transfer-coding {:?}",
                    codings.join(", ")
                ))),
            };
        }
        let lengths: Vec<&str> = headers
            .get_all("content-length")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let Some(first) = lengths.first() else {
            return Ok(Framing::UntilClose);
        };
        // Repeats of one value are allowed (RFC 9110 §8.6); different values are not.
        if lengths.iter().any(|l| l != first)
            || first.is_empty()
            || !first.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ClientError::Malformed(format!(
                "bad Content-Length {:?}",
                lengths.join(", ")
            )));
        }
        let n: u64 = first
            .parse()
            .map_err(|_| ClientError::Malformed("Content-Length out of range".into()))?;
        if n > max {
            return Err(ClientError::BodyTooLarge(max));
        }
        Ok(if n == 0 {
            Framing::None
        } else {
            Framing::Length(n)
        })
    }
}

/// The client's side of one connection.
struct ClientProtocol {
    exchange: Rc<RefCell<Exchange>>,
}

impl ClientProtocol {
    fn run_parser(&self) {
        let parsed = self.exchange.borrow_mut().parse();
        match parsed {
            Parsed::More => {}
            Parsed::Complete(resp) => Exchange::finish(&self.exchange, Ok(resp)),
            Parsed::Failed(e) => Exchange::fail(&self.exchange, e),
        }
    }
}

impl Protocol for ClientProtocol {
    fn connection_made(&mut self, transport: TransportRef) {
        let _ = transport.set_nodelay(true);
        let mut ex = self.exchange.borrow_mut();
        if matches!(ex.reading, Reading::Done) {
            drop(ex);
            transport.abort_connection();
            return;
        }
        ex.connect = None;
        if let Some(request) = ex.request.take() {
            transport.write(&request);
        }
        ex.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        {
            let mut ex = self.exchange.borrow_mut();
            if matches!(ex.reading, Reading::Done) {
                return Ok(());
            }
            ex.buf.extend_from_slice(data);
        }
        self.run_parser();
        Ok(())
    }

    fn connection_lost(&mut self, reason: Failure) {
        let outcome = {
            let mut ex = self.exchange.borrow_mut();
            ex.transport = None;
            match std::mem::replace(&mut ex.reading, Reading::Done) {
                Reading::Done => return,
                Reading::Body {
                    response,
                    framing: Framing::UntilClose,
                } if reason
                    .downcast_ref::<ropewalk_reactor::ConnectionError>()
                    .is_some_and(|e| e.is_clean()) =>
                {
                    Ok(response)
                }
                Reading::Head if ex.buf.is_empty() => Err(format!("no response: {reason}")),
                Reading::Head => Err(format!("inside the response head: {reason}")),
                Reading::Body { .. } => Err(format!("inside the response body: {reason}")),
            }
        };
        match outcome {
            Ok(resp) => Exchange::finish(&self.exchange, Ok(resp)),
            Err(why) => Exchange::fail(&self.exchange, ClientError::ConnectionClosed(why)),
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
    fn request_bytes() {
        let url = Url::parse("http://h:81/p?q").unwrap();
        let mut headers = Headers::new();
        headers.append("Content-Length", "99");
        headers.append("X-A", "1");
        let out =
            serialize_request("POST", &url, headers, b"hi", &ClientConfig::default()).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("POST /p?q HTTP/1.1\r\nHost: h:81\r\nUser-Agent: ropewalk/"));
        assert!(out.ends_with("X-A: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"));
        let mut headers = Headers::new();
        headers.append("X-A", "1\r\nX-B: 2");
        assert!(serialize_request("GET", &url, headers, b"", &ClientConfig::default()).is_err());
        assert!(
            serialize_request("G T", &url, Headers::new(), b"", &ClientConfig::default()).is_err()
        );
    }
}
