//! HTTPS through ropewalk's own client and server: the `HttpServer` over `listen_tls`, the
//! `Client` fetching `https://` URLs through its pool (kept alive, apart from plain `http`
//! to the same port), refusing an untrusted certificate and a wrong name, and following a
//! redirect from `https` to `http` as a change of origin; static files (whole and by range)
//! over HTTPS; HTTPS from a group of reactors and on a socket made elsewhere.

use std::sync::Arc;

use ropewalk_protocols::http::{
    Client, ClientConfig, ClientError, Headers, HttpServer, Request, Response, Site, StaticFiles,
};
use ropewalk_reactor::tls::{rustls, TlsClientBuilder, TlsServerBuilder};
use ropewalk_reactor::{AcceptQueue, GroupListener, Reactor, ReactorGroup};
use ropewalk_testkit::pki::TestCa;

fn trusting(ca: &TestCa) -> Arc<rustls::ClientConfig> {
    TlsClientBuilder::new()
        .without_default_roots()
        .add_root_pem(ca.pem().as_bytes())
        .unwrap()
        .alpn(&[b"http/1.1"])
        .build()
        .unwrap()
}

fn client(reactor: &Reactor, ca: &TestCa) -> Client {
    let config = ClientConfig {
        tls: Some(trusting(ca)),
        follow_redirects: Some(3),
        ..ClientConfig::default()
    };
    Client::with_config(reactor, config)
}

/// An HTTPS server and a plain one, both answering with their scheme and the
/// `Authorization` they saw; `/away` on the HTTPS one redirects to the plain one.
fn servers(reactor: &Reactor, ca: &TestCa) -> (u16, u16) {
    let plain = HttpServer::new(reactor, |req: Request| {
        let auth = req
            .headers()
            .get("authorization")
            .unwrap_or("-")
            .to_string();
        Ok(Response::text(format!("http {auth}")))
    });
    let plain_port = plain
        .listen(reactor, "127.0.0.1:0".parse().unwrap())
        .unwrap()
        .local_addr()
        .inet()
        .unwrap()
        .port();
    let leaf = ca.leaf(&["localhost"]);
    let config = TlsServerBuilder::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())
        .unwrap()
        .alpn(&[b"http/1.1"])
        .build()
        .unwrap();
    let secure = HttpServer::new(reactor, move |req: Request| {
        if req.path() == "/away" {
            return Ok(Response::text("moved")
                .with_status(302)
                .with_header("Location", format!("http://localhost:{plain_port}/")));
        }
        let auth = req
            .headers()
            .get("authorization")
            .unwrap_or("-")
            .to_string();
        Ok(Response::text(format!("https {auth}")))
    });
    let secure_port = secure
        .listen_tls(reactor, "127.0.0.1:0".parse().unwrap(), config)
        .unwrap()
        .local_addr()
        .inet()
        .unwrap()
        .port();
    (secure_port, plain_port)
}

#[test]
fn client_fetches_https_and_keeps_the_connection() {
    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new();
    let (secure, _plain) = servers(&reactor, &ca);
    let client = client(&reactor, &ca);
    let url = format!("https://localhost:{secure}/");
    for _ in 0..3 {
        let resp = client.get(&url).wait().unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text(), "https -");
    }
    let stats = client.pool_stats();
    assert_eq!(
        (stats.open, stats.idle),
        (1, 1),
        "one TLS connection, reused"
    );
    // Plain HTTP to the TLS port is another pool entry, and gets no answer it can parse.
    let f = client
        .get(&format!("http://localhost:{secure}/"))
        .wait()
        .unwrap_err();
    assert!(f.downcast_ref::<ClientError>().is_some(), "{f}");
    assert_eq!(
        client.pool_stats().idle,
        1,
        "the TLS connection is still there"
    );
}

#[test]
fn client_refuses_an_untrusted_certificate_and_a_wrong_name() {
    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new();
    let (secure, _plain) = servers(&reactor, &ca);
    let stranger = client(&reactor, &TestCa::new());
    let f = stranger
        .get(&format!("https://localhost:{secure}/"))
        .wait()
        .unwrap_err();
    let e = f.downcast_ref::<ClientError>().expect("a ClientError");
    assert!(e.is_connect(), "{f}");
    assert!(format!("{f}").contains("unknown issuer"), "{f}");

    // The certificate names localhost, not 127.0.0.1.
    let f = client(&reactor, &ca)
        .get(&format!("https://127.0.0.1:{secure}/"))
        .wait()
        .unwrap_err();
    assert!(format!("{f}").contains("does not match"), "{f}");
}

#[test]
fn redirect_from_https_to_http_is_another_origin() {
    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new();
    let (secure, _plain) = servers(&reactor, &ca);
    let client = client(&reactor, &ca);
    let mut headers = Headers::default();
    headers.insert("Authorization", "Bearer secret");
    let resp = client
        .request(
            "GET",
            &format!("https://localhost:{secure}/away"),
            headers,
            Vec::new(),
        )
        .wait()
        .unwrap();
    assert_eq!(resp.text(), "http -", "credentials do not follow to http");
}

/// A server configuration for `localhost`, signed by `ca`.
fn server_config(ca: &TestCa) -> Arc<rustls::ServerConfig> {
    let leaf = ca.leaf(&["localhost"]);
    TlsServerBuilder::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())
        .unwrap()
        .alpn(&[b"http/1.1"])
        .build()
        .unwrap()
}

/// A static file over HTTPS (`send_file`, which TLS reads and encrypts as the connection
/// drains): whole, then a range of it as 206, byte-exact.
#[test]
fn static_file_and_a_range_over_https() {
    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new();
    let dir = std::env::temp_dir().join(format!("ropewalk-https-static-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 7u32)
        .map(|i| (i.wrapping_mul(31) % 251) as u8)
        .collect();
    std::fs::write(dir.join("big.bin"), &data).unwrap();
    let files = StaticFiles::new(&reactor, &dir)
        .unwrap()
        .with_prefix("/static/");
    let server = HttpServer::new(&reactor, Site::new().mount("/static/", files));
    let port = server
        .listen_tls(&reactor, "127.0.0.1:0".parse().unwrap(), server_config(&ca))
        .unwrap()
        .local_addr()
        .inet()
        .unwrap()
        .port();
    let client = client(&reactor, &ca);
    let url = format!("https://localhost:{port}/static/big.bin");

    let full = client.get(&url).wait().unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.body().len(), data.len());
    assert!(full.body() == &data[..], "the file arrived altered");

    let mut headers = Headers::new();
    headers.append("Range", "bytes=1000000-2999999");
    let part = client
        .request("GET", &url, headers, Vec::new())
        .wait()
        .unwrap();
    assert_eq!(part.status(), 206);
    let want = format!("bytes 1000000-2999999/{}", data.len());
    assert_eq!(part.headers().get("content-range"), Some(want.as_str()));
    assert!(
        part.body() == &data[1_000_000..3_000_000],
        "the range arrived altered"
    );
    assert_eq!(
        client.pool_stats().open,
        1,
        "both on one kept-alive connection"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `listen_group_tls`: two reactors, each with its own server and accept queue, answer
/// HTTPS with one configuration; both serve (40 connections all on one of two queues has
/// a probability of 2^-39).
#[test]
fn https_from_a_group_of_two_reactors() {
    let ca = TestCa::new();
    let config = server_config(&ca);
    let listener =
        GroupListener::bind("127.0.0.1:0".parse().unwrap(), AcceptQueue::PerReactor).unwrap();
    let port = listener.local_addr().port();
    let group = ReactorGroup::start(2, move |reactor, index| {
        let server = HttpServer::new(reactor, move |_: Request| {
            Ok(Response::text(format!("reactor {index}")))
        });
        server.listen_group_tls(reactor, &listener, config.clone())?;
        Ok(())
    })
    .unwrap();
    let reactor = Reactor::new().unwrap();
    let url = format!("https://localhost:{port}/");
    let mut seen = [0usize; 2];
    for _ in 0..40 {
        // A client each: a connection each (a pool would keep one alive).
        let resp = client(&reactor, &ca).get(&url).wait().unwrap();
        assert_eq!(resp.status(), 200);
        match resp.text().as_str() {
            "reactor 0" => seen[0] += 1,
            "reactor 1" => seen[1] += 1,
            other => panic!("{other}"),
        }
    }
    assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
    group.stop().unwrap();
}

/// `listen_on_tls`: HTTPS on a listening socket bound elsewhere (as one inherited from
/// systemd would be).
#[test]
fn https_on_a_socket_made_elsewhere() {
    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(&reactor, |_: Request| Ok(Response::text("adopted")));
    server
        .listen_on_tls(&reactor, listener, server_config(&ca))
        .unwrap();
    let resp = client(&reactor, &ca)
        .get(&format!("https://localhost:{port}/"))
        .wait()
        .unwrap();
    assert_eq!(resp.text(), "adopted");
}

/// `Request::tls_info`: a handler sees what its connection's TLS negotiated (version, SNI,
/// ALPN, the client's certificate, resumption); a second client with the same
/// configuration resumes the session; plain HTTP has none.
#[test]
fn a_handler_sees_its_connections_tls() {
    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new();
    let clients_ca = TestCa::new();
    let leaf = ca.leaf(&["localhost"]);
    let config = TlsServerBuilder::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())
        .unwrap()
        .alpn(&[b"http/1.1"])
        .require_client_certificates(clients_ca.pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let handler = |req: Request| {
        let text = match req.tls_info() {
            None => "plain".to_string(),
            Some(tls) => format!(
                "{:?} sni={} alpn={} client-certs={} resumed={}",
                tls.protocol_version,
                tls.server_name.as_deref().unwrap_or("-"),
                String::from_utf8_lossy(tls.alpn.as_deref().unwrap_or(b"-")),
                tls.peer_certificates.len(),
                tls.resumed
            ),
        };
        Ok(Response::text(text))
    };
    let server = HttpServer::new(&reactor, handler);
    let secure = server
        .listen_tls(&reactor, "127.0.0.1:0".parse().unwrap(), config)
        .unwrap()
        .local_addr()
        .inet()
        .unwrap()
        .port();
    let plain = server
        .listen(&reactor, "127.0.0.1:0".parse().unwrap())
        .unwrap()
        .local_addr()
        .inet()
        .unwrap()
        .port();
    let me = clients_ca.leaf(&["client.example"]);
    let tls = TlsClientBuilder::new()
        .without_default_roots()
        .add_root_pem(ca.pem().as_bytes())
        .unwrap()
        .alpn(&[b"http/1.1"])
        .client_certificate(me.cert_pem.as_bytes(), me.key_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let fetch = |url: &str| {
        // A client each: a connection each, sharing the configuration's session store.
        let config = ClientConfig {
            tls: Some(tls.clone()),
            ..ClientConfig::default()
        };
        Client::with_config(&reactor, config)
            .get(url)
            .wait()
            .unwrap()
            .text()
    };
    let url = format!("https://localhost:{secure}/");
    assert_eq!(
        fetch(&url),
        "TLSv1_3 sni=localhost alpn=http/1.1 client-certs=1 resumed=false"
    );
    assert_eq!(
        fetch(&url),
        "TLSv1_3 sni=localhost alpn=http/1.1 client-certs=1 resumed=true"
    );
    assert_eq!(fetch(&format!("http://localhost:{plain}/")), "plain");
}
