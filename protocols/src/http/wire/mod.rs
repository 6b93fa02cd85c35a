//! The HTTP/1.1 wire format (RFC 9112), shared by the server and the client: what
//! bytes mean and what bytes to write, with no connection, timer or handler in sight.
//!
//! - [`token`]: the token characters (methods, field names, codings).
//! - [`request_head`]: parsing and checking a request head (the server's side).
//! - [`response_head`]: parsing a response head (the client's side).
//! - [`framing`]: the one body-framing decision (`Content-Length`,
//!   `Transfer-Encoding`) for requests and responses alike.
//! - [`chunked`]: the chunked coding, decoded strictly and encoded.
//! - [`head`]: writing a head: status line, fields, `Content-Length`, `Connection`.
//! - [`date`]: the `Date` line (made once a second) and the date formats.
//!
//! Every rule a request and a response share lives here once, so the two sides cannot
//! drift apart where a divergence is a smuggling bug.

pub(crate) mod chunked;
pub(crate) mod date;
pub(crate) mod framing;
pub(crate) mod head;
pub(crate) mod request_head;
pub(crate) mod response_head;
pub(crate) mod token;
