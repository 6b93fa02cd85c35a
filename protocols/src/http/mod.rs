//! HTTP/1.1: a strict, pipelining server ([`HttpServer`], [`Site`]) and a client
//! ([`Client`]) on the reactor, and [`StaticFiles`] to serve a directory.
//!
//! Requests are parsed with `httparse`; framing, keep-alive, pipelining, limits and
//! timeouts are this module's. What RFC 9112 says to reject is rejected with the right
//! status and a closed connection, never guessed at: conflicting or malformed
//! `Content-Length`, `Transfer-Encoding` with `Content-Length`, codings other than a final
//! `chunked` (501), bad chunk framing, missing or repeated `Host` on HTTP/1.1, too many
//! or too large headers (431), long targets (414), bodies over the limit (413).

mod client;
mod headers;
mod request;
mod response;
mod server;
mod site;
mod static_files;
mod wire;

pub use client::{Client, ClientConfig, ClientError, ClientResponse, PoolStats};
pub use headers::Headers;
pub use request::{Request, Version};
pub use response::{BodyWriter, Response};
pub use server::{Handler, HttpConnection, HttpServer, ServerConfig, ACCESS_LOG_TARGET};
pub use site::Site;
pub use static_files::{content_type, StaticFiles};
pub use wire::head::reason;
