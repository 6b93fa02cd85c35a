//! `start_tls` on live connections (STARTTLS): clear bytes first, then a handshake on the
//! same connection and transport, then encrypted bytes both ways; a failed handshake
//! reaches both the Deferred and `connection_lost`; a plain TCP connection refuses.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::tls::{StartTls, StartTlsFactory, TlsError};
use ropewalk_reactor::{Address, ListenOptions, Reactor};
use support::net::{run_until, Events, Probe};
use support::tls::{client, pki, TestCa};

const WAIT: Duration = Duration::from_secs(20);

type Outcome = Rc<RefCell<Option<Result<(), Failure>>>>;

/// A server that answers `hello\n` in clear and switches to TLS; then upper-cases.
/// Returns its address, its connections' events and the outcome of its `start_tls`.
fn starttls_server(
    reactor: &Reactor,
    config: Arc<rustls::ServerConfig>,
) -> (std::net::SocketAddr, Rc<Events>, Outcome) {
    let ev = Events::new();
    let outcome: Outcome = Rc::default();
    let (e, o) = (ev.clone(), outcome.clone());
    let factory = StartTlsFactory::new(reactor, move |_: &Address| {
        let o = o.clone();
        let config = config.clone();
        Some(Probe::new(&e).on_data(move |t, data| {
            if data == b"hello\n" {
                t.write(b"ok, starttls\n");
                let o = o.clone();
                t.start_tls(StartTls::server(config.clone()))
                    .add_both(move |r| {
                        *o.borrow_mut() = Some(r.map(|_| ()));
                        Ok(())
                    });
            } else {
                t.write(&data.to_ascii_uppercase());
            }
            Ok(())
        }))
    });
    let port = reactor
        .listen_tcp_factory(
            "127.0.0.1:0".parse().unwrap(),
            factory,
            &ListenOptions::default(),
        )
        .unwrap();
    (port.local_addr().inet().unwrap(), ev, outcome)
}

/// A client that says `hello\n` in clear, and on the answer starts TLS as `name` and at
/// once writes `secret\n` (held until the handshake is done).
fn starttls_client(
    reactor: &Reactor,
    addr: std::net::SocketAddr,
    ca: &TestCa,
    name: &'static str,
) -> (Rc<Events>, Outcome) {
    let ev = Events::new();
    let outcome: Outcome = Rc::default();
    let (e, o) = (ev.clone(), outcome.clone());
    let config = client(ca);
    let factory = StartTlsFactory::new(reactor, move |_: &Address| {
        let o = o.clone();
        let config = config.clone();
        Some(
            Probe::new(&e)
                .on_made(|t| t.write(b"hello\n"))
                .on_data(move |t, data| {
                    if data == b"ok, starttls\n" {
                        let o = o.clone();
                        t.start_tls(StartTls::client(config.clone(), name))
                            .add_both(move |r| {
                                *o.borrow_mut() = Some(r.map(|_| ()));
                                Ok(())
                            });
                        t.write(b"secret\n");
                    } else {
                        t.lose_connection();
                    }
                    Ok(())
                }),
        )
    });
    reactor
        .connect_tcp_factory(addr, factory, Duration::from_secs(5))
        .wait()
        .unwrap();
    (ev, outcome)
}

use ropewalk_reactor::tls::rustls;
use std::sync::Arc;

#[test]
fn start_tls_switches_a_live_connection() {
    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let (addr, srv, srv_started) = starttls_server(&reactor, server);
    let (cli, cli_started) = starttls_client(&reactor, addr, &ca, "localhost");
    run_until(&reactor, WAIT, "both closed", || {
        cli.lost_count() == 1 && srv.lost_count() == 1
    });
    assert_eq!(&srv.data.borrow()[..], b"hello\nsecret\n");
    assert_eq!(&cli.data.borrow()[..], b"ok, starttls\nSECRET\n");
    assert!(matches!(*cli_started.borrow(), Some(Ok(()))));
    assert!(matches!(*srv_started.borrow(), Some(Ok(()))));
    assert_eq!(cli.reason_kind(), "Done");
    assert_eq!(srv.reason_kind(), "Done");
    assert_eq!(srv.eofs.get(), 1, "the client's close_notify");
    assert_eq!(
        (cli.made.get(), srv.made.get()),
        (1, 1),
        "made once, in clear"
    );
}

#[test]
fn start_tls_handshake_failure_reaches_the_deferred_and_the_protocol() {
    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let (addr, srv, _) = starttls_server(&reactor, server);
    let (cli, cli_started) = starttls_client(&reactor, addr, &ca, "elsewhere.example");
    run_until(&reactor, WAIT, "both closed", || {
        cli.lost_count() == 1 && srv.lost_count() == 1
    });
    let outcome = cli_started.borrow_mut().take().expect("the Deferred fired");
    let f = outcome.unwrap_err();
    assert!(
        matches!(f.downcast_ref(), Some(TlsError::NameMismatch)),
        "{f}"
    );
    let reason = cli.reason();
    assert!(
        matches!(reason.downcast_ref(), Some(TlsError::NameMismatch)),
        "{reason}"
    );
    assert_eq!(&cli.data.borrow()[..], b"ok, starttls\n", "no SECRET");
    assert_eq!(&srv.data.borrow()[..], b"hello\n", "secret never sent");
}

#[test]
fn start_tls_on_a_plain_tcp_connection_is_refused() {
    let reactor = Reactor::new().unwrap();
    let ev = Events::new();
    let e = ev.clone();
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
            Some(Probe::new(&e))
        })
        .unwrap();
    let ca = TestCa::new();
    let cli = Events::new();
    let c = cli.clone();
    reactor
        .connect_tcp(
            port.local_addr().inet().unwrap(),
            move |_: &Address| Some(Probe::new(&c)),
            Duration::from_secs(5),
        )
        .wait()
        .unwrap();
    let f = cli
        .transport()
        .start_tls(StartTls::client(client(&ca), "localhost"))
        .wait()
        .unwrap_err();
    assert!(matches!(
        f.downcast_ref(),
        Some(TlsError::StartTlsUnsupported)
    ));
    // Still a working plain connection.
    cli.transport().write(b"plain");
    run_until(&reactor, WAIT, "plain bytes", || ev.received() == 5);
}
