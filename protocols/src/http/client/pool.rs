//! The connection pool: per `host:port`, connections open (up to
//! [`ClientConfig::max_per_host`]), idle ones kept for reuse, and a FIFO queue of
//! exchanges waiting for one; [`Conn`] is one pooled connection and
//! [`ClientProtocol`] its protocol, which feeds the bytes read to the exchange it
//! carries.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use ropewalk_deferred::{CancelHandle, Cancelled, Deferred, Failure};
use ropewalk_reactor::tls::{
    rustls, TlsClientBuilder, TlsConfigError, TlsOptions, DEFAULT_HANDSHAKE_TIMEOUT,
};
use ropewalk_reactor::{Address, DelayedCall, Protocol, Reactor, TransportRef};

use super::exchange::{BodyReader, Exchange, Parsed, ReadingResponse};
use super::{ClientConfig, ClientError};

/// The pool's connections to one `host:port`.
#[derive(Default)]
pub(super) struct HostPool {
    /// Connections counted against `max_per_host`: connecting, busy or idle.
    pub(super) open: usize,
    /// Idle connections; the most recently used is taken first.
    pub(super) idle: Vec<Rc<RefCell<Conn>>>,
    /// Requests waiting for a connection, oldest first.
    pub(super) queue: VecDeque<Rc<RefCell<Exchange>>>,
}

/// The connection pool, shared by a client's clones and its connections.
pub(super) struct Pool {
    pub(super) reactor: Reactor,
    pub(super) config: Rc<ClientConfig>,
    pub(super) hosts: RefCell<HashMap<String, HostPool>>,
    /// Every `Client` clone is gone: connections are closed instead of kept idle.
    pub(super) closed: Cell<bool>,
}

/// Owned by the `Client` clones: when the last one goes, idle connections are closed.
pub(super) struct PoolHandle(pub(super) Rc<Pool>);

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

pub(super) enum Placement {
    Reuse(Rc<RefCell<Conn>>),
    Open,
    Queued,
}

impl Pool {
    pub(super) fn max_per_host(&self) -> usize {
        self.config.max_per_host.max(1)
    }

    /// Sends `ex` on an idle connection, on a new one, or queues it.
    pub(super) fn submit(pool: &Rc<Pool>, ex: Rc<RefCell<Exchange>>) {
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
    pub(super) fn next_queued(&self, key: &str) -> Option<Rc<RefCell<Exchange>>> {
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
    pub(super) fn pump(pool: &Rc<Pool>, key: &str) {
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
    pub(super) fn open(pool: &Rc<Pool>, ex: Rc<RefCell<Exchange>>) {
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
        let factory = move |_: &Address| {
            Some(ClientProtocol {
                conn: factory_conn.clone(),
            })
        };
        let tls_name = ex.borrow().tls_name.clone();
        let connect = match tls_name {
            None => pool
                .reactor
                .connect_tcp(target, factory, pool.config.timeout),
            Some(name) => {
                let options = TlsOptions {
                    connect_timeout: pool.config.timeout,
                    handshake_timeout: pool.config.timeout.min(DEFAULT_HANDSHAKE_TIMEOUT),
                    ..TlsOptions::default()
                };
                match tls_config(&pool.config) {
                    Ok(config) => pool
                        .reactor
                        .connect_tls_with(target, &name, factory, config, &options),
                    Err(e) => Deferred::fail(e),
                }
            }
        };
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

/// The TLS configuration of `config`'s `https://` requests: its own, or the default one,
/// built once per thread (so that its session cache resumes sessions across clients).
fn tls_config(config: &ClientConfig) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    if let Some(tls) = &config.tls {
        return Ok(tls.clone());
    }
    thread_local! {
        static DEFAULT: RefCell<Option<Arc<rustls::ClientConfig>>> = const { RefCell::new(None) };
    }
    DEFAULT.with(|d| {
        if let Some(tls) = d.borrow().as_ref() {
            return Ok(tls.clone());
        }
        let tls = TlsClientBuilder::new().alpn(&[b"http/1.1"]).build()?;
        *d.borrow_mut() = Some(tls.clone());
        Ok(tls)
    })
}

/// One pooled connection.
pub(super) struct Conn {
    pub(super) key: String,
    pub(super) pool: Rc<Pool>,
    pub(super) transport: Option<TransportRef>,
    /// The exchange on it; `None` while idle.
    pub(super) exchange: Option<Rc<RefCell<Exchange>>>,
    /// Responses completed on it.
    pub(super) uses: u32,
    pub(super) idle_timer: Option<DelayedCall>,
    pub(super) connect: Option<CancelHandle>,
    pub(super) dead: bool,
}

impl Conn {
    /// Sends `ex` on this (connected, idle) connection.
    pub(super) fn assign(conn: &Rc<RefCell<Conn>>, ex: Rc<RefCell<Exchange>>) {
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
    pub(super) fn release(conn: &Rc<RefCell<Conn>>) {
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
    pub(super) fn close_idle(conn: &Rc<RefCell<Conn>>) {
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
    pub(super) fn die(conn: &Rc<RefCell<Conn>>) -> Option<Rc<RefCell<Exchange>>> {
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
pub(super) struct ClientProtocol {
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
    pub(super) fn lost_during(pool: &Rc<Pool>, ex: Rc<RefCell<Exchange>>, reason: Failure) {
        let outcome = {
            let mut e = ex.borrow_mut();
            e.conn = None;
            let nothing_yet = matches!(e.reading, ReadingResponse::Head) && e.buf.is_empty();
            if nothing_yet && e.reused && e.idempotent && !e.retried {
                // A kept-alive connection the server had closed: once more, fresh.
                log::debug!("http client: reused connection failed ({reason}); retrying");
                e.retried = true;
                None
            } else {
                let reading = std::mem::replace(&mut e.reading, ReadingResponse::Done);
                let clean = reason
                    .downcast_ref::<ropewalk_reactor::ConnectionError>()
                    .is_some_and(|e| e.is_clean());
                match outcome_at_close(reading, e.buf.is_empty(), clean, &reason) {
                    Some(outcome) => Some(outcome),
                    None => return,
                }
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

/// What a response being read when its connection ended comes to: complete if it was
/// read until the close and the close was `clean`, else an error naming where it broke;
/// `None` if it was already done.
pub(super) fn outcome_at_close(
    reading: ReadingResponse,
    buf_empty: bool,
    clean: bool,
    reason: &dyn std::fmt::Display,
) -> Option<Result<super::ClientResponse, String>> {
    Some(match reading {
        ReadingResponse::Done => return None,
        ReadingResponse::Body {
            response,
            body: BodyReader::UntilClose,
        } if clean => Ok(response),
        ReadingResponse::Head if buf_empty => Err(format!("no response: {reason}")),
        ReadingResponse::Head => Err(format!("inside the response head: {reason}")),
        ReadingResponse::Body { .. } => Err(format!("inside the response body: {reason}")),
    })
}
