//! The client's keep-alive pool over loopback: reuse, the per-host limit and its FIFO
//! queue, idle timeouts, and the transparent retry when a pooled connection turns out
//! dead. Servers count their accepts. Bounded by timeouts; nothing sleeps.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use ropewalk_deferred::{gather_results, Deferred, Failure, Resolver};
use ropewalk_protocols::http::{Client, ClientConfig, ClientError, HttpServer, Request, Response};
use ropewalk_reactor::{Address, ListeningPort, Protocol, Reactor, TransportRef};

fn config() -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    }
}

/// Our server behind a factory that counts accepted connections.
fn counted_server(
    reactor: &Reactor,
    handler: impl Fn(Request) -> Deferred<Response> + 'static,
) -> (ListeningPort, String, Rc<Cell<usize>>) {
    let server = HttpServer::new(reactor, handler);
    let accepts = Rc::new(Cell::new(0));
    let count = accepts.clone();
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
            count.set(count.get() + 1);
            Some(server.connection())
        })
        .unwrap();
    let base = format!("http://{}", port.local_addr());
    (port, base, accepts)
}

#[test]
fn sequential_requests_share_one_connection() {
    let reactor = Reactor::new().unwrap();
    let (_port, base, accepts) = counted_server(&reactor, |r: Request| {
        Deferred::succeed(Response::text(r.path().to_string()))
    });
    let client = Client::with_config(&reactor, config());
    for i in 0..10 {
        let resp = client.get(&format!("{base}/n{i}")).wait().unwrap();
        assert_eq!(resp.text(), format!("/n{i}"));
    }
    // HEAD and a POST with a body go on the same connection too.
    let resp = client
        .request("HEAD", &format!("{base}/h"), Default::default(), vec![])
        .wait()
        .unwrap();
    assert_eq!(resp.status(), 200);
    client
        .post(&format!("{base}/p"), b"x".to_vec())
        .wait()
        .unwrap();
    assert_eq!(accepts.get(), 1);
    let stats = client.pool_stats();
    assert_eq!((stats.open, stats.idle, stats.queued), (1, 1, 0));
    // A clone shares the pool.
    client.clone().get(&format!("{base}/c")).wait().unwrap();
    assert_eq!(accepts.get(), 1);
}

type Order = Rc<RefCell<Vec<String>>>;

/// A handler that answers on the next reactor turn and records how many requests it
/// held at once, and in which order they came.
fn delayed(
    reactor: &Reactor,
) -> (
    impl Fn(Request) -> Deferred<Response> + 'static,
    Rc<Cell<usize>>,
    Order,
) {
    let in_flight = Rc::new(Cell::new(0usize));
    let max = Rc::new(Cell::new(0usize));
    let order = Rc::new(RefCell::new(Vec::new()));
    let (r, m, o) = (reactor.clone(), max.clone(), order.clone());
    let handler = move |req: Request| {
        in_flight.set(in_flight.get() + 1);
        m.set(m.get().max(in_flight.get()));
        o.borrow_mut().push(req.path().to_string());
        let (d, resolver): (Deferred<Response>, Resolver<Response>) = Deferred::pending();
        let flight = in_flight.clone();
        let path = req.path().to_string();
        r.call_soon(move || {
            flight.set(flight.get() - 1);
            let _ = resolver.callback(Response::text(path));
        });
        d
    };
    (handler, max, order)
}

#[test]
fn the_per_host_limit_holds_under_concurrency() {
    let reactor = Reactor::new().unwrap();
    let (handler, max, order) = delayed(&reactor);
    let (_port, base, accepts) = counted_server(&reactor, handler);
    let client = Client::with_config(
        &reactor,
        ClientConfig {
            max_per_host: 3,
            ..config()
        },
    );
    let all: Vec<_> = (0..20)
        .map(|i| client.get(&format!("{base}/r{i}")))
        .collect();
    let stats = client.pool_stats();
    assert_eq!((stats.open, stats.queued), (3, 17));
    let responses = gather_results(all).wait().unwrap();
    for (i, resp) in responses.iter().enumerate() {
        assert_eq!(resp.text(), format!("/r{i}"));
    }
    assert!(max.get() <= 3, "{} requests at once", max.get());
    assert_eq!(accepts.get(), 3);
    assert_eq!(order.borrow().len(), 20);
    assert_eq!(client.pool_stats().idle, 3);
}

#[test]
fn queued_requests_go_in_fifo_order() {
    let reactor = Reactor::new().unwrap();
    let (handler, max, order) = delayed(&reactor);
    let (_port, base, accepts) = counted_server(&reactor, handler);
    let client = Client::with_config(
        &reactor,
        ClientConfig {
            max_per_host: 1,
            ..config()
        },
    );
    let all: Vec<_> = (0..8)
        .map(|i| client.get(&format!("{base}/q{i}")))
        .collect();
    // One of them is cancelled while it waits: it is skipped, the rest keep their order.
    all[3].cancel_handle().cancel();
    let results: Vec<_> = all.into_iter().map(|d| d.wait()).collect();
    assert!(results[3]
        .as_ref()
        .unwrap_err()
        .is::<ropewalk_deferred::Cancelled>());
    let expected: Vec<String> = [0, 1, 2, 4, 5, 6, 7]
        .iter()
        .map(|i| format!("/q{i}"))
        .collect();
    assert_eq!(*order.borrow(), expected);
    assert_eq!((max.get(), accepts.get()), (1, 1));
}

/// A hand-written keep-alive server: answers each request head with `ok`; connection
/// number `kill_on.0` aborts without answering when its request number `kill_on.1`
/// (from 0) arrives. Counts accepts; fires `lost` when a connection ends.
struct Raw {
    index: usize,
    requests: usize,
    kill_on: (usize, usize),
    close_after_first: bool,
    reply: &'static [u8],
    buf: Vec<u8>,
    transport: Option<TransportRef>,
    lost: Rc<RefCell<Vec<Resolver<usize>>>>,
    heads: Rc<RefCell<Vec<String>>>,
}

impl Protocol for Raw {
    fn connection_made(&mut self, transport: TransportRef) {
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        self.buf.extend_from_slice(data);
        while let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = self.buf.drain(..end + 4).collect();
            let head = String::from_utf8_lossy(&head).into_owned();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |n| n.trim().parse::<usize>().unwrap());
            self.buf.drain(..len.min(self.buf.len()));
            self.heads.borrow_mut().push(head);
            let t = self.transport.clone().unwrap();
            if (self.index, self.requests) == self.kill_on {
                t.abort_connection();
                return Ok(());
            }
            self.requests += 1;
            t.write(self.reply);
            if self.close_after_first {
                t.lose_connection();
            }
        }
        Ok(())
    }

    fn connection_lost(&mut self, _reason: Failure) {
        if let Some(r) = self.lost.borrow_mut().pop() {
            let _ = r.callback(self.index);
        }
    }
}

struct RawServer {
    _port: ListeningPort,
    base: String,
    accepts: Rc<Cell<usize>>,
    lost: Rc<RefCell<Vec<Resolver<usize>>>>,
    heads: Rc<RefCell<Vec<String>>>,
}

impl RawServer {
    fn new(reactor: &Reactor, kill_on: (usize, usize), close_after_first: bool) -> RawServer {
        RawServer::with_reply(
            reactor,
            kill_on,
            close_after_first,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        )
    }

    fn with_reply(
        reactor: &Reactor,
        kill_on: (usize, usize),
        close_after_first: bool,
        reply: &'static [u8],
    ) -> RawServer {
        let accepts = Rc::new(Cell::new(0));
        let lost = Rc::new(RefCell::new(Vec::new()));
        let heads = Rc::new(RefCell::new(Vec::new()));
        let (a, l, h) = (accepts.clone(), lost.clone(), heads.clone());
        let port = reactor
            .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
                a.set(a.get() + 1);
                Some(Raw {
                    index: a.get() - 1,
                    requests: 0,
                    kill_on,
                    close_after_first,
                    reply,
                    buf: Vec::new(),
                    transport: None,
                    lost: l.clone(),
                    heads: h.clone(),
                })
            })
            .unwrap();
        RawServer {
            base: format!("http://{}", port.local_addr()),
            _port: port,
            accepts,
            lost,
            heads,
        }
    }

    /// Fires with the connection's index when the next server-side connection ends.
    fn next_lost(&self, reactor: &Reactor) -> Deferred<usize> {
        let (d, r) = Deferred::pending();
        self.lost.borrow_mut().push(r);
        d.add_timeout(Duration::from_secs(5), reactor)
    }
}

#[test]
fn a_dead_pooled_connection_is_retried_on_a_fresh_one() {
    let reactor = Reactor::new().unwrap();
    // Connection 0 dies when its second request comes: the race where the server
    // closed an idle connection just as the client reused it.
    let server = RawServer::new(&reactor, (0, 1), false);
    let client = Client::with_config(&reactor, config());
    assert_eq!(
        client
            .get(&format!("{}/a", server.base))
            .wait()
            .unwrap()
            .text(),
        "ok"
    );
    assert_eq!(
        client
            .get(&format!("{}/b", server.base))
            .wait()
            .unwrap()
            .text(),
        "ok"
    );
    assert_eq!(server.accepts.get(), 2);
    let heads = server.heads.borrow();
    assert_eq!(heads.len(), 3, "{heads:?}");
    assert!(heads[1].starts_with("GET /b ") && heads[2].starts_with("GET /b "));
}

#[test]
fn a_non_idempotent_request_is_not_retried() {
    let reactor = Reactor::new().unwrap();
    let server = RawServer::new(&reactor, (0, 1), false);
    let client = Client::with_config(&reactor, config());
    client.get(&format!("{}/a", server.base)).wait().unwrap();
    let f = client
        .post(&format!("{}/b", server.base), b"once".to_vec())
        .wait()
        .unwrap_err();
    assert!(
        matches!(f.downcast_ref(), Some(ClientError::ConnectionClosed(_))),
        "{f}"
    );
    assert_eq!(server.accepts.get(), 1);
}

#[test]
fn a_fresh_connection_failing_is_not_retried() {
    let reactor = Reactor::new().unwrap();
    // Connection 0 dies on its very first request: nothing to blame on reuse.
    let server = RawServer::new(&reactor, (0, 0), false);
    let client = Client::with_config(&reactor, config());
    let f = client
        .get(&format!("{}/a", server.base))
        .wait()
        .unwrap_err();
    assert!(
        matches!(f.downcast_ref(), Some(ClientError::ConnectionClosed(_))),
        "{f}"
    );
    assert_eq!(server.accepts.get(), 1);
}

#[test]
fn a_connection_the_server_closed_while_idle_is_not_used() {
    let reactor = Reactor::new().unwrap();
    // The server closes every connection after its first response (without saying
    // `Connection: close`): whether the client noticed or not, every request succeeds.
    let server = RawServer::new(&reactor, (usize::MAX, 0), true);
    let client = Client::with_config(&reactor, config());
    for _ in 0..5 {
        let lost = server.next_lost(&reactor);
        assert_eq!(
            client
                .get(&format!("{}/", server.base))
                .wait()
                .unwrap()
                .text(),
            "ok"
        );
        lost.wait().unwrap();
    }
    assert_eq!(server.accepts.get(), 5);
}

#[test]
fn idle_connections_close_after_the_idle_timeout() {
    let reactor = Reactor::new().unwrap();
    let server = RawServer::new(&reactor, (usize::MAX, 0), false);
    let client = Client::with_config(
        &reactor,
        ClientConfig {
            idle_timeout: Duration::from_millis(20),
            ..config()
        },
    );
    let lost = server.next_lost(&reactor);
    client.get(&format!("{}/", server.base)).wait().unwrap();
    assert_eq!(client.pool_stats().idle, 1);
    // The client closes it once idle for 20 ms: the server sees it go.
    assert_eq!(lost.wait().unwrap(), 0);
    assert_eq!(client.pool_stats().idle, 0);
    client.get(&format!("{}/", server.base)).wait().unwrap();
    assert_eq!(server.accepts.get(), 2);
}

#[test]
fn dropping_the_client_closes_its_idle_connections() {
    let reactor = Reactor::new().unwrap();
    let server = RawServer::new(&reactor, (usize::MAX, 0), false);
    let client = Client::with_config(&reactor, config());
    let lost = server.next_lost(&reactor);
    client.get(&format!("{}/", server.base)).wait().unwrap();
    drop(client);
    assert_eq!(lost.wait().unwrap(), 0);
}

#[test]
fn connection_close_and_http10_are_not_reused() {
    for (reply, keep) in [
        (
            &b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"[..],
            false,
        ),
        (
            b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 2\r\n\r\nok",
            false,
        ),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
        (
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            true,
        ),
    ] {
        let reactor = Reactor::new().unwrap();
        let server = RawServer::with_reply(&reactor, (usize::MAX, 0), false, reply);
        let client = Client::with_config(&reactor, config());
        for _ in 0..2 {
            let resp = client.get(&format!("{}/", server.base)).wait().unwrap();
            assert_eq!(resp.text(), "ok");
        }
        let expected = if keep { 1 } else { 2 };
        assert_eq!(
            server.accepts.get(),
            expected,
            "{}",
            String::from_utf8_lossy(reply)
        );
    }
}

/// RFC 9112 §6.1: an HTTP/1.0 message with `Transfer-Encoding` has faulty framing,
/// so its connection is closed after it, even if it says `keep-alive`.
#[test]
fn an_http10_response_with_transfer_encoding_is_not_reused() {
    let reactor = Reactor::new().unwrap();
    let server = RawServer::with_reply(
        &reactor,
        (usize::MAX, 0),
        false,
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    );
    let client = Client::with_config(&reactor, config());
    for _ in 0..2 {
        let resp = client.get(&format!("{}/", server.base)).wait().unwrap();
        assert_eq!(resp.text(), "ok");
    }
    assert_eq!(server.accepts.get(), 2);
    assert_eq!(client.pool_stats().idle, 0);
}

#[test]
fn a_close_delimited_body_is_not_reused() {
    let reactor = Reactor::new().unwrap();
    let server = RawServer::with_reply(
        &reactor,
        (usize::MAX, 0),
        true,
        b"HTTP/1.1 200 OK\r\n\r\nok",
    );
    let client = Client::with_config(&reactor, config());
    for _ in 0..2 {
        assert_eq!(
            client
                .get(&format!("{}/", server.base))
                .wait()
                .unwrap()
                .text(),
            "ok"
        );
    }
    assert_eq!(server.accepts.get(), 2);
    assert_eq!(client.pool_stats().idle, 0);
}
