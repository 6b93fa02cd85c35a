//! `Reactor::connect_for`: a client protocol hands its result to the caller as a
//! Deferred through a `Finish`, over loopback; every way of not getting a result fails
//! that Deferred once, cleanly, and nothing is logged as unhandled.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use ropewalk_reactor::deferred::{Cancelled, Failure};
use ropewalk_reactor::{
    Address, ConnectionError, Finish, ListeningPort, NoResult, Protocol, Reactor, TransportRef,
};
use support::{bounded, capture_logs, logged};

const LIMIT: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(10);

/// What the server does with a connection.
#[derive(Clone, Copy)]
enum Serve {
    /// Answers each chunk with it upper-cased.
    Shout,
    /// Closes at once, cleanly.
    Close,
    /// Says nothing.
    Silent,
    /// Sends `partial` then closes.
    SendAndClose,
}

struct Server {
    how: Serve,
    t: Option<TransportRef>,
}

impl Protocol for Server {
    fn connection_made(&mut self, t: TransportRef) {
        match self.how {
            Serve::Close => t.lose_connection(),
            Serve::SendAndClose => {
                t.write(b"partial");
                t.lose_connection();
            }
            Serve::Shout | Serve::Silent => {}
        }
        self.t = Some(t);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        if let (Serve::Shout, Some(t)) = (self.how, &self.t) {
            t.write(&data.to_ascii_uppercase());
        }
        Ok(())
    }
}

fn serve(reactor: &Reactor, how: Serve) -> (ListeningPort, std::net::SocketAddr) {
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_| {
            Some(Server { how, t: None })
        })
        .unwrap();
    let addr = port.local_addr().inet().unwrap();
    (port, addr)
}

/// Sends `question`, answers with the first chunk of the reply; with `on_close`, answers
/// with everything read when the connection ends instead.
struct Ask {
    question: &'static [u8],
    finish: Finish<String>,
    on_close: bool,
    got: Vec<u8>,
}

impl Ask {
    fn new(question: &'static [u8]) -> impl FnOnce(Finish<String>) -> Ask {
        move |finish| Ask {
            question,
            finish,
            on_close: false,
            got: Vec::new(),
        }
    }
}

impl Protocol for Ask {
    fn connection_made(&mut self, t: TransportRef) {
        t.write(self.question);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        if data.starts_with(b"!") {
            return Err(Failure::msg("marker-bad-reply"));
        }
        self.got.extend_from_slice(data);
        if !self.on_close {
            self.finish
                .succeed(String::from_utf8_lossy(&self.got).into_owned());
        }
        Ok(())
    }

    fn connection_lost(&mut self, _: Failure) {
        if self.on_close {
            self.finish
                .succeed(String::from_utf8_lossy(&self.got).into_owned());
        }
    }
}

fn no_result(f: &Failure) -> &NoResult {
    f.downcast_ref::<NoResult>()
        .unwrap_or_else(|| panic!("not a NoResult: {f}"))
}

fn nothing_unhandled() {
    assert!(
        logged("Unhandled error in Deferred").is_empty(),
        "{:?}",
        logged("Unhandled")
    );
}

#[test]
fn the_protocols_result_is_delivered() {
    capture_logs();
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (_port, addr) = serve(&reactor, Serve::Shout);
        let d = reactor.connect_for(addr, Ask::new(b"hello"), WAIT);
        assert_eq!(d.wait().unwrap(), "HELLO");
        nothing_unhandled();
    });
}

#[test]
fn a_refused_connection_fails_once_and_cleanly() {
    capture_logs();
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let d = reactor.connect_for(free, Ask::new(b"x"), WAIT);
        let f = d.wait().unwrap_err();
        assert!(
            matches!(f.downcast_ref(), Some(ConnectionError::Refused(_))),
            "{f}"
        );
        // Dropping everything (the connect attempt's own Deferred included) logs nothing.
        drop(reactor);
        nothing_unhandled();
    });
}

#[test]
fn a_connection_closed_before_a_result_fails_naming_the_reason() {
    capture_logs();
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (_port, addr) = serve(&reactor, Serve::Close);
        let f = reactor
            .connect_for(addr, Ask::new(b"x"), WAIT)
            .wait()
            .unwrap_err();
        let e = no_result(&f);
        assert_eq!(e.peer(), &Address::Inet(addr));
        let reason = e.reason().downcast_ref::<ConnectionError>().unwrap();
        assert!(reason.is_clean(), "{reason}");
        assert_eq!(
            f.to_string(),
            format!("connection to {addr} ended before a result: connection closed cleanly")
        );
        nothing_unhandled();
    });
}

#[test]
fn a_protocol_error_before_a_result_is_the_reason() {
    capture_logs();
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (_port, addr) = serve(&reactor, Serve::Shout);
        // The server shouts "!" back, which `Ask` finds wrong.
        let f = reactor
            .connect_for(addr, Ask::new(b"!"), WAIT)
            .wait()
            .unwrap_err();
        assert_eq!(no_result(&f).reason().to_string(), "marker-bad-reply");
    });
}

#[test]
fn a_result_given_as_the_connection_ends_is_delivered() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (_port, addr) = serve(&reactor, Serve::SendAndClose);
        let make = |finish| Ask {
            question: b"",
            finish,
            on_close: true,
            got: Vec::new(),
        };
        assert_eq!(
            reactor.connect_for(addr, make, WAIT).wait().unwrap(),
            "partial"
        );
    });
}

#[test]
fn a_result_after_the_connection_failed_is_ignored() {
    capture_logs();
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (_port, addr) = serve(&reactor, Serve::Close);
        let kept: Rc<RefCell<Option<Finish<String>>>> = Rc::default();
        let k = kept.clone();
        let make = move |finish: Finish<String>| {
            *k.borrow_mut() = Some(finish.clone());
            Ask {
                question: b"",
                finish,
                on_close: false,
                got: Vec::new(),
            }
        };
        let f = reactor.connect_for(addr, make, WAIT).wait().unwrap_err();
        assert!(f.is::<NoResult>());
        let late = kept.borrow_mut().take().unwrap();
        assert!(late.is_done());
        assert!(!late.succeed("too late".into()));
        assert!(!late.fail(Failure::msg("too late")));
        nothing_unhandled();
    });
}

#[test]
fn cancelling_the_result_aborts_the_connection() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (_port, addr) = serve(&reactor, Serve::Silent);
        let kept: Rc<RefCell<Option<Finish<String>>>> = Rc::default();
        let lost: Rc<RefCell<Option<String>>> = Rc::default();
        let (k, l) = (kept.clone(), lost.clone());
        /// Never answers; records why its connection ended.
        struct Mute(Rc<RefCell<Option<String>>>);
        impl Protocol for Mute {
            fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> {
                Ok(())
            }
            fn connection_lost(&mut self, reason: Failure) {
                *self.0.borrow_mut() = Some(reason.to_string());
            }
        }
        let d = reactor.connect_for(
            addr,
            move |finish: Finish<String>| {
                *k.borrow_mut() = Some(finish);
                Mute(l)
            },
            WAIT,
        );
        // Connected once the protocol is built and its Finish handed out.
        support::net::run_until(&reactor, WAIT, "connected", || kept.borrow().is_some());
        d.cancel();
        support::net::run_until(&reactor, WAIT, "aborted", || lost.borrow().is_some());
        assert_eq!(lost.borrow().as_deref(), Some("connection aborted"));
        assert!(d.wait().unwrap_err().is::<Cancelled>());
        assert!(!kept.borrow().as_ref().unwrap().succeed("late".into()));
    });
}
