//! The access log: one Common Log Format line per response on `ropewalk::http::access`.
//! A capturing logger is installed once; each test filters the lines by its own path.

use std::sync::{Mutex, Once};

use ropewalk_protocols::http::{Client, Headers, HttpServer, Request, Response, ACCESS_LOG_TARGET};
use ropewalk_reactor::Reactor;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static INIT: Once = Once::new();

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target() == ACCESS_LOG_TARGET && metadata.level() <= log::Level::Info
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            LINES.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

fn install() {
    INIT.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Info);
    });
}

fn lines_with(needle: &str) -> Vec<String> {
    LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

fn server(reactor: &Reactor) -> String {
    let server = HttpServer::new(reactor, |r: Request| {
        Ok(match r.path() {
            p if p.ends_with("/missing") => Response::error(404),
            p if p.ends_with("/stream") => {
                let (resp, writer) = Response::streaming(200);
                writer.write(b"abc");
                writer.finish();
                resp
            }
            _ => Response::text("Hello, World!\n"),
        })
    });
    let port = server
        .listen(reactor, "127.0.0.1:0".parse().unwrap())
        .unwrap();
    let url = format!("http://{}", port.local_addr());
    std::mem::forget(port);
    url
}

/// `127.0.0.1 - - [dd/Mon/yyyy:hh:mm:ss +0000] "…" status size`
fn check_shape(line: &str) -> (&str, &str) {
    let rest = line.strip_prefix("127.0.0.1 - - [").expect(line);
    let (date, rest) = rest.split_once("] \"").expect(line);
    assert_eq!(date.len(), "27/Nov/2026:18:00:00 +0000".len(), "{line}");
    assert!(date.ends_with(" +0000"), "{line}");
    assert_eq!(&date[2..3], "/", "{line}");
    let (request_line, rest) = rest.split_once("\" ").expect(line);
    (request_line, rest)
}

#[test]
fn one_line_per_response_in_clf() {
    install();
    let reactor = Reactor::new().unwrap();
    let base = server(&reactor);
    let client = Client::new(&reactor);
    client.get(&format!("{base}/clf-ok?x=1")).wait().unwrap();
    client
        .get(&format!("{base}/clf-ok/missing"))
        .wait()
        .unwrap();
    client
        .request(
            "HEAD",
            &format!("{base}/clf-ok-head"),
            Headers::new(),
            vec![],
        )
        .wait()
        .unwrap();

    let ok = lines_with("/clf-ok?x=1");
    assert_eq!(ok.len(), 1, "{ok:?}");
    assert_eq!(check_shape(&ok[0]), ("GET /clf-ok?x=1 HTTP/1.1", "200 14"));

    let missing = lines_with("/clf-ok/missing");
    assert_eq!(missing.len(), 1, "{missing:?}");
    let (_, tail) = check_shape(&missing[0]);
    assert!(tail.starts_with("404 "), "{tail}");

    let head = lines_with("/clf-ok-head");
    assert_eq!(head.len(), 1, "{head:?}");
    assert_eq!(
        check_shape(&head[0]),
        ("HEAD /clf-ok-head HTTP/1.1", "200 -")
    );
}

#[test]
fn streamed_body_without_length_logs_dash() {
    install();
    let reactor = Reactor::new().unwrap();
    let base = server(&reactor);
    let resp = Client::new(&reactor)
        .get(&format!("{base}/clf-chunked/stream"))
        .wait()
        .unwrap();
    assert_eq!(resp.body(), b"abc");
    let lines = lines_with("/clf-chunked/stream");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        check_shape(&lines[0]),
        ("GET /clf-chunked/stream HTTP/1.1", "200 -")
    );
}
