//! Connecting to a host name (RFC 8305, "Happy Eyeballs"): the name is resolved on the
//! worker pool and its addresses are raced, all within one timeout.
//!
//! How it goes, step by step:
//!
//! 1. The timeout starts when [`connect_name`] is called: resolving the name counts
//!    against it. A lookup still running at the deadline is abandoned (its result is
//!    dropped when it comes) and the connect fails with
//!    [`ConnectionError::TimedOut`].
//! 2. The addresses are ordered as RFC 8305 §4 says: the first one's family first, then
//!    the two families in turn (`::1`, `127.0.0.1`, `::2`, …), so one broken family
//!    costs one [`ATTEMPT_DELAY`] at most.
//! 3. The first address is tried. If it has not connected after [`ATTEMPT_DELAY`]
//!    (250 ms, RFC 8305 §5), the next one is tried too, without giving up on the first;
//!    if an attempt fails, the next one starts at once.
//! 4. The first attempt to connect wins: every other one is cancelled (its socket
//!    closed before a protocol is built for it), and the connect fires with the winner.
//! 5. When every address has failed, the connect fails with the last failure; at the
//!    deadline, with [`ConnectionError::TimedOut`] (the whole timeout), every attempt
//!    in flight cancelled.
//!
//! Cancelling the connect's Deferred cancels the attempts in flight and the lookup (if it
//! has not started on the pool yet).
//!
//! Not done here: the resolution delay of RFC 8305 §3 (we resolve with
//! `getaddrinfo`, which gives both families at once), and a memory of which family
//! worked last.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use ropewalk_deferred::{CancelHandle, Deferred, Failure, Resolver};

use super::{connect_addr, Connected, SharedFactory};
use crate::protocol::{ConnectionError, Factory};
use crate::reactor::Reactor;
use crate::time::DelayedCall;

/// How long an attempt runs alone before the next address is tried as well: RFC 8305
/// §5's recommended Connection Attempt Delay.
pub(crate) const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Resolves `name` (`host:port`) with `lookup` on the worker pool and races its
/// addresses, the whole within `timeout` (see the module docs).
pub(crate) fn connect_name<F: Factory>(
    reactor: &Reactor,
    name: String,
    lookup: impl FnOnce(&str) -> io::Result<Vec<SocketAddr>> + Send + 'static,
    factory: F,
    timeout: Duration,
) -> Deferred<Connected<F::Protocol>> {
    let (race, connected) = Race::start(reactor, factory, timeout);
    let looked_up = reactor.defer_to_thread(move || {
        let failed = |e| Failure::new(ConnectionError::LookupFailed(name.clone(), e));
        let addrs = lookup(&name).map_err(failed)?;
        if addrs.is_empty() {
            return Err(failed(io::Error::new(
                io::ErrorKind::NotFound,
                "no addresses",
            )));
        }
        Ok(addrs)
    });
    *race.lookup.borrow_mut() = Some(looked_up.cancel_handle());
    drop(looked_up.add_both(move |result| {
        race.lookup.borrow_mut().take();
        match result {
            Ok(addrs) => Race::begin(&race, interleave(addrs)),
            Err(f) => race.finish(Err(f)),
        }
        Ok(())
    }));
    connected
}

/// The addresses in RFC 8305 §4's order: the first one's family first, then the two
/// families in turn, each in the order the resolver gave.
fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else {
        return addrs;
    };
    let first_v6 = first.is_ipv6();
    let (same, other): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|a| a.is_ipv6() == first_v6);
    let mut out = Vec::with_capacity(same.len() + other.len());
    let (mut same, mut other) = (same.into_iter(), other.into_iter());
    loop {
        match (same.next(), other.next()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

/// One connect to a name: its addresses, the attempts in flight, and the timers.
struct Race<F: Factory> {
    reactor: Reactor,
    factory: Rc<F>,
    /// The addresses, once resolved, in the order they are tried.
    addrs: RefCell<Vec<SocketAddr>>,
    /// The next address to try.
    next: Cell<usize>,
    /// The attempts in flight: the index of their address, and how to cancel them.
    attempts: RefCell<Vec<(usize, CancelHandle)>>,
    /// Starts the next attempt if the last one has not connected in time.
    stagger: RefCell<Option<DelayedCall>>,
    /// Ends the whole connect.
    deadline: RefCell<Option<DelayedCall>>,
    /// The lookup, while it runs.
    lookup: RefCell<Option<CancelHandle>>,
    /// The last attempt's failure: the result if every one fails.
    last_error: RefCell<Option<Failure>>,
    /// Fires the connect's Deferred; `None` once it has fired (or was cancelled).
    resolver: RefCell<Option<Resolver<Connected<F::Protocol>>>>,
}

impl<F: Factory> Race<F> {
    /// A race whose deadline runs from now; its addresses come with [`Race::begin`].
    fn start(
        reactor: &Reactor,
        factory: F,
        timeout: Duration,
    ) -> (Rc<Race<F>>, Deferred<Connected<F::Protocol>>) {
        let race = Rc::new(Race {
            reactor: reactor.clone(),
            factory: Rc::new(factory),
            addrs: RefCell::new(Vec::new()),
            next: Cell::new(0),
            attempts: RefCell::new(Vec::new()),
            stagger: RefCell::new(None),
            deadline: RefCell::new(None),
            lookup: RefCell::new(None),
            last_error: RefCell::new(None),
            resolver: RefCell::new(None),
        });
        let weak = Rc::downgrade(&race);
        let (connected, resolver) = Deferred::with_canceller(move || {
            if let Some(race) = weak.upgrade() {
                let resolver = race.resolver.borrow_mut().take();
                drop(resolver);
                race.stop();
            }
            None
        });
        *race.resolver.borrow_mut() = Some(resolver);
        let weak = Rc::downgrade(&race);
        let deadline = reactor.call_later(timeout, move || {
            if let Some(race) = weak.upgrade() {
                race.deadline.borrow_mut().take();
                race.finish(Err(Failure::new(ConnectionError::TimedOut(timeout))));
            }
        });
        *race.deadline.borrow_mut() = Some(deadline);
        (race, connected)
    }

    fn is_done(&self) -> bool {
        self.resolver.borrow().is_none()
    }

    /// The name resolved to `addrs` (not empty): the first attempt starts.
    fn begin(race: &Rc<Race<F>>, addrs: Vec<SocketAddr>) {
        if race.is_done() {
            return;
        }
        *race.addrs.borrow_mut() = addrs;
        Race::attempt_next(race);
    }

    /// Starts an attempt on the next address, and the timer that starts the one after.
    fn attempt_next(race: &Rc<Race<F>>) {
        let stagger = race.stagger.borrow_mut().take();
        if let Some(timer) = stagger {
            let _ = timer.cancel();
        }
        let i = race.next.get();
        let (addr, more) = {
            let addrs = race.addrs.borrow();
            match addrs.get(i) {
                Some(&addr) => (addr, i + 1 < addrs.len()),
                None => return,
            }
        };
        race.next.set(i + 1);
        if more {
            let weak = Rc::downgrade(race);
            let timer = race.reactor.call_later(ATTEMPT_DELAY, move || {
                if let Some(race) = weak.upgrade() {
                    race.stagger.borrow_mut().take();
                    log::debug!("connect: {addr} not connected after {ATTEMPT_DELAY:?}");
                    Race::attempt_next(&race);
                }
            });
            *race.stagger.borrow_mut() = Some(timer);
        }
        let attempt = connect_addr(
            &race.reactor,
            addr,
            SharedFactory(race.factory.clone()),
            None,
        );
        race.attempts
            .borrow_mut()
            .push((i, attempt.cancel_handle()));
        let this = race.clone();
        // An attempt that failed at once (refused) runs this now, in `add_both`.
        drop(attempt.add_both(move |result| {
            Race::attempt_done(&this, i, addr, result);
            Ok(())
        }));
    }

    /// Attempt `i` (to `addr`) ended.
    fn attempt_done(
        race: &Rc<Race<F>>,
        i: usize,
        addr: SocketAddr,
        result: Result<Connected<F::Protocol>, Failure>,
    ) {
        race.attempts.borrow_mut().retain(|(j, _)| *j != i);
        let failure = match result {
            Ok(connected) => return race.finish(Ok(connected)),
            // Cancelled by us, or too late.
            Err(_) if race.is_done() => return,
            Err(f) => f,
        };
        log::debug!("connect to {addr} failed: {failure}");
        *race.last_error.borrow_mut() = Some(failure);
        if race.next.get() < race.addrs.borrow().len() {
            Race::attempt_next(race);
        } else if race.attempts.borrow().is_empty() {
            let last = race.last_error.borrow_mut().take();
            race.finish(Err(last.expect("a failure was just kept")));
        }
    }

    /// Fires the connect with `result` (once), and stops everything else.
    fn finish(&self, result: Result<Connected<F::Protocol>, Failure>) {
        let Some(resolver) = self.resolver.borrow_mut().take() else {
            return;
        };
        self.stop();
        let _ = match result {
            Ok(connected) => resolver.callback(connected),
            Err(f) => resolver.errback(f),
        };
    }

    /// Cancels the timers, the lookup and every attempt in flight.
    fn stop(&self) {
        let timers = [self.stagger.take(), self.deadline.take()];
        for timer in timers.into_iter().flatten() {
            let _ = timer.cancel();
        }
        let lookup = self.lookup.take();
        if let Some(lookup) = lookup {
            lookup.cancel();
        }
        let attempts = std::mem::take(&mut *self.attempts.borrow_mut());
        for (_, attempt) in attempts {
            attempt.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{connect_name, interleave};
    use crate::protocol::{Address, ConnectionError, Protocol};
    use crate::reactor::Reactor;
    use ropewalk_deferred::{Cancelled, Failure};
    use std::io;
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    #[test]
    fn families_take_turns_from_the_first_ones() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let (v6a, v6b, v6c) = (a("[::1]:1"), a("[::2]:1"), a("[::3]:1"));
        let (v4a, v4b) = (a("127.0.0.1:1"), a("127.0.0.2:1"));
        assert_eq!(
            interleave(vec![v6a, v6b, v6c, v4a, v4b]),
            [v6a, v4a, v6b, v4b, v6c]
        );
        assert_eq!(interleave(vec![v4a, v6a, v6b]), [v4a, v6a, v6b]);
        assert_eq!(interleave(vec![v4a, v4b]), [v4a, v4b]);
        assert_eq!(interleave(vec![]), Vec::<SocketAddr>::new());
    }

    /// A client protocol that remembers whom it is connected to.
    #[derive(Debug)]
    struct Peer(Address);

    impl Protocol for Peer {
        fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> {
            Ok(())
        }
    }

    fn factory(peer: &Address) -> Option<Peer> {
        Some(Peer(peer.clone()))
    }

    /// A loopback address where a connect neither succeeds nor fails: a listener with a
    /// backlog of 0, its queue filled and never accepted, so the kernel drops further
    /// SYNs. Keep the returned sockets alive.
    fn hanging_address() -> (SocketAddr, Vec<socket2::Socket>) {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        listener.bind(&any.into()).unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let mut keep = vec![listener];
        // Connected and queued: blocking, so it is in the queue before the test goes on.
        keep.push(Socket::from(TcpStream::connect(addr).unwrap()));
        for _ in 0..2 {
            let filler = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            filler.set_nonblocking(true).unwrap();
            let _ = filler.connect(&addr.into());
            keep.push(filler);
        }
        (addr, keep)
    }

    /// A port nothing listens on: a connect to it is refused.
    fn refused_address() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    fn resolves_to(addrs: Vec<SocketAddr>) -> impl FnOnce(&str) -> io::Result<Vec<SocketAddr>> {
        move |_| Ok(addrs)
    }

    fn connection_error(f: &Failure) -> &ConnectionError {
        f.downcast_ref()
            .unwrap_or_else(|| panic!("not a ConnectionError: {f}"))
    }

    /// RFC 8305 §5: an address that has not connected after 250 ms does not hold up the
    /// next one. The first attempt hangs; the second connects within the timeout (the
    /// first attempt alone used to take the whole timeout, and the second another one).
    #[test]
    fn a_hanging_address_is_raced_by_the_next() {
        let reactor = Reactor::new().unwrap();
        let (hanging, _keep) = hanging_address();
        let good = TcpListener::bind("127.0.0.1:0").unwrap();
        let good_addr = good.local_addr().unwrap();
        let timeout = Duration::from_secs(5);
        let started = Instant::now();
        let d = connect_name(
            &reactor,
            "two.test:1".into(),
            resolves_to(vec![hanging, good_addr]),
            factory,
            timeout,
        );
        let connected = d.wait().unwrap();
        // Not a speed test: whatever happens, a connect ends within its timeout.
        assert!(started.elapsed() < timeout, "took {:?}", started.elapsed());
        assert_eq!(connected.borrow().0, Address::Inet(good_addr));
        assert!(good.accept().is_ok());
    }

    /// The timeout covers the lookup: a lookup that never answers ends in `TimedOut`,
    /// not in a connect that waits for it without bound.
    #[test]
    fn the_lookup_counts_against_the_timeout() {
        let reactor = Reactor::new().unwrap();
        let (release, wait) = mpsc::channel::<()>();
        let d = connect_name(
            &reactor,
            "slow.test:1".into(),
            move |_: &str| {
                // Bounded, so a broken test cannot hang the worker pool.
                let _ = wait.recv_timeout(Duration::from_secs(30));
                Err(io::Error::other("lookup gave up"))
            },
            factory,
            Duration::from_millis(200),
        );
        let f = d.wait().unwrap_err();
        let _ = release.send(());
        assert!(
            matches!(connection_error(&f), ConnectionError::TimedOut(t) if *t == Duration::from_millis(200)),
            "{f}"
        );
    }

    /// One deadline for every attempt: two hanging addresses time out together, with the
    /// whole timeout in the error.
    #[test]
    fn the_deadline_covers_every_attempt() {
        let reactor = Reactor::new().unwrap();
        let (a, _keep_a) = hanging_address();
        let (b, _keep_b) = hanging_address();
        let d = connect_name(
            &reactor,
            "hang.test:1".into(),
            resolves_to(vec![a, b]),
            factory,
            Duration::from_millis(600),
        );
        let f = d.wait().unwrap_err();
        assert!(
            matches!(connection_error(&f), ConnectionError::TimedOut(t) if *t == Duration::from_millis(600)),
            "{f}"
        );
    }

    /// A refused attempt starts the next at once; when all fail, the last failure is
    /// the result; a lookup error is `LookupFailed`.
    #[test]
    fn failures_move_on_and_the_last_one_is_the_result() {
        let reactor = Reactor::new().unwrap();
        let good = TcpListener::bind("127.0.0.1:0").unwrap();
        let good_addr = good.local_addr().unwrap();
        let d = connect_name(
            &reactor,
            "a.test:1".into(),
            resolves_to(vec![refused_address(), good_addr]),
            factory,
            Duration::from_secs(20),
        );
        assert_eq!(d.wait().unwrap().borrow().0, Address::Inet(good_addr));

        let d = connect_name(
            &reactor,
            "b.test:1".into(),
            resolves_to(vec![refused_address(), refused_address()]),
            factory,
            Duration::from_secs(20),
        );
        let f = d.wait().unwrap_err();
        assert!(
            matches!(connection_error(&f), ConnectionError::Refused(_)),
            "{f}"
        );

        for lookup in [Err(io::Error::other("no such name")), Ok(vec![])] {
            let d = connect_name(
                &reactor,
                "c.test:1".into(),
                move |_: &str| lookup,
                factory,
                Duration::from_secs(20),
            );
            let f = d.wait().unwrap_err();
            assert!(
                matches!(connection_error(&f), ConnectionError::LookupFailed(n, _) if n == "c.test:1"),
                "{f}"
            );
        }
    }

    /// Cancelling the connect cancels the attempts in flight: the Deferred fails with
    /// `Cancelled` and nothing fires afterwards.
    #[test]
    fn cancelling_stops_every_attempt() {
        let reactor = Reactor::new().unwrap();
        let (a, _keep_a) = hanging_address();
        let d = connect_name(
            &reactor,
            "c.test:1".into(),
            resolves_to(vec![a]),
            factory,
            Duration::from_secs(20),
        );
        // Cancelled once the attempt is in flight (after the lookup).
        let handle = d.cancel_handle();
        let _timer = reactor.call_later(Duration::from_millis(50), move || handle.cancel());
        let f = d.wait().unwrap_err();
        assert!(f.is::<Cancelled>(), "{f}");
    }
}
