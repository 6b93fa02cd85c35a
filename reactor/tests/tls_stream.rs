//! `net::TlsStream`: TLS for spawned tasks, over 127.0.0.1, against the reactor's own
//! `TcpListener` and against a plain blocking TCP peer.

mod support;

use std::io::Write as _;
use std::sync::Arc;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::net::{TcpListener, TlsStream};
use ropewalk_reactor::tls::{rustls, TlsClientBuilder, TlsError, TlsServerBuilder};
use ropewalk_reactor::Reactor;
use support::tls::{client, pki, TestCa};

/// A task serving one TLS connection on a fresh listener with `serve`; its address.
fn serve_one<F, Fut>(
    reactor: &Reactor,
    config: Arc<rustls::ServerConfig>,
    serve: F,
) -> std::net::SocketAddr
where
    F: FnOnce(TlsStream) -> Fut + 'static,
    Fut: std::future::Future<Output = Result<(), Failure>> + 'static,
{
    let listener = TcpListener::bind(reactor, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    reactor.spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let tls = TlsStream::accept(tcp, config).await?;
        serve(tls).await
    });
    addr
}

/// 1 MB goes up; the client's close sends close_notify, which the server reads as EOF
/// (0), and the server's answer (the byte count and a checksum) comes back, then its
/// close_notify, read as a clean EOF.
#[test]
fn a_megabyte_up_then_the_answer_and_clean_closes() {
    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let addr = serve_one(&reactor, server, |mut tls| async move {
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await?;
        let sum: u64 = got.iter().map(|&b| u64::from(b)).sum();
        tls.write_all(format!("{} {sum}", got.len()).as_bytes())
            .await?;
        tls.close().await?;
        Ok(())
    });
    let r = reactor.clone();
    let config = client(&ca);
    let d = reactor.spawn(async move {
        let mut tls = TlsStream::connect(&r, addr, "localhost", config).await?;
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        tls.write_all(&data).await?;
        tls.close().await?;
        let mut answer = String::new();
        tls.read_to_string(&mut answer).await?;
        let sum: u64 = data.iter().map(|&b| u64::from(b)).sum();
        Ok::<_, Failure>((answer, format!("1000000 {sum}")))
    });
    let (answer, expected) = d.wait().unwrap();
    assert_eq!(answer, expected);
}

/// A server whose certificate the client does not trust: the connect fails with
/// `InvalidData` carrying `TlsError::UnknownIssuer`.
#[test]
fn an_untrusted_server_is_refused_with_the_reason() {
    let reactor = Reactor::new().unwrap();
    let (_ca, server) = pki();
    let addr = serve_one(&reactor, server, |_| async { Ok(()) });
    let r = reactor.clone();
    let config = client(&TestCa::new());
    let d = reactor.spawn(async move {
        TlsStream::connect(&r, addr, "localhost", config)
            .await
            .map(drop)
            .map_err(|e| {
                (
                    e.kind(),
                    format!(
                        "{:?}",
                        e.get_ref().and_then(|i| i.downcast_ref::<TlsError>())
                    ),
                )
            })
            .err()
            .ok_or_else(|| Failure::from(std::io::Error::other("the handshake succeeded")))
    });
    let (kind, reason) = d.wait().unwrap();
    assert_eq!(kind, std::io::ErrorKind::InvalidData);
    assert_eq!(reason, "Some(UnknownIssuer)");
}

/// A peer that closes its socket without close_notify after some data: the data is
/// read, then `UnexpectedEof` (a possible truncation), not a clean EOF.
#[test]
fn a_close_without_close_notify_is_unexpected_eof() {
    let (ca, server) = pki();
    let raw = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = raw.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut sock, _) = raw.accept().unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut tls = rustls::ServerConnection::new(server).unwrap();
        while tls.is_handshaking() {
            tls.complete_io(&mut sock).unwrap();
        }
        tls.writer().write_all(b"partial").unwrap();
        while tls.wants_write() {
            tls.write_tls(&mut sock).unwrap();
        }
        // Dropped: the socket closes, no close_notify.
    });
    let reactor = Reactor::new().unwrap();
    let r = reactor.clone();
    let config = client(&ca);
    let d = reactor.spawn(async move {
        let mut tls = TlsStream::connect(&r, addr, "localhost", config).await?;
        let mut got = vec![0u8; 7];
        tls.read_exact(&mut got).await?;
        let end = tls.read(&mut [0u8; 16]).await;
        Ok::<_, Failure>((got, end.map_err(|e| e.kind())))
    });
    let (got, end) = d.wait().unwrap();
    peer.join().unwrap();
    assert_eq!(got, b"partial");
    assert_eq!(end, Err(std::io::ErrorKind::UnexpectedEof));
}

/// Both ends read what was negotiated: ALPN, SNI on the server, the chain on the client.
#[test]
fn tls_info_on_both_ends() {
    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new();
    let leaf = ca.leaf(&["localhost"]);
    let server = TlsServerBuilder::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())
        .unwrap()
        .alpn(&[b"h2", b"http/1.1"])
        .build()
        .unwrap();
    let config = TlsClientBuilder::new()
        .without_default_roots()
        .add_root_pem(ca.pem().as_bytes())
        .unwrap()
        .alpn(&[b"h2"])
        .build()
        .unwrap();
    let seen = std::rc::Rc::new(std::cell::RefCell::new(None));
    let s = seen.clone();
    let addr = serve_one(&reactor, server, move |mut tls| async move {
        *s.borrow_mut() = Some(tls.tls_info());
        tls.write_all(b"x").await?;
        tls.close().await?;
        Ok(())
    });
    let r = reactor.clone();
    let d = reactor.spawn(async move {
        let mut tls = TlsStream::connect(&r, addr, "localhost", config).await?;
        let mut x = Vec::new();
        tls.read_to_end(&mut x).await?;
        Ok::<_, Failure>(tls.tls_info())
    });
    let on_client = d.wait().unwrap();
    let on_server = seen.borrow().clone().expect("the server task ran");
    assert_eq!(on_client.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(on_server.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(on_server.server_name.as_deref(), Some("localhost"));
    assert_eq!(on_client.peer_certificates.len(), 1);
    assert!(on_server.peer_certificates.is_empty());
}

/// What the server's accept gave: the number of client certificates, or the error kind.
type Outcome = std::rc::Rc<std::cell::RefCell<Option<Result<usize, std::io::ErrorKind>>>>;

/// A server requiring client certificates from `client_ca`, serving one connection: it
/// sends back the number of certificates the client presented; its CA and the outcome.
fn mtls_server(reactor: &Reactor, client_ca: &TestCa) -> (std::net::SocketAddr, TestCa, Outcome) {
    let ca = TestCa::new();
    let leaf = ca.leaf(&["localhost"]);
    let server = TlsServerBuilder::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())
        .unwrap()
        .require_client_certificates(client_ca.pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let listener = TcpListener::bind(reactor, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let outcome = std::rc::Rc::new(std::cell::RefCell::new(None));
    let o = outcome.clone();
    reactor.spawn(async move {
        let (tcp, _) = listener.accept().await?;
        match TlsStream::accept(tcp, server).await {
            Ok(mut tls) => {
                let n = tls.tls_info().peer_certificates.len();
                *o.borrow_mut() = Some(Ok(n));
                tls.write_all(n.to_string().as_bytes()).await?;
                tls.close().await?;
            }
            Err(e) => *o.borrow_mut() = Some(Err(e.kind())),
        }
        Ok::<_, Failure>(())
    });
    (addr, ca, outcome)
}

/// The client's view of an mTLS exchange: what it read, or the error kind.
fn mtls_client(
    reactor: &Reactor,
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<String, std::io::ErrorKind> {
    let r = reactor.clone();
    let d = reactor.spawn(async move {
        let got = async {
            let mut tls = TlsStream::connect(&r, addr, "localhost", config).await?;
            let mut s = String::new();
            tls.read_to_string(&mut s).await?;
            Ok::<_, std::io::Error>(s)
        }
        .await;
        Ok::<_, Failure>(got.map_err(|e| e.kind()))
    });
    d.wait().unwrap()
}

/// mTLS: a client presenting a certificate from the required CA is let in, and the
/// server sees its chain; without one, or with another CA's, the server's handshake
/// fails and the client reads nothing.
#[test]
fn client_certificates_required_from_a_ca() {
    let clients = TestCa::new();
    let me = clients.leaf(&["client.example"]);
    for (who, identity) in [
        ("from the CA", Some(me.clone())),
        ("none", None),
        (
            "another CA's",
            Some(TestCa::new().leaf(&["client.example"])),
        ),
    ] {
        let reactor = Reactor::new().unwrap();
        let (addr, server_ca, outcome) = mtls_server(&reactor, &clients);
        let mut b = TlsClientBuilder::new()
            .without_default_roots()
            .add_root_pem(server_ca.pem().as_bytes())
            .unwrap();
        if let Some(leaf) = &identity {
            b = b
                .client_certificate(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())
                .unwrap();
        }
        let got = mtls_client(&reactor, addr, b.build().unwrap());
        support::net::run_until(&reactor, std::time::Duration::from_secs(20), who, || {
            outcome.borrow().is_some()
        });
        let server = outcome.borrow_mut().take().unwrap();
        if who == "from the CA" {
            assert_eq!(server, Ok(1), "{who}");
            assert_eq!(got, Ok("1".to_string()), "{who}");
        } else {
            assert_eq!(server, Err(std::io::ErrorKind::InvalidData), "{who}");
            assert!(got.is_err(), "{who}: the client read {got:?}");
        }
    }
}
