//! The HTTP client against our own server on loopback, and against a raw `TcpListener`
//! thread that sends hand-written responses. Every test is bounded by the client's
//! timeout (a few seconds at most) and never sleeps.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use ropewalk_deferred::Failure;
use ropewalk_protocols::http::{
    Client, ClientConfig, ClientError, ClientResponse, Headers, HttpServer, Request, Response, Site,
};
use ropewalk_reactor::{ListeningPort, Reactor};

fn config() -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    }
}

fn serve(reactor: &Reactor, site: Site) -> (ListeningPort, String) {
    let server = HttpServer::new(reactor, site);
    let port = server
        .listen(reactor, "127.0.0.1:0".parse().unwrap())
        .unwrap();
    let base = format!("http://{}", port.local_addr());
    (port, base)
}

fn client_error(f: &Failure) -> &ClientError {
    f.downcast_ref::<ClientError>()
        .unwrap_or_else(|| panic!("not a ClientError: {f}"))
}

/// A one-connection server: reads the request head, sends `chunks` one write each, then
/// closes (or, with `hold`, waits for the client to close first). Gives back the request
/// head it read.
fn raw_server(chunks: Vec<Vec<u8>>, hold: bool) -> (SocketAddr, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match sock.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
        for chunk in chunks {
            if sock.write_all(&chunk).is_err() {
                break;
            }
            let _ = sock.flush();
        }
        if hold {
            // Until the client gives up and closes (or the read timeout passes).
            let mut rest = [0u8; 1024];
            while let Ok(n) = sock.read(&mut rest) {
                if n == 0 {
                    break;
                }
            }
        }
        String::from_utf8_lossy(&head).into_owned()
    });
    (addr, handle)
}

fn raw_get(chunks: &[&[u8]]) -> (Result<ClientResponse, Failure>, String) {
    raw_get_with(chunks, false, config())
}

fn raw_get_with(
    chunks: &[&[u8]],
    hold: bool,
    config: ClientConfig,
) -> (Result<ClientResponse, Failure>, String) {
    let reactor = Reactor::new().unwrap();
    let (addr, handle) = raw_server(chunks.iter().map(|c| c.to_vec()).collect(), hold);
    let result = Client::with_config(&reactor, config)
        .get(&format!("http://{addr}/path?q=1"))
        .wait();
    let head = handle.join().unwrap();
    (result, head)
}

#[test]
fn get_and_post_against_our_server() {
    let reactor = Reactor::new().unwrap();
    let site = Site::new()
        .get("/", |_: Request| Ok(Response::text("Hello, World!")))
        .post("/echo", |r: Request| Ok(Response::bytes(r.into_body())))
        .get("/headers", |r: Request| {
            Ok(Response::text(format!(
                "{}|{}|{}",
                r.headers().get("host").unwrap_or(""),
                r.headers().get("connection").unwrap_or(""),
                r.query().unwrap_or("")
            )))
        });
    let (_port, base) = serve(&reactor, site);
    let client = Client::with_config(&reactor, config());

    let resp = client.get(&format!("{base}/")).wait().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.reason(), "OK");
    assert!(resp.is_success());
    assert_eq!(
        resp.headers().get("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(resp.text(), "Hello, World!");

    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let resp = client
        .post(&format!("{base}/echo"), body.clone())
        .wait()
        .unwrap();
    assert_eq!(resp.body(), &body[..]);

    let resp = client.post(&format!("{base}/echo"), vec![]).wait().unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.body().is_empty());

    let resp = client.get(&format!("{base}/headers?a=b")).wait().unwrap();
    let host = base.trim_start_matches("http://");
    assert_eq!(resp.text(), format!("{host}||a=b"));

    let resp = client.get(&format!("{base}/missing")).wait().unwrap();
    assert_eq!(resp.status(), 404);
    assert!(!resp.is_success());
}

#[test]
fn head_204_and_streamed_bodies_against_our_server() {
    let reactor = Reactor::new().unwrap();
    let site = Site::new()
        .get("/text", |_: Request| Ok(Response::text("twelve bytes")))
        .get("/empty", |_: Request| Ok(Response::new(204)))
        .get("/stream", |_: Request| {
            let (resp, w) = Response::streaming(200);
            for i in 0..100 {
                w.write(format!("line {i}\n").as_bytes());
            }
            w.finish();
            Ok(resp)
        });
    let (_port, base) = serve(&reactor, site);
    let client = Client::with_config(&reactor, config());

    let resp = client
        .request("HEAD", &format!("{base}/text"), Headers::new(), vec![])
        .wait()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("content-length"), Some("12"));
    assert!(resp.body().is_empty());

    let resp = client.get(&format!("{base}/empty")).wait().unwrap();
    assert_eq!(resp.status(), 204);
    assert!(resp.body().is_empty());

    let resp = client.get(&format!("{base}/stream")).wait().unwrap();
    assert_eq!(resp.headers().get("transfer-encoding"), Some("chunked"));
    let expected: String = (0..100).map(|i| format!("line {i}\n")).collect();
    assert_eq!(resp.text(), expected);
}

#[test]
fn many_requests_at_once_on_one_reactor() {
    let reactor = Reactor::new().unwrap();
    let site = Site::new().get("/n", |r: Request| {
        Ok(Response::text(r.query_param("i").unwrap_or_default()))
    });
    let (_port, base) = serve(&reactor, site);
    let client = Client::with_config(&reactor, config());
    let all: Vec<_> = (0..20)
        .map(|i| client.get(&format!("{base}/n?i={i}")))
        .collect();
    let bodies = ropewalk_deferred::gather_results(all).wait().unwrap();
    let texts: Vec<String> = bodies.iter().map(ClientResponse::text).collect();
    let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(texts, expected);
}

#[test]
fn chained_into_a_server_response() {
    // A handler that answers with what it fetched: the client inside a server.
    let reactor = Reactor::new().unwrap();
    let (_inner, inner_base) = serve(
        &reactor,
        Site::new().get("/", |_: Request| Ok(Response::text("inner"))),
    );
    let client = Client::with_config(&reactor, config());
    let url = format!("{inner_base}/");
    let (_outer, outer_base) = serve(
        &reactor,
        Site::new().get("/proxy", move |_: Request| {
            client
                .get(&url)
                .add_callback(|r| Ok(Response::text(format!("got {}", r.text()))))
        }),
    );
    let resp = Client::new(&reactor)
        .get(&format!("{outer_base}/proxy"))
        .wait()
        .unwrap();
    assert_eq!(resp.text(), "got inner");
}

#[test]
fn request_as_sent() {
    let (result, head) = raw_get(&[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".as_slice()]);
    assert_eq!(result.unwrap().text(), "ok");
    assert!(
        head.starts_with("GET /path?q=1 HTTP/1.1\r\nHost: 127.0.0.1:"),
        "{head}"
    );
    assert!(!head.contains("Connection:"), "{head}");
    assert!(head.contains("\r\nUser-Agent: ropewalk/"), "{head}");
    assert!(!head.contains("Content-Length"), "{head}");
}

#[test]
fn chunked_response_in_pieces() {
    let (result, _) = raw_get(&[
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel",
        b"lo\r\n",
        b"7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n",
    ]);
    let resp = result.unwrap();
    assert_eq!(resp.text(), "hello, world");
}

#[test]
fn bad_chunked_framing_is_an_error() {
    let (result, _) = raw_get(&[
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    ]);
    let f = result.unwrap_err();
    assert!(matches!(client_error(&f), ClientError::Malformed(_)), "{f}");
}

/// RFC 9112 §5.2: a user agent MUST replace each obs-fold in a response with one or
/// more SP before interpreting the field. Framing fields are unfolded too, and then
/// judged as any other value.
#[test]
fn obs_fold_in_a_response_becomes_a_space() {
    let (result, _) = raw_get(&[
        b"HTTP/1.1 200 OK\r\nX-Folded: first\r\n second\r\n\t \tthird \r\nX-Plain: p\r\n",
        b"Content-Length: 2\r\n\r\nok",
    ]);
    let resp = result.unwrap();
    assert_eq!(resp.headers().get("x-folded"), Some("first second third"));
    assert_eq!(resp.headers().get("x-plain"), Some("p"));
    assert_eq!(resp.text(), "ok");
    // A folded Content-Length is unfolded: `2` and `3` are two values, not one.
    let (result, _) = raw_get(&[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n 3\r\n\r\nok"]);
    let f = result.unwrap_err();
    assert!(matches!(client_error(&f), ClientError::Malformed(_)), "{f}");
    // Folded onto a value that was empty.
    let (result, _) = raw_get(&[b"HTTP/1.1 200 OK\r\nX-E:\r\n e\r\nContent-Length: 0\r\n\r\n"]);
    assert_eq!(result.unwrap().headers().get("x-e"), Some("e"));
}

#[test]
fn close_delimited_body() {
    let (result, _) = raw_get(&[
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ",
        b"the end",
    ]);
    let resp = result.unwrap();
    assert_eq!(resp.version(), ropewalk_protocols::http::Version::Http10);
    assert_eq!(resp.text(), "until the end");
}

#[test]
fn informational_responses_are_skipped() {
    let (result, _) = raw_get(&[
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone",
    ]);
    let resp = result.unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.text(), "done");
    assert!(!resp.headers().contains("link"));
}

#[test]
fn not_modified_has_no_body_even_with_a_length() {
    let (result, _) = raw_get_with(
        &[b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"],
        true,
        config(),
    );
    let resp = result.unwrap();
    assert_eq!(resp.status(), 304);
    assert!(resp.body().is_empty());
}

#[test]
fn oversized_head_is_refused() {
    let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..200 {
        big.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "a".repeat(100)).as_bytes());
    }
    let cfg = ClientConfig {
        max_head_bytes: 8 * 1024,
        max_headers: 1000,
        ..config()
    };
    let (result, _) = raw_get_with(&[&big], true, cfg);
    let f = result.unwrap_err();
    assert!(
        matches!(client_error(&f), ClientError::HeadTooLarge(8192)),
        "{f}"
    );
    assert_eq!(f.to_string(), "response head larger than 8192 bytes");

    let (result, _) = raw_get_with(&[&big], true, config());
    let f = result.unwrap_err();
    assert!(
        matches!(client_error(&f), ClientError::TooManyHeaders(100)),
        "{f}"
    );
}

#[test]
fn oversized_body_is_refused() {
    let cfg = || ClientConfig {
        max_body: 10,
        ..config()
    };
    let (result, _) = raw_get_with(
        &[b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"],
        true,
        cfg(),
    );
    let f = result.unwrap_err();
    assert!(matches!(client_error(&f), ClientError::BodyTooLarge(10)));

    let (result, _) = raw_get_with(&[b"HTTP/1.1 200 OK\r\n\r\n0123456789", b"x"], true, cfg());
    let f = result.unwrap_err();
    assert!(matches!(client_error(&f), ClientError::BodyTooLarge(10)));

    let (result, _) = raw_get_with(
        &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n0123456789x\r\n0\r\n\r\n"],
        true,
        cfg(),
    );
    let f = result.unwrap_err();
    assert!(matches!(client_error(&f), ClientError::BodyTooLarge(10)));
}

#[test]
fn conflicting_framing_is_refused() {
    for head in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTCPCP/1.0 418 I'm a teapot\r\n\r\n",
    ] {
        let (result, _) = raw_get_with(&[head], true, config());
        let f = result.unwrap_err();
        assert!(
            matches!(client_error(&f), ClientError::Malformed(_)),
            "{}: {f}",
            String::from_utf8_lossy(head)
        );
    }
    // The same length repeated is fine.
    let (result, _) = raw_get(&[b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok".as_slice()]);
    assert_eq!(result.unwrap().text(), "ok");
}

#[test]
fn early_close_is_an_error() {
    for chunks in [
        &[][..],
        &[&b"HTTP/1.1 200 OK\r\nContent-"[..]][..],
        &[&b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"[..]][..],
        &[&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"[..]][..],
    ] {
        let (result, _) = raw_get(chunks);
        let f = result.unwrap_err();
        assert!(
            matches!(client_error(&f), ClientError::ConnectionClosed(_)),
            "{f}"
        );
        assert!(
            f.to_string()
                .starts_with("connection closed before the response was complete"),
            "{f}"
        );
    }
}

#[test]
fn timeout_is_typed() {
    let cfg = ClientConfig {
        timeout: Duration::from_millis(200),
        ..config()
    };
    // Headers, then silence: the server holds the connection open.
    let (result, _) = raw_get_with(
        &[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"],
        true,
        cfg,
    );
    let f = result.unwrap_err();
    let e = client_error(&f);
    assert!(e.is_timeout(), "{f}");
    assert_eq!(f.to_string(), "request timed out after 200ms");
}

#[test]
fn connect_errors_and_bad_urls() {
    let reactor = Reactor::new().unwrap();
    let client = Client::with_config(&reactor, config());
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let f = client.get(&format!("http://{free}/")).wait().unwrap_err();
    let e = client_error(&f);
    assert!(e.is_connect(), "{f}");
    assert!(
        f.to_string()
            .starts_with(&format!("could not connect to {free}: connection refused")),
        "{f}"
    );

    let f = client.get("ftp://127.0.0.1/").wait().unwrap_err();
    assert!(matches!(
        client_error(&f),
        ClientError::UnsupportedScheme(s) if s == "ftp"
    ));
    assert!(f.to_string().contains("only http:// and https://"), "{f}");

    for bad in ["127.0.0.1/", "http://", "http://h/a b", "http://h:99999/"] {
        let f = client.get(bad).wait().unwrap_err();
        assert!(client_error(&f).is_bad_url(), "{bad}: {f}");
    }
    let f = client
        .request("BAD METHOD", "http://127.0.0.1/", Headers::new(), vec![])
        .wait()
        .unwrap_err();
    assert!(matches!(client_error(&f), ClientError::InvalidRequest(_)));
}

#[test]
fn cancelling_aborts_the_request() {
    let reactor = Reactor::new().unwrap();
    let (addr, handle) = raw_server(vec![], true);
    let (tx, rx) = mpsc::channel();
    let d = Client::with_config(&reactor, config()).get(&format!("http://{addr}/"));
    let handle_d = d.cancel_handle();
    // Cancel once the request is on its way (a turn later).
    reactor.call_soon(move || {
        handle_d.cancel();
        tx.send(()).unwrap();
    });
    let f = d.wait().unwrap_err();
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(f.is::<ropewalk_deferred::Cancelled>(), "{f}");
    // The server sees the connection closed (its thread ends).
    handle.join().unwrap();
}
