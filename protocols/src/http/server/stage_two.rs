//! [`StageTwo`]: a handler run on the reactor's worker pool, the second stage of a
//! two-stage server ([`HttpServer::two_stage`](super::HttpServer::two_stage)).
//!
//! Stage one is the reactor: it reads and parses requests, routes them, and writes the
//! responses in request order. Stage two is the pool: each request, owned, moves to a
//! worker thread, the handler runs there, and its response, owned, moves back. The
//! connection keeps a slot per request as it does for any Deferred a handler returns, so
//! pipelined requests run side by side on the pool and still leave in order.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use ropewalk_deferred::{Deferred, Failure, Outcome};
use ropewalk_reactor::Reactor;

use super::response::Body;
use super::Handler;
use crate::http::{Headers, Request, Response};

/// Runs a handler on the reactor's worker pool (stage two) instead of the reactor
/// thread (stage one): Twisted's `WSGIResource`, for any [`Handler`] that is
/// `Send + Sync`. Put it in a [`Site`](super::Site) to send some routes to the pool and
/// keep others (static files, handlers that use the reactor) on the reactor, or give a
/// whole handler to [`HttpServer::two_stage`](super::HttpServer::two_stage).
///
/// The handler is the one that would run on the reactor, unchanged: it may block (a
/// database call, a long computation) without holding up other connections, as long
/// as a worker thread is free.
///
/// - **Threads**: the reactor's worker pool, shared with
///   [`defer_to_thread`](Reactor::defer_to_thread) (10 threads by default; see
///   [`Reactor::configure_pool`]). A full pool gives 503 with `Retry-After`, as for any
///   handler whose `defer_to_thread` is refused.
/// - **What can run there** is checked when the program compiles: the handler must be
///   `Send + Sync`, so one that holds an `Rc`, a [`Reactor`] or a [`Site`](super::Site)
///   is refused. What it answers is checked when it answers: a whole [`Response`] comes
///   back; a streamed one ([`Response::streaming`]) or a Deferred that has not fired
///   (reactor-bound work) cannot leave the worker thread, so the request gets 500 and
///   the reason is logged. Such handlers stay on the reactor.
/// - **Failures**: an `Err`, a failed Deferred or a panic give 500, logged, as on the
///   reactor; the worker thread and the server go on.
/// - **Cost**: a job on the pool and a wake-up of the reactor per request, a few
///   microseconds: worth it for handlers that block or compute, not for ones that
///   answer from memory.
///
/// # Examples
///
/// Blocking work on the pool, a fast route on the reactor:
///
/// ```
/// use ropewalk_protocols::http::{HttpServer, Request, Response, Site, StageTwo};
/// use ropewalk_reactor::Reactor;
///
/// let reactor = Reactor::new()?;
/// let report = |_: Request| {
///     std::thread::sleep(std::time::Duration::from_millis(5)); // a slow query
///     Ok(Response::text("report"))
/// };
/// let site = Site::new()
///     .get("/health", |_: Request| Ok(Response::static_text("ok")))
///     .get("/report", StageTwo::new(&reactor, report));
/// let server = HttpServer::new(&reactor, site);
/// let _port = server.listen(&reactor, "127.0.0.1:0".parse().unwrap())?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// A handler that holds an `Rc` is not `Send`, and does not compile here:
///
/// ```compile_fail,E0277
/// use std::rc::Rc;
/// use ropewalk_protocols::http::{Request, Response, StageTwo};
///
/// let reactor = ropewalk_reactor::Reactor::new()?;
/// let hits = Rc::new(std::cell::Cell::new(0));
/// let _ = StageTwo::new(&reactor, move |_: Request| {
///     hits.set(hits.get() + 1);
///     Ok(Response::text("hi"))
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct StageTwo<H> {
    handler: Arc<H>,
    reactor: Reactor,
}

impl<H: Handler + Send + Sync> StageTwo<H> {
    /// `handler`, run on `reactor`'s worker pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::{Handler, Request, Response, StageTwo, Version};
    ///
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let on_pool = StageTwo::new(&reactor, |_: Request| {
    ///     let name = std::thread::current().name().unwrap_or("").to_string();
    ///     Ok(Response::text(name))
    /// });
    /// let req = Request::new("GET", "/", Version::Http11, Default::default(), vec![]);
    /// let resp = on_pool.handle(req).wait().unwrap();
    /// assert!(resp.body_bytes().unwrap().starts_with(b"ropewalk-worker"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(reactor: &Reactor, handler: H) -> StageTwo<H> {
        StageTwo {
            handler: Arc::new(handler),
            reactor: reactor.clone(),
        }
    }
}

impl<H: Handler + Send + Sync> Handler for StageTwo<H> {
    fn handle(&self, request: Request) -> Deferred<Response> {
        match self.handle_outcome(request) {
            Outcome::Chain(d) => d,
            Outcome::Value(response) => Deferred::succeed(response),
            Outcome::Failure(f) => Deferred::fail(f),
        }
    }

    fn handle_outcome(&self, request: Request) -> Outcome<Response> {
        let handler = self.handler.clone();
        let shipped = self
            .reactor
            .defer_to_thread(move || run_on_worker(&*handler, request));
        Outcome::Chain(shipped.add_callback(|r: Shipped| Ok(r.into_response())))
    }
}

impl<H> fmt::Debug for StageTwo<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageTwo")
            .field("handler", &std::any::type_name::<H>())
            .finish()
    }
}

/// A whole response on its way from a worker thread to the reactor.
struct Shipped {
    status: u16,
    headers: Headers,
    body: Cow<'static, [u8]>,
}

impl Shipped {
    fn into_response(self) -> Response {
        Response::from_parts(self.status, self.headers, Body::Full(self.body))
    }
}

/// The handler's answer to `request`, on a worker thread: a whole response, or why
/// there is none.
fn run_on_worker<H: Handler>(handler: &H, request: Request) -> Result<Shipped, Failure> {
    let response = match handler.handle_outcome(request) {
        Outcome::Value(response) => response,
        Outcome::Failure(f) => return Err(f),
        Outcome::Chain(mut d) => match d.try_result() {
            Some(result) => result?,
            None => {
                // Nothing on this thread will ever fire it.
                d.cancel();
                return Err(Failure::msg(
                    "a stage-two handler returned a Deferred that had not fired; \
                     handlers that wait on the reactor must run on it, not in StageTwo",
                ));
            }
        },
    };
    let (status, headers, body) = response.into_parts();
    match body {
        Body::Full(body) => Ok(Shipped {
            status,
            headers,
            body,
        }),
        Body::Stream(writer) => {
            writer.set_aborted();
            Err(Failure::msg(
                "a stage-two handler returned a streamed body, which only the reactor can \
                 send; run handlers that stream on the reactor, not in StageTwo",
            ))
        }
    }
}
