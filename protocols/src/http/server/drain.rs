//! Graceful drain: the server's registry of live connections and what
//! [`HttpServer::drain`](super::HttpServer::drain) does with it.
//!
//! Draining stops the server's listening ports (every port whose factory is the server,
//! or wraps it, reports itself through `Factory::port_listening`: a new connect is
//! refused), makes its factory refuse connections accepted before, and asks every live connection to
//! finish: an idle keep-alive connection closes at once; one with a request in flight
//! answers it with `Connection: close`, then closes. When the last connection has gone
//! the drain's Deferreds fire; at the deadline the connections still open are aborted.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use ropewalk_deferred::{Deferred, Resolver};
use ropewalk_reactor::{DelayedCall, ListeningPort};

use super::connection::{ConnHandle, HttpConnection};

/// What a server knows for draining: its ports, its live connections, and a drain in
/// progress.
#[derive(Default)]
pub(super) struct DrainState {
    draining: Cell<bool>,
    /// The ports that serve this server (see `Factory::port_listening`).
    ports: RefCell<Vec<ListeningPort>>,
    /// Live connections by id (registered when made, removed when lost).
    conns: RefCell<HashMap<u64, ConnHandle>>,
    next_id: Cell<u64>,
    /// The drains waiting for the last connection to go.
    waiters: RefCell<Vec<Resolver<()>>>,
    /// Aborts what is left at the drain's deadline.
    deadline: RefCell<Option<DelayedCall>>,
}

impl DrainState {
    pub(super) fn draining(&self) -> bool {
        self.draining.get()
    }

    pub(super) fn live(&self) -> usize {
        self.conns.borrow().len()
    }

    /// A port that serves this server; one that opens while draining stops at once.
    pub(super) fn add_port(&self, port: ListeningPort) {
        if self.draining.get() {
            drop(port.stop_listening());
        } else {
            self.ports.borrow_mut().push(port);
        }
    }

    /// Registers a live connection; returns its id.
    pub(super) fn register(&self, conn: ConnHandle) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.conns.borrow_mut().insert(id, conn);
        id
    }

    /// A connection was lost: forget it, and end the drain if it was the last.
    pub(super) fn forget(&self, id: u64) {
        self.conns.borrow_mut().remove(&id);
        self.check_drained();
    }

    /// The live connections (those not yet dropped).
    fn connections(&self) -> Vec<HttpConnection> {
        self.conns
            .borrow()
            .values()
            .filter_map(ConnHandle::upgrade)
            .collect()
    }

    /// Starts draining (once), and returns a Deferred that fires when every connection
    /// has gone. `arm` arms the deadline's timer with the function to run at it.
    pub(super) fn start(&self, arm: impl FnOnce() -> Option<DelayedCall>) -> Deferred<()> {
        let (d, resolver) = Deferred::pending();
        self.waiters.borrow_mut().push(resolver);
        if !self.draining.replace(true) {
            let ports = std::mem::take(&mut *self.ports.borrow_mut());
            for port in ports {
                log::info!("draining: no longer listening on {}", port.local_addr());
                // Closing a listening socket cannot fail in a way worth reporting here.
                drop(port.stop_listening());
            }
            let conns = self.connections();
            log::info!("draining {} connection(s)", conns.len());
            for conn in conns {
                conn.drain();
            }
            if !self.conns.borrow().is_empty() {
                *self.deadline.borrow_mut() = arm();
            }
        }
        self.check_drained();
        d
    }

    /// The deadline passed: abort every connection still open.
    pub(super) fn abort_all(&self) {
        self.deadline.borrow_mut().take();
        let conns = self.connections();
        if !conns.is_empty() {
            log::warn!(
                "drain deadline passed: aborting {} connection(s)",
                conns.len()
            );
        }
        for conn in conns {
            conn.abort();
        }
        // Connections dropped without being lost cannot hold the drain open.
        self.conns.borrow_mut().retain(|_, c| c.upgrade().is_some());
        self.check_drained();
    }

    fn check_drained(&self) {
        if !self.draining.get() || !self.conns.borrow().is_empty() {
            return;
        }
        if let Some(timer) = self.deadline.borrow_mut().take() {
            let _ = timer.cancel();
        }
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters {
            let _ = w.callback(());
        }
    }
}
