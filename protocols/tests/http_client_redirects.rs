//! Redirects, followed by the client between two of our servers on different ports
//! (two origins). Bounded by the client's timeout; nothing sleeps.

use std::time::Duration;

use ropewalk_deferred::Failure;
use ropewalk_protocols::http::{
    Client, ClientConfig, ClientError, Headers, HttpServer, Request, Response,
};
use ropewalk_reactor::{ListeningPort, Reactor};

fn config(follow: Option<usize>) -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_secs(10),
        follow_redirects: follow,
        ..ClientConfig::default()
    }
}

/// What the request looked like, as text: method, path, body and the sensitive headers.
fn describe(r: &Request) -> String {
    format!(
        "{} {} body={:?} auth={:?} cookie={:?} ctype={:?}",
        r.method(),
        r.path(),
        String::from_utf8_lossy(r.body()),
        r.headers().get("authorization"),
        r.headers().get("cookie"),
        r.headers().get("content-type"),
    )
}

fn redirect(status: u16, location: &str) -> Response {
    Response::new(status).with_header("Location", location)
}

struct Servers {
    _a: ListeningPort,
    _b: ListeningPort,
    a: String,
    b: String,
}

/// Server B echoes what it got; server A redirects in many ways, some of them to B.
fn servers(reactor: &Reactor) -> Servers {
    // B sends `/back` on to A's `/echo`; A's address is known once A listens.
    let a_url = std::rc::Rc::new(std::cell::RefCell::new(String::new()));
    let a_for_b = a_url.clone();
    let b_port = HttpServer::new(reactor, move |r: Request| {
        Ok(if r.path() == "/back" {
            redirect(307, &format!("{}/echo", a_for_b.borrow()))
        } else {
            Response::text(describe(&r))
        })
    })
    .listen(reactor, "127.0.0.1:0".parse().unwrap())
    .unwrap();
    let b = format!("http://{}", b_port.local_addr());
    let b_for_a = b.clone();
    let a_port = HttpServer::new(reactor, move |r: Request| {
        let path = r.path().to_string();
        Ok(match path.as_str() {
            "/301" => redirect(301, "/echo"),
            "/302" => redirect(302, "/echo"),
            "/303" => redirect(303, "/echo"),
            "/307" => redirect(307, "/echo"),
            "/308" => redirect(308, "/echo"),
            "/deep/er/rel" => redirect(302, "../echo?from=rel"),
            "/cross" => redirect(302, &format!("{b_for_a}/theirs")),
            "/cross-307" => redirect(307, &format!("{b_for_a}/theirs")),
            "/round-trip" => redirect(307, &format!("{b_for_a}/back")),
            "/loop" => redirect(302, "/loop"),
            "/ping" => redirect(302, "/pong"),
            "/pong" => redirect(302, "/ping"),
            "/no-location" => Response::new(302),
            "/to-ftp" => redirect(302, "ftp://127.0.0.1/"),
            p if p.starts_with("/chain/") => {
                let n: u32 = p["/chain/".len()..].parse().unwrap();
                if n == 0 {
                    Response::text("end of chain")
                } else {
                    redirect(302, &format!("/chain/{}", n - 1))
                }
            }
            "/echo" | "/deep/echo" => Response::text(describe(&r)),
            _ => Response::error(404),
        })
    })
    .listen(reactor, "127.0.0.1:0".parse().unwrap())
    .unwrap();
    *a_url.borrow_mut() = format!("http://{}", a_port.local_addr());
    Servers {
        a: format!("http://{}", a_port.local_addr()),
        _a: a_port,
        b,
        _b: b_port,
    }
}

fn secret_headers() -> Headers {
    let mut h = Headers::new();
    h.append("Authorization", "Bearer s3cret");
    h.append("Cookie", "session=abc");
    h.append("Content-Type", "text/plain");
    h
}

fn error(f: &Failure) -> &ClientError {
    f.downcast_ref()
        .unwrap_or_else(|| panic!("not a ClientError: {f}"))
}

#[test]
fn off_by_default() {
    let reactor = Reactor::new().unwrap();
    let s = servers(&reactor);
    let resp = Client::new(&reactor)
        .get(&format!("{}/301", s.a))
        .wait()
        .unwrap();
    assert_eq!(resp.status(), 301);
    assert_eq!(resp.headers().get("location"), Some("/echo"));
}

#[test]
fn see_other_family_becomes_get_without_body() {
    let reactor = Reactor::new().unwrap();
    let s = servers(&reactor);
    let client = Client::with_config(&reactor, config(Some(5)));
    for status in [301, 302, 303] {
        let resp = client
            .request(
                "POST",
                &format!("{}/{status}", s.a),
                secret_headers(),
                b"payload".to_vec(),
            )
            .wait()
            .unwrap();
        assert_eq!(resp.status(), 200);
        // Same origin: the credentials stay; the body and its type go.
        assert_eq!(
            resp.text(),
            "GET /echo body=\"\" auth=Some(\"Bearer s3cret\") cookie=Some(\"session=abc\") ctype=None",
            "{status}"
        );
    }
    // HEAD stays HEAD.
    let resp = client
        .request("HEAD", &format!("{}/302", s.a), Headers::new(), vec![])
        .wait()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.body().is_empty());
}

#[test]
fn temporary_and_permanent_keep_method_and_body() {
    let reactor = Reactor::new().unwrap();
    let s = servers(&reactor);
    let client = Client::with_config(&reactor, config(Some(5)));
    for status in [307, 308] {
        let resp = client
            .request(
                "PUT",
                &format!("{}/{status}", s.a),
                secret_headers(),
                b"payload".to_vec(),
            )
            .wait()
            .unwrap();
        assert_eq!(
            resp.text(),
            "PUT /echo body=\"payload\" auth=Some(\"Bearer s3cret\") cookie=Some(\"session=abc\") ctype=Some(\"text/plain\")",
            "{status}"
        );
    }
}

#[test]
fn relative_locations_are_resolved() {
    let reactor = Reactor::new().unwrap();
    let s = servers(&reactor);
    let client = Client::with_config(&reactor, config(Some(5)));
    let resp = client.get(&format!("{}/deep/er/rel", s.a)).wait().unwrap();
    assert!(
        resp.text().starts_with("GET /deep/echo "),
        "{}",
        resp.text()
    );
}

#[test]
fn credentials_are_dropped_across_origins() {
    let reactor = Reactor::new().unwrap();
    let s = servers(&reactor);
    let client = Client::with_config(&reactor, config(Some(5)));
    for path in ["/cross", "/cross-307"] {
        let resp = client
            .request("GET", &format!("{}{path}", s.a), secret_headers(), vec![])
            .wait()
            .unwrap();
        let text = resp.text();
        assert!(text.starts_with("GET /theirs "), "{text}");
        assert!(text.contains("auth=None cookie=None"), "{path}: {text}");
    }
    // Once dropped they stay dropped, even when the chain comes back to A.
    let resp = client
        .request(
            "GET",
            &format!("{}/round-trip", s.a),
            secret_headers(),
            vec![],
        )
        .wait()
        .unwrap();
    let text = resp.text();
    assert!(text.starts_with("GET /echo "), "{text}");
    assert!(text.contains("auth=None cookie=None"), "{text}");
    // Asked of B directly, they are sent: only the redirect drops them.
    let resp = client
        .request("GET", &format!("{}/mine", s.b), secret_headers(), vec![])
        .wait()
        .unwrap();
    assert!(resp.text().contains("auth=Some(\"Bearer s3cret\")"));
}

#[test]
fn hop_limit_and_loops_are_typed_errors() {
    let reactor = Reactor::new().unwrap();
    let s = servers(&reactor);
    let client = Client::with_config(&reactor, config(Some(3)));
    // Three redirects are fine, four are not.
    let resp = client.get(&format!("{}/chain/3", s.a)).wait().unwrap();
    assert_eq!(resp.text(), "end of chain");
    let f = client.get(&format!("{}/chain/4", s.a)).wait().unwrap_err();
    assert!(matches!(error(&f), ClientError::TooManyRedirects(3)), "{f}");

    for path in ["/loop", "/ping"] {
        let f = client.get(&format!("{}{path}", s.a)).wait().unwrap_err();
        assert!(
            matches!(error(&f), ClientError::RedirectLoop(_)),
            "{path}: {f}"
        );
    }
    let f = Client::with_config(&reactor, config(Some(0)))
        .get(&format!("{}/302", s.a))
        .wait()
        .unwrap_err();
    assert!(matches!(error(&f), ClientError::TooManyRedirects(0)), "{f}");
}

#[test]
fn odd_redirects() {
    let reactor = Reactor::new().unwrap();
    let s = servers(&reactor);
    let client = Client::with_config(&reactor, config(Some(5)));
    // No Location: the 3xx itself.
    let resp = client.get(&format!("{}/no-location", s.a)).wait().unwrap();
    assert_eq!(resp.status(), 302);
    // To a scheme it cannot speak: refused like a bad URL.
    let f = client.get(&format!("{}/to-ftp", s.a)).wait().unwrap_err();
    assert!(
        matches!(error(&f), ClientError::UnsupportedScheme(_)),
        "{f}"
    );
}
