//! TLS over Unix-domain sockets: `listen_tls_unix` and `connect_tls_unix` echo both ways
//! and close cleanly; the handshake verifies the name as over TCP; the socket file goes
//! when the port stops listening.

mod support;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use ropewalk_reactor::tls::{TlsError, TlsOptions};
use ropewalk_reactor::{Address, Reactor};
use support::net::{run_until, Events, Probe};
use support::tls::{client, pki};

const WAIT: Duration = Duration::from_secs(20);

fn socket_path(name: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("ropewalk-tls-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
fn echo_over_a_unix_socket_then_clean_close() {
    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let path = socket_path("echo");
    let conns = Rc::new(RefCell::new(Vec::<Rc<Events>>::new()));
    let c = conns.clone();
    let port = reactor
        .listen_tls_unix(
            &path,
            move |_: &Address| {
                let ev = Events::new();
                c.borrow_mut().push(ev.clone());
                Some(Probe::new(&ev).echo())
            },
            server,
        )
        .unwrap();
    let ev = Events::new();
    let e = ev.clone();
    let made = RefCell::new(Some(()));
    reactor
        .connect_tls_unix(
            &path,
            "localhost",
            move |_: &Address| made.borrow_mut().take().map(|()| Probe::new(&e)),
            client(&ca),
        )
        .wait()
        .unwrap();
    assert_eq!(ev.made.get(), 1);
    let t = ev.transport();
    assert!(t.tls_info().is_some(), "the client's transport is TLS");
    assert!(matches!(t.peer_addr(), Address::Unix(Some(p)) if p == path));
    t.write(b"hello over a unix socket\n");
    run_until(&reactor, WAIT, "echo", || ev.received() == 25);
    assert_eq!(&ev.data.borrow()[..], b"hello over a unix socket\n");
    let srv = conns.borrow()[0].clone();
    assert_eq!(
        srv.transport().tls_info().unwrap().server_name.as_deref(),
        Some("localhost")
    );

    t.lose_connection();
    run_until(&reactor, WAIT, "both ends closed", || {
        ev.lost_count() == 1 && srv.lost_count() == 1
    });
    assert_eq!(ev.reason_kind(), "Done");
    assert_eq!(srv.reason_kind(), "Done");
    assert_eq!(srv.eofs.get(), 1, "close_notify is the peer's EOF");
    port.stop_listening();
    assert!(!path.exists());
}

#[test]
fn a_wrong_name_over_a_unix_socket_is_refused() {
    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let path = socket_path("name");
    let opts = TlsOptions::default();
    let port = reactor
        .listen_tls_unix_factory(
            &path,
            |_: &Address| Some(Probe::new(&Events::new())),
            server,
            &opts,
        )
        .unwrap();
    let f = reactor
        .connect_tls_unix_factory(
            &path,
            "elsewhere.example",
            |_: &Address| Some(Probe::new(&Events::new())),
            client(&ca),
            &opts,
        )
        .wait()
        .unwrap_err();
    assert!(
        matches!(f.downcast_ref(), Some(TlsError::NameMismatch)),
        "{f}"
    );
    port.stop_listening();
}
