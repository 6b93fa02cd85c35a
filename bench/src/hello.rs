//! The "Hello, World!" page both HTTP benchmarks serve (`http/`, over TCP, and `https/`,
//! over TLS), and hyper's service for it, so that the two peers answer alike.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, StatusCode};

/// The body of `GET /`.
pub const HELLO: &str = "Hello, World!";

/// hyper's answer: `HELLO` for `GET /`, 404 otherwise, with the same headers as
/// ropewalk's. ropewalk sends `Server: ropewalk`; `hyper-rs` is the same number of bytes,
/// so that both responses are 148 bytes on the wire.
///
/// # Errors
///
/// None: the error type is `Infallible`, as hyper's `service_fn` wants one.
pub async fn hyper_hello(
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let found = req.method() == Method::GET && req.uri().path() == "/";
    let mut resp = if found {
        hyper::Response::new(Full::new(Bytes::from_static(HELLO.as_bytes())))
    } else {
        let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"Not Found")));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    };
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut().insert(
        hyper::header::SERVER,
        hyper::header::HeaderValue::from_static("hyper-rs"),
    );
    Ok(resp)
}
