//! HTTP/1.1: a strict, pipelining server ([`HttpServer`], [`Site`]) and a client
//! ([`Client`]) on the reactor, and [`StaticFiles`] to serve a directory.
//!
//! Requests are parsed with `httparse`; framing, keep-alive, pipelining, limits and
//! timeouts are this module's. What RFC 9112 says to reject is rejected with the right
//! status and a closed connection, never guessed at: a bare LF as a line end,
//! conflicting or malformed `Content-Length`, `Transfer-Encoding` with `Content-Length`,
//! a malformed coding list (`chunked` twice or not last, a coding that is not a
//! registered token), bad chunk framing, missing or repeated `Host` on HTTP/1.1 (all
//! 400); well-formed codings other than a lone `chunked` (501); too many or too large
//! headers (431), long targets (414), bodies over the limit (413). A request of a
//! higher minor version (`HTTP/1.2`) is served as HTTP/1.1; another major version gets
//! 505.
//!
//! The client is lenient where RFC 9112 lets a user agent be: it takes a bare LF as a
//! line end in a response head and replaces an obs-fold with a space.
//!
//! # Map
//!
//! The module is cut by concept; the server and the client share every wire rule.
//!
//! - `headers.rs` ([`Headers`]) and `request.rs` ([`Request`], [`Version`]): the types
//!   both sides use.
//! - `wire/`: the wire format, with no connection in sight: `token.rs` (token
//!   characters), `request_head.rs` (parsing a request head), `response_head.rs`
//!   (parsing a response head), `framing.rs` (**the** body-framing decision, for
//!   requests and responses), `chunked.rs` (the chunked coding), `head.rs` (writing a
//!   head: status line, reason phrases, fields) and `date.rs` (the `Date` line, made
//!   once a second, and date formats).
//! - `server/`: `mod.rs` ([`HttpServer`], [`ServerConfig`], [`Handler`]),
//!   `connection.rs` ([`HttpConnection`], the per-connection state machine), `flow.rs`
//!   (flow control with the transport), `response.rs` ([`Response`], [`BodyWriter`],
//!   and writing a response on the wire), `site.rs` ([`Site`]), `stage_two.rs`
//!   ([`StageTwo`], handlers on the worker pool) and `static_files.rs` ([`StaticFiles`]).
//! - `client/`: `mod.rs` ([`Client`], [`ClientConfig`], [`ClientResponse`],
//!   [`ClientError`]), `url.rs` (URLs and redirect targets), `exchange.rs` (one request
//!   and its response) and `pool.rs` (the connection pool and its connections).
//!
//! # How a request flows
//!
//! On the server, bytes read reach [`HttpConnection`] (`server/connection.rs`), which
//! asks `wire/request_head.rs` for a head; the head's framing comes from
//! `wire/framing.rs`, and a chunked body goes through `wire/chunked.rs`. The complete
//! [`Request`] goes to the [`Handler`] (a [`Site`] routes it on); its [`Response`]
//! waits in the connection's queue until those before it are sent, then
//! `server/response.rs` writes it (heads from `wire/head.rs`, the `Date` line from
//! `wire/date.rs`) with the others ready, in one write.
//!
//! On the client, [`Client::request`] writes the request (`client/exchange.rs`), and
//! the pool (`client/pool.rs`) sends it on an idle connection or a new one; the bytes
//! that come back are parsed by `wire/response_head.rs`, framed by the same
//! `wire/framing.rs` and decoded by the same `wire/chunked.rs` as a request's, and the
//! connection goes back to the pool.

mod client;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod headers;
mod request;
mod server;
mod wire;

pub use client::{Client, ClientConfig, ClientError, ClientResponse, ConnectionPoolStats};
pub use headers::Headers;
pub use request::{Request, Version};
pub use server::{
    content_type, BodyWriter, Handler, HttpConnection, HttpServer, Response, ServerConfig, Site,
    StageTwo, StaticFiles, ACCESS_LOG_TARGET,
};
pub use wire::head::reason;
