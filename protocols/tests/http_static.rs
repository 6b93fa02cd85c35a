//! `StaticFiles` over loopback, fetched with our client: files in a fresh directory under
//! the system temp dir. Bounded by the client's timeout; nothing sleeps.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ropewalk_protocols::http::{
    Client, ClientConfig, ClientResponse, Headers, HttpServer, Site, StaticFiles,
};
use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::{ListeningPort, Reactor};

/// A temp directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("ropewalk-static-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SECRET: &str = "the secret outside the root";

/// `base/outside.txt` (never to be served) and `base/root/…`.
fn tree(base: &Path) -> PathBuf {
    std::fs::write(base.join("outside.txt"), SECRET).unwrap();
    let root = base.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    for (name, body) in [
        ("hello.txt", "hello"),
        ("page.html", "<p>hi</p>"),
        ("style.css", "p{}"),
        ("app.js", "1"),
        ("data.json", "{}"),
        ("pic.PNG", "png"),
        ("photo.jpg", "jpg"),
        ("anim.gif", "gif"),
        ("logo.svg", "<svg/>"),
        ("mod.wasm", "wasm"),
        ("noext", "?"),
        ("with space.txt", "spaced"),
        (".hidden", "hidden"),
        ("sub/index.html", "<h1>sub</h1>"),
    ] {
        std::fs::write(root.join(name), body).unwrap();
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink(base.join("outside.txt"), root.join("link.txt")).unwrap();
    root
}

struct Fixture {
    reactor: Reactor,
    client: Client,
    base: String,
    _port: ListeningPort,
}

impl Fixture {
    fn new(root: &Path) -> Fixture {
        let reactor = Reactor::new().unwrap();
        let files = StaticFiles::new(&reactor, root)
            .unwrap()
            .with_prefix("/static/");
        let site = Site::new().mount("/static/", files);
        let port = HttpServer::new(&reactor, site)
            .listen(&reactor, "127.0.0.1:0".parse().unwrap())
            .unwrap();
        let client = Client::with_config(
            &reactor,
            ClientConfig {
                timeout: Duration::from_secs(20),
                ..ClientConfig::default()
            },
        );
        Fixture {
            base: format!("http://{}", port.local_addr()),
            reactor,
            client,
            _port: port,
        }
    }

    fn get(&self, path: &str) -> ClientResponse {
        self.client
            .get(&format!("{}{path}", self.base))
            .wait()
            .unwrap()
    }

    /// `GET path` written as is on a std socket (run on the worker pool while `wait()`
    /// runs the reactor): the status and the body.
    fn raw_get(&self, path: &str) -> (u16, String) {
        let addr = self.base.trim_start_matches("http://").to_string();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let out = self
            .reactor
            .defer_to_thread(move || {
                let mut s = TcpStream::connect(addr.as_str()).map_err(Failure::new)?;
                s.set_read_timeout(Some(Duration::from_secs(20)))
                    .map_err(Failure::new)?;
                s.write_all(request.as_bytes()).map_err(Failure::new)?;
                let mut out = Vec::new();
                s.read_to_end(&mut out).map_err(Failure::new)?;
                Ok(String::from_utf8_lossy(&out).into_owned())
            })
            .wait()
            .unwrap();
        let status = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, body.to_string())
    }

    fn request(&self, method: &str, path: &str, headers: Headers) -> ClientResponse {
        self.client
            .request(method, &format!("{}{path}", self.base), headers, vec![])
            .wait()
            .unwrap()
    }
}

#[test]
fn content_types_by_extension() {
    let dir = TempDir::new("types");
    let f = Fixture::new(&tree(&dir.0));
    for (path, ty, body) in [
        ("hello.txt", "text/plain; charset=utf-8", "hello"),
        ("page.html", "text/html; charset=utf-8", "<p>hi</p>"),
        ("style.css", "text/css; charset=utf-8", "p{}"),
        ("app.js", "text/javascript; charset=utf-8", "1"),
        ("data.json", "application/json", "{}"),
        ("pic.PNG", "image/png", "png"),
        ("photo.jpg", "image/jpeg", "jpg"),
        ("anim.gif", "image/gif", "gif"),
        ("logo.svg", "image/svg+xml", "<svg/>"),
        ("mod.wasm", "application/wasm", "wasm"),
        ("noext", "application/octet-stream", "?"),
        ("with%20space.txt", "text/plain; charset=utf-8", "spaced"),
    ] {
        let resp = f.get(&format!("/static/{path}"));
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers().get("content-type"), Some(ty), "{path}");
        assert_eq!(resp.text(), body, "{path}");
        assert!(resp.headers().contains("last-modified"), "{path}");
    }
    drop(f.reactor);
}

#[test]
fn missing_hidden_and_methods() {
    let dir = TempDir::new("missing");
    let f = Fixture::new(&tree(&dir.0));
    assert_eq!(f.get("/static/nope.txt").status(), 404);
    assert_eq!(f.get("/static/sub/nope/deeper").status(), 404);
    assert_eq!(f.get("/static/.hidden").status(), 404);
    assert_eq!(f.get("/static/%2ehidden").status(), 404);
    assert_eq!(f.get("/static/hello.txt/").status(), 404);
    let resp = f.request("DELETE", "/static/hello.txt", Headers::new());
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers().get("allow"), Some("GET, HEAD"));
}

#[test]
fn traversal_is_never_served() {
    let dir = TempDir::new("traversal");
    let f = Fixture::new(&tree(&dir.0));
    for path in [
        "/static/../outside.txt",
        "/static/../Cargo.toml",
        "/static/sub/../../outside.txt",
        "/static/%2e%2e/outside.txt",
        "/static/%2E%2E/outside.txt",
        "/static/..%2foutside.txt",
        "/static/sub%2f..%2f..%2foutside.txt",
        "/static/..%5coutside.txt",
        "/static/hello.txt%00.png",
        "/static/%00",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/link.txt",
    ] {
        let resp = f.get(path);
        assert!(
            resp.status() == 403 || resp.status() == 404,
            "{path}: {}",
            resp.status()
        );
        assert!(!resp.text().contains(SECRET), "{path} leaked");
    }
    assert_eq!(f.get("/static/../outside.txt").status(), 403);
    assert_eq!(f.get("/static/%2e%2e/outside.txt").status(), 403);
    assert_eq!(f.get("/static/hello.txt%00.png").status(), 404);
    #[cfg(unix)]
    assert_eq!(f.get("/static/link.txt").status(), 403);
}

/// A path with a malformed escape is a 400, never a file: `%+b` once decoded to byte
/// 0x0b (`u8::from_str_radix` takes a sign) and served the file named `\x0bx`. Sent
/// over a raw socket, since our client refuses such a URL.
#[test]
fn malformed_escapes_are_400() {
    let dir = TempDir::new("escapes");
    let root = tree(&dir.0);
    std::fs::write(root.join("\x0bx"), "vertical tab").unwrap();
    let f = Fixture::new(&root);
    for path in [
        "/static/%+bx",
        "/static/%-bx",
        "/static/%zz",
        "/static/%4",
        "/static/a%",
    ] {
        let (status, body) = f.raw_get(path);
        assert_eq!(status, 400, "{path}");
        assert!(!body.contains("vertical tab"), "{path} served the file");
    }
    assert_eq!(f.raw_get("/static/%0bx"), (200, "vertical tab".to_string()));
}

#[test]
fn directories() {
    let dir = TempDir::new("dirs");
    let f = Fixture::new(&tree(&dir.0));
    let resp = f.get("/static/sub/");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(resp.text(), "<h1>sub</h1>");

    let resp = f.get("/static/sub?x=1");
    assert_eq!(resp.status(), 301);
    assert_eq!(resp.headers().get("location"), Some("/static/sub/?x=1"));

    assert_eq!(f.get("/static/empty/").status(), 403);
    // The root has no index.html.
    assert_eq!(f.get("/static/").status(), 403);
}

#[test]
fn head_and_if_modified_since() {
    let dir = TempDir::new("cond");
    let f = Fixture::new(&tree(&dir.0));
    let resp = f.request("HEAD", "/static/hello.txt", Headers::new());
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("content-length"), Some("5"));
    assert!(resp.body().is_empty());

    let full = f.get("/static/hello.txt");
    let modified = full.headers().get("last-modified").unwrap().to_string();
    let mut h = Headers::new();
    h.append("If-Modified-Since", modified.clone());
    let resp = f.request("GET", "/static/hello.txt", h);
    assert_eq!(resp.status(), 304);
    assert!(resp.body().is_empty());
    assert!(!resp.headers().contains("content-length"));
    assert_eq!(resp.headers().get("last-modified"), Some(modified.as_str()));

    let mut h = Headers::new();
    h.append("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(f.request("GET", "/static/hello.txt", h).status(), 200);
    let mut h = Headers::new();
    h.append("If-Modified-Since", "not a date");
    assert_eq!(f.request("GET", "/static/hello.txt", h).status(), 200);

    // RFC 9110 §5.6.7: recipients MUST accept all three date formats.
    let (rfc850, asctime) = obsolete_forms(&modified);
    for since in [rfc850, asctime] {
        let mut h = Headers::new();
        h.append("If-Modified-Since", since.clone());
        let resp = f.request("GET", "/static/hello.txt", h);
        assert_eq!(resp.status(), 304, "{since}");
    }
    // An invalid date is ignored (RFC 9110 §13.1.3): the file, not an error.
    for bad in [
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 25:49:37 GMT",
        "Sun Nov  6 08:49:37 94",
        "",
    ] {
        let mut h = Headers::new();
        h.append("If-Modified-Since", bad);
        assert_eq!(
            f.request("GET", "/static/hello.txt", h).status(),
            200,
            "{bad}"
        );
    }
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) in the two obsolete forms: RFC 850
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`).
fn obsolete_forms(imf: &str) -> (String, String) {
    let p: Vec<&str> = imf.split(' ').collect();
    let [day, dd, mon, year, time, "GMT"] = p[..] else {
        panic!("not an IMF-fixdate: {imf}");
    };
    let day = day.trim_end_matches(',');
    let long = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ]
    .into_iter()
    .find(|d| d.starts_with(day))
    .unwrap();
    let rfc850 = format!("{long}, {dd}-{mon}-{} {time} GMT", &year[2..]);
    let asctime = format!(
        "{day} {mon} {:>2} {time} {year}",
        dd.trim_start_matches('0')
    );
    (rfc850, asctime)
}

#[test]
fn a_large_file_is_streamed_byte_exact() {
    let dir = TempDir::new("large");
    let root = tree(&dir.0);
    // 5 MiB and a bit, not a multiple of the chunk size; a simple LCG so that any
    // reordered or dropped chunk shows.
    let mut x: u32 = 12345;
    let data: Vec<u8> = (0..5 * 1024 * 1024 + 777)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    std::fs::write(root.join("big.bin"), &data).unwrap();
    let f = Fixture::new(&root);

    let resp = f.request("HEAD", "/static/big.bin", Headers::new());
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("content-length"),
        Some(data.len().to_string().as_str())
    );
    assert!(resp.body().is_empty());

    let resp = f.get("/static/big.bin");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("content-length"),
        Some(data.len().to_string().as_str())
    );
    assert!(!resp.headers().contains("transfer-encoding"));
    assert_eq!(resp.body().len(), data.len());
    assert!(resp.body() == &data[..], "streamed body differs");

    // Several at once on one reactor, all byte-exact.
    let all: Vec<_> = (0..3)
        .map(|_| f.client.get(&format!("{}/static/big.bin", f.base)))
        .collect();
    for resp in ropewalk_deferred::gather_results(all).wait().unwrap() {
        assert!(resp.body() == &data[..]);
    }
}

fn ranged(f: &Fixture, path: &str, range: &str) -> ClientResponse {
    let mut h = Headers::new();
    h.append("Range", range);
    f.request("GET", path, h)
}

#[test]
fn single_ranges_give_206() {
    let dir = TempDir::new("range");
    let root = tree(&dir.0);
    std::fs::write(root.join("digits.txt"), "0123456789").unwrap();
    let f = Fixture::new(&root);

    let full = f.get("/static/digits.txt");
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers().get("accept-ranges"), Some("bytes"));

    for (range, body, content_range) in [
        ("bytes=0-3", "0123", "bytes 0-3/10"),
        ("bytes=2-2", "2", "bytes 2-2/10"),
        ("bytes=7-", "789", "bytes 7-9/10"),
        ("bytes=8-100", "89", "bytes 8-9/10"),
        ("bytes=-3", "789", "bytes 7-9/10"),
        ("bytes=-50", "0123456789", "bytes 0-9/10"),
    ] {
        let resp = ranged(&f, "/static/digits.txt", range);
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(resp.text(), body, "{range}");
        assert_eq!(
            resp.headers().get("content-range"),
            Some(content_range),
            "{range}"
        );
        assert_eq!(
            resp.headers().get("content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(resp.headers().get("accept-ranges"), Some("bytes"));
        assert_eq!(
            resp.headers().get("content-type"),
            Some("text/plain; charset=utf-8")
        );
    }
}

#[test]
fn unsatisfiable_ranges_give_416() {
    let dir = TempDir::new("range416");
    let root = tree(&dir.0);
    std::fs::write(root.join("digits.txt"), "0123456789").unwrap();
    std::fs::write(root.join("empty.txt"), "").unwrap();
    let f = Fixture::new(&root);
    for (path, range, len) in [
        ("digits.txt", "bytes=10-", 10),
        ("digits.txt", "bytes=10-20", 10),
        ("digits.txt", "bytes=-0", 10),
        ("empty.txt", "bytes=0-", 0),
    ] {
        let resp = ranged(&f, &format!("/static/{path}"), range);
        assert_eq!(resp.status(), 416, "{range}");
        assert_eq!(
            resp.headers().get("content-range"),
            Some(format!("bytes */{len}").as_str()),
            "{range}"
        );
    }
}

#[test]
fn ignored_ranges_give_the_whole_file() {
    let dir = TempDir::new("range-ignored");
    let root = tree(&dir.0);
    std::fs::write(root.join("digits.txt"), "0123456789").unwrap();
    let f = Fixture::new(&root);
    for range in ["bytes=0-1,4-5", "items=0-1", "bytes=5-2", "bytes=x-"] {
        let resp = ranged(&f, "/static/digits.txt", range);
        assert_eq!(resp.status(), 200, "{range}");
        assert_eq!(resp.text(), "0123456789", "{range}");
        assert!(!resp.headers().contains("content-range"), "{range}");
    }
    // HEAD ignores Range; If-Range is ignored (the range is served).
    let mut h = Headers::new();
    h.append("Range", "bytes=0-1");
    let resp = f.request("HEAD", "/static/digits.txt", h);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("content-length"), Some("10"));
    let mut h = Headers::new();
    h.append("Range", "bytes=0-1");
    h.append("If-Range", "\"some-etag\"");
    let resp = f.request("GET", "/static/digits.txt", h);
    assert_eq!((resp.status(), resp.text().as_str()), (206, "01"));
}

#[test]
fn ranges_of_a_large_file_are_streamed_from_the_offset() {
    let dir = TempDir::new("range-large");
    let root = tree(&dir.0);
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 11u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(root.join("big.bin"), &data).unwrap();
    let f = Fixture::new(&root);
    let len = data.len();
    for (range, start, end) in [
        (
            format!("bytes=100000-{}", 2 * 1024 * 1024 + 5),
            100_000,
            2 * 1024 * 1024 + 5,
        ),
        ("bytes=-70000".to_string(), len - 70_000, len - 1),
        (format!("bytes={}-", len - 1), len - 1, len - 1),
    ] {
        let resp = ranged(&f, "/static/big.bin", &range);
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(
            resp.headers().get("content-range"),
            Some(format!("bytes {start}-{end}/{len}").as_str())
        );
        assert!(resp.body() == &data[start..=end], "{range}: body differs");
    }
}

/// Issue #19: file I/O ran on the worker pool shared with user work, so a file waited
/// behind every blocking job queued before it (3.8 s for a 10 KiB file under 200 queued
/// 200 ms jobs). With the worker pool's only thread held by a job the test controls, a
/// small file and a streamed one are still served.
#[test]
fn files_are_served_while_the_worker_pool_is_saturated() {
    let dir = TempDir::new("saturated");
    let root = tree(&dir.0);
    let small: Vec<u8> = (0..10 * 1024u32).map(|i| (i % 251) as u8).collect();
    let large: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(root.join("small.bin"), &small).unwrap();
    std::fs::write(root.join("large.bin"), &large).unwrap();
    let f = Fixture::new(&root);
    f.reactor.configure_pool(ropewalk_reactor::PoolConfig {
        max_threads: 1,
        ..ropewalk_reactor::PoolConfig::default()
    });
    let (release, blocked) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    f.reactor
        .call_in_thread(move || {
            started_tx.send(()).unwrap();
            // Held until the test ends (or drops `release`).
            let _ = blocked.recv();
        })
        .unwrap();
    started.recv_timeout(Duration::from_secs(10)).unwrap();
    // And the queue of user jobs behind it: 200.
    for _ in 0..200 {
        f.reactor.call_in_thread(|| {}).unwrap();
    }
    let client = Client::with_config(
        &f.reactor,
        ClientConfig {
            timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        },
    );
    let resp = client
        .get(&format!("{}/static/small.bin", f.base))
        .wait()
        .expect("a small file is served while the worker pool is busy");
    assert_eq!(resp.status(), 200);
    assert!(resp.body() == &small[..]);
    let resp = client
        .get(&format!("{}/static/large.bin", f.base))
        .wait()
        .expect("a streamed file is served while the worker pool is busy");
    assert!(resp.body() == &large[..]);
    assert_eq!(
        f.reactor.pool_stats().queued,
        200,
        "the user jobs still wait"
    );
    drop(release);
}

/// Issue #19's profile: when a hot file's cache entry went stale, every request for it
/// until the first look-up came back ran a look-up of its own on the I/O pool (under
/// `wrk -c64` on a 1 MiB file: 0.34 `open`s and 1.37 `readlink`s per request). Requests
/// for a path already being looked up wait for that look-up instead.
#[test]
fn concurrent_requests_for_one_path_share_one_look_up() {
    let dir = TempDir::new("single-flight");
    let root = tree(&dir.0);
    let f = Fixture::new(&root);
    f.reactor.configure_io_pool(ropewalk_reactor::PoolConfig {
        max_threads: 1,
        ..ropewalk_reactor::PoolConfig::io_default()
    });
    // The I/O pool's one thread is held, so look-ups queue where the test sees them.
    let (release, blocked) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    let held = f.reactor.defer_to_io_thread(move || {
        started_tx.send(()).unwrap();
        let _ = blocked.recv();
        Ok(())
    });
    started.recv_timeout(Duration::from_secs(10)).unwrap();
    // Eight pipelined requests for one path, in one write: one read, eight handlers.
    const N: usize = 8;
    let addr = f.base.trim_start_matches("http://").to_string();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut req = Vec::new();
        for i in 0..N {
            let close = if i == N - 1 {
                "Connection: close\r\n"
            } else {
                ""
            };
            req.extend_from_slice(
                format!("GET /static/hello.txt HTTP/1.1\r\nHost: x\r\n{close}\r\n").as_bytes(),
            );
        }
        s.write_all(&req).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        String::from_utf8_lossy(&got).into_owned()
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while f.reactor.io_pool_stats().queued == 0 {
        assert!(std::time::Instant::now() < deadline, "no look-up queued");
        f.reactor.iterate(Duration::from_millis(10));
    }
    for _ in 0..10 {
        f.reactor.iterate(Duration::ZERO);
    }
    assert_eq!(
        f.reactor.io_pool_stats().queued,
        1,
        "one look-up for {N} requests of one path"
    );
    drop(release);
    held.wait().unwrap();
    while !client.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "the answers did not come"
        );
        f.reactor.iterate(Duration::from_millis(10));
    }
    let text = client.join().unwrap();
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), N, "{text}");
    assert_eq!(text.matches("\r\n\r\nhello").count(), N, "{text}");
}

/// A server of `root` whose open-file cache reads `clock`.
fn cached_fixture(root: &Path, clock: &ropewalk_reactor::ManualClock) -> Fixture {
    let reactor = Reactor::new().unwrap();
    let files = StaticFiles::new(&reactor, root)
        .unwrap()
        .with_prefix("/static/")
        .with_clock(clock)
        .with_open_file_cache(2, Duration::from_secs(1));
    let site = Site::new().mount("/static/", files);
    let port = HttpServer::new(&reactor, site)
        .listen(&reactor, "127.0.0.1:0".parse().unwrap())
        .unwrap();
    let client = Client::with_config(
        &reactor,
        ClientConfig {
            timeout: Duration::from_secs(20),
            ..ClientConfig::default()
        },
    );
    Fixture {
        base: format!("http://{}", port.local_addr()),
        reactor,
        client,
        _port: port,
    }
}

/// Issue #19's open-file cache: a hot file is served without a look-up on the I/O pool
/// for `valid` (1 s here); a change, a replacement or a deletion shows at most that
/// much later.
#[test]
fn cached_files_are_revalidated_within_the_validity_window() {
    let dir = TempDir::new("cache");
    let root = tree(&dir.0);
    let clock = ropewalk_reactor::ManualClock::new();
    let f = cached_fixture(&root, &clock);
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 249) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();

    assert_eq!(f.get("/static/hello.txt").text(), "hello");
    assert_eq!(f.get("/static/big.bin").body(), &big[..]);
    // Changed on disk (same length, and a new file): still the cached answer within 1 s.
    std::fs::write(root.join("hello.txt"), "HELLO").unwrap();
    let big2: Vec<u8> = big.iter().map(|b| b ^ 0xff).collect();
    std::fs::write(root.join("big.bin.new"), &big2).unwrap();
    std::fs::rename(root.join("big.bin.new"), root.join("big.bin")).unwrap();
    clock.advance(Duration::from_millis(999));
    assert_eq!(f.get("/static/hello.txt").text(), "hello", "cached");
    assert_eq!(f.get("/static/big.bin").body(), &big[..], "the open file");
    // Past the window: looked up again.
    clock.advance(Duration::from_millis(1));
    assert_eq!(f.get("/static/hello.txt").text(), "HELLO");
    assert_eq!(f.get("/static/big.bin").body(), &big2[..]);
    // A range and a conditional request are answered from the cached entry.
    let resp = ranged(&f, "/static/big.bin", "bytes=10-19");
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.body(), &big2[10..20]);
    let lm = f.get("/static/hello.txt");
    let mut h = Headers::new();
    h.append(
        "If-Modified-Since",
        lm.headers().get("last-modified").unwrap(),
    );
    assert_eq!(f.request("GET", "/static/hello.txt", h).status(), 304);
    // Deleted: 404 once the window passed.
    std::fs::remove_file(root.join("hello.txt")).unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(f.get("/static/hello.txt").status(), 404);
    // Bounded: two entries; a third path evicts the least recently used.
    assert_eq!(f.get("/static/page.html").text(), "<p>hi</p>");
    assert_eq!(f.get("/static/style.css").text(), "p{}");
    std::fs::write(root.join("big.bin"), b"small now").unwrap();
    assert_eq!(
        f.get("/static/big.bin").text(),
        "small now",
        "evicted, so looked up again inside the window"
    );
}
