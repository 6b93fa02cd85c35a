//! HTTP interop with peers no one here wrote: `curl`, Python's `http.client` and
//! Twisted's `Agent` against our server; our client against a `twisted.web` server and
//! Python's `http.server`. Everything runs on 127.0.0.1, every subprocess is killed if it
//! outlives its bound, and servers are waited for by their `listening on IP:PORT` line.
//!
//! The peers are tools, not crates: `curl`, `python3`, and Twisted for `python3`.
//! When one is missing, a plain `cargo test` skips the tests that need it, each with a
//! `*** SKIPPED` notice on stderr that says how to install it, so a machine with only
//! Rust passes. `.ci/run` installs the peers and sets `ROPEWALK_REQUIRE_PEERS=1`, under
//! which a missing peer fails the test instead. The Python helpers are in
//! `tests/interop/`; each prints one line per result.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use ropewalk::protocols::http::{Client, Headers, HttpServer, Request, Response, Site};
use ropewalk::reactor::{Reactor, ReactorHandle};
use ropewalk_testkit::peers::require;

/// The longest any subprocess may run.
const BOUND: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Tools: present, or a loud skip (or a clear failure when peers are required), by
// `ropewalk_testkit::peers`.

fn have_curl() -> bool {
    require(
        "curl",
        &["curl", "--version"],
        "apt-get update && apt-get install -y curl",
    )
}

fn have_python() -> bool {
    require(
        "python3",
        &["python3", "--version"],
        "apt-get update && apt-get install -y python3",
    )
}

fn have_twisted() -> bool {
    have_python()
        && require(
            "Twisted (python3 -c 'import twisted')",
            &[
                "python3",
                "-c",
                "import twisted.web.client, twisted.web.server",
            ],
            "python3 -m pip install twisted",
        )
}

/// A helper script in `tests/interop/`.
fn script(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
        .join(name);
    assert!(path.exists(), "missing {}", path.display());
    path.to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------------------
// Subprocesses, bounded in time.

/// Runs `program args` to completion; killed (and the test failed) past [`BOUND`].
fn run(program: &str, args: &[&str]) -> Output {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(BOUND) {
        Ok(out) => out.expect("wait for the subprocess"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{program} {args:?} ran longer than {BOUND:?} and was killed");
        }
    }
}

/// Runs `program args`, expecting success, and returns its stdout as text.
fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A peer server in a subprocess; killed when dropped.
struct PeerServer {
    child: Child,
    addr: SocketAddr,
}

impl PeerServer {
    /// Starts `python3 script args` and waits (bounded) for `listening on IP:PORT`.
    fn start(script_name: &str, args: &[&str]) -> PeerServer {
        let mut child = Command::new("python3")
            .arg(script(script_name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn python3");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(BOUND) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{script_name} did not print its address within {BOUND:?}");
            }
        };
        let addr = match line.trim().strip_prefix("listening on ") {
            Some(a) => a.parse().expect("an address"),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{script_name}: unexpected first line {line:?}");
            }
        };
        PeerServer { child, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Our server, in-process on its own reactor thread.

/// Our `HttpServer` on a reactor thread; stopped and joined when dropped.
struct OurServer {
    addr: SocketAddr,
    handle: ReactorHandle,
    thread: Option<JoinHandle<()>>,
}

/// The routes the peers talk to.
fn site() -> Site {
    Site::new()
        .get("/", |_: Request| Ok(Response::text("Hello, World!\n")))
        // The client's address: two requests on one connection see the same one.
        .get("/peer", |req: Request| {
            Ok(Response::text(format!("{}\n", req.peer())))
        })
        // The body back, with the framing it came in.
        .post("/echo", |req: Request| {
            let seen = |name: &str| req.headers().get(name).unwrap_or("-").to_string();
            let (te, cl, expect) = (
                seen("transfer-encoding"),
                seen("content-length"),
                seen("expect"),
            );
            Ok(Response::bytes(req.into_body())
                .with_header("Content-Type", "application/octet-stream")
                .with_header("X-Seen-Transfer-Encoding", te)
                .with_header("X-Seen-Content-Length", cl)
                .with_header("X-Seen-Expect", expect))
        })
}

impl OurServer {
    fn start() -> OurServer {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let reactor = Reactor::new().expect("reactor");
            let server = HttpServer::new(&reactor, site());
            let port = server
                .listen(&reactor, ([127, 0, 0, 1], 0).into())
                .expect("listen");
            let addr = port.local_addr().inet().expect("an inet address");
            tx.send((addr, reactor.handle())).unwrap();
            reactor.run().expect("reactor run");
        });
        let (addr, handle) = rx.recv_timeout(BOUND).expect("server started");
        OurServer {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for OurServer {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reading what the peers print.

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    assert!(s.len() % 2 == 0, "odd hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// One exchange as a client script printed it: `NAME STATUS BODY_HEX HEADERS`.
#[derive(Debug)]
struct Exchange {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Exchange {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn parse_exchanges(out: &str) -> HashMap<String, Exchange> {
    let mut all = HashMap::new();
    for line in out.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 4, "unexpected line {line:?}");
        let headers = if fields[3] == "-" {
            Vec::new()
        } else {
            fields[3]
                .split(',')
                .map(|pair| {
                    let (n, v) = pair.split_once('=').expect("name=value");
                    (
                        n.to_string(),
                        String::from_utf8_lossy(&unhex(v)).into_owned(),
                    )
                })
                .collect()
        };
        let ex = Exchange {
            status: fields[1].parse().expect("status"),
            body: unhex(fields[2]),
            headers,
        };
        all.insert(fields[0].to_string(), ex);
    }
    all
}

/// What `curl -i` printed: the final status, its header fields and the body (interim
/// `1xx` heads skipped), and how many `1xx` heads came before.
struct CurlResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    interim: Vec<u16>,
}

impl CurlResponse {
    fn parse(mut bytes: &[u8]) -> CurlResponse {
        let mut interim = Vec::new();
        loop {
            let end = bytes
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(bytes)));
            let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
            let rest = &bytes[end + 4..];
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap();
            assert!(status_line.starts_with("HTTP/1.1 "), "{status_line:?}");
            let status: u16 = status_line[9..12].parse().expect("status code");
            if (100..200).contains(&status) {
                interim.push(status);
                bytes = rest;
                continue;
            }
            let headers = lines
                .map(|l| {
                    let (n, v) = l.split_once(':').expect("a header field");
                    (n.to_ascii_lowercase(), v.trim().to_string())
                })
                .collect();
            return CurlResponse {
                status,
                headers,
                body: rest.to_vec(),
                interim,
            };
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `curl -sS -i --max-time 30 ARGS…`, checked for success.
fn curl_i(args: &[&str]) -> CurlResponse {
    let mut all = vec!["-sS", "-i", "--max-time", "30"];
    all.extend_from_slice(args);
    let out = run("curl", &all);
    assert!(
        out.status.success(),
        "curl {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    CurlResponse::parse(&out.stdout)
}

/// A body with every byte value, `n` bytes long.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A file holding `data`, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, data: &[u8]) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "ropewalk-interop-{}-{tag}-{}",
            std::process::id(),
            std::thread::current()
                .name()
                .unwrap_or("t")
                .replace("::", "_")
        ));
        std::fs::write(&path, data).unwrap();
        TempFile(path)
    }

    fn at(&self) -> String {
        format!("@{}", self.0.display())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---------------------------------------------------------------------------------------
// curl against our server.

#[test]
fn curl_get_and_head() {
    if !have_curl() {
        return;
    }
    let server = OurServer::start();
    let r = curl_i(&[&server.url("/")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"Hello, World!\n");
    assert_eq!(r.header("content-length"), Some("14"));
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert!(r.header("date").is_some());
    assert_eq!(r.header("server"), Some("ropewalk"));
    // HEAD: the same head, no body (curl -I would hang on a body that is not there).
    let r = curl_i(&["-I", &server.url("/")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("14"));
    assert!(r.body.is_empty(), "{:?}", r.body);
    let r = curl_i(&[&server.url("/nowhere")]);
    assert_eq!(r.status, 404);
    // HTTP/1.0 from curl: answered, and closed after.
    let out = run_ok(
        "curl",
        &["-sS", "-0", "-i", "--max-time", "30", &server.url("/")],
    );
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.to_ascii_lowercase().contains("connection: close"),
        "{out}"
    );
}

#[test]
fn curl_post_echo() {
    if !have_curl() {
        return;
    }
    let server = OurServer::start();
    let body = pattern(100_000);
    let file = TempFile::new("post", &body);
    // A small body: sent at once with its Content-Length (no Expect).
    let r = curl_i(&["--data-binary", "rope", &server.url("/echo")]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"rope"[..]));
    assert_eq!(r.header("x-seen-content-length"), Some("4"));
    assert_eq!(r.header("x-seen-transfer-encoding"), Some("-"));
    // A binary body from a file; `Expect:` (empty) turns curl's 100-continue off.
    let r = curl_i(&[
        "-H",
        "Expect:",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &file.at(),
        &server.url("/echo"),
    ]);
    assert_eq!(r.status, 200);
    assert!(r.interim.is_empty());
    assert_eq!(r.header("x-seen-content-length"), Some("100000"));
    assert_eq!(r.body, body);
}

#[test]
fn curl_keep_alive_two_requests_on_one_connection() {
    if !have_curl() {
        return;
    }
    let server = OurServer::start();
    let url = server.url("/peer");
    let out = run("curl", &["-sS", "-v", "--max-time", "30", &url, &url]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let peers: Vec<&str> = stdout.lines().collect();
    assert_eq!(peers.len(), 2, "{stdout}");
    assert_eq!(peers[0], peers[1], "two connections were used: {stdout}");
    assert!(
        stderr.contains("Re-using existing connection"),
        "curl did not reuse the connection:\n{stderr}"
    );
}

#[test]
fn curl_chunked_upload() {
    if !have_curl() {
        return;
    }
    let server = OurServer::start();
    let body = pattern(300_000);
    let file = TempFile::new("chunked", &body);
    let r = curl_i(&[
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Expect:",
        "--data-binary",
        &file.at(),
        &server.url("/echo"),
    ]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-seen-transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("x-seen-content-length"), Some("-"));
    assert_eq!(r.header("content-length"), Some("300000"));
    assert_eq!(r.body, body);
}

#[test]
fn curl_expect_100_continue() {
    if !have_curl() {
        return;
    }
    let server = OurServer::start();
    // curl asks for 100-continue before a large body (and on request); our server must
    // answer `100 Continue` itself, or curl would wait its 1 s and send anyway.
    let body = pattern(2_000_000);
    let file = TempFile::new("expect", &body);
    let r = curl_i(&[
        "-H",
        "Expect: 100-continue",
        "--expect100-timeout",
        "20",
        "--data-binary",
        &file.at(),
        &server.url("/echo"),
    ]);
    assert_eq!(r.interim, vec![100], "no 100 Continue before the answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-seen-expect"), Some("100-continue"));
    assert_eq!(r.body, body);
    // Chunked and 100-continue together.
    let r = curl_i(&[
        "-H",
        "Expect: 100-continue",
        "-H",
        "Transfer-Encoding: chunked",
        "--expect100-timeout",
        "20",
        "--data-binary",
        &file.at(),
        &server.url("/echo"),
    ]);
    assert_eq!(r.interim, vec![100]);
    assert_eq!(r.header("x-seen-transfer-encoding"), Some("chunked"));
    assert_eq!(r.body, body);
}

// ---------------------------------------------------------------------------------------
// Python's http.client and Twisted's Agent against our server.

/// Checks the exchanges both client scripts print. Twisted's Agent hides
/// `Content-Length` (a connection-control field) and prints its `length` as
/// `agent.length`.
fn check_client_script(all: &HashMap<String, Exchange>, chunked_body: &[u8]) {
    let length = |ex: &Exchange| {
        ex.header("content-length")
            .or(ex.header("agent.length"))
            .map(str::to_string)
    };
    let get = |name: &str| {
        all.get(name)
            .unwrap_or_else(|| panic!("no {name:?} line in {all:?}"))
    };
    assert_eq!(get("peer1").status, 200);
    assert!(get("peer1").text().starts_with("127.0.0.1:"));
    assert_eq!(
        get("peer1").body,
        get("peer2").body,
        "keep-alive: the second request came on another connection"
    );
    let g = get("get");
    assert_eq!((g.status, g.text().as_str()), (200, "Hello, World!\n"));
    assert_eq!(length(g).as_deref(), Some("14"));
    let p = get("post");
    assert_eq!(p.status, 200);
    assert_eq!(p.body, (0..=255u8).collect::<Vec<u8>>().repeat(64));
    assert_eq!(p.header("x-seen-content-length"), Some("16384"));
    let h = get("head");
    assert_eq!(h.status, 200);
    assert_eq!(length(h).as_deref(), Some("14"));
    assert!(h.body.is_empty());
    let c = get("chunked");
    assert_eq!(c.status, 200);
    assert_eq!(c.header("x-seen-transfer-encoding"), Some("chunked"));
    assert_eq!(c.body, chunked_body);
    assert_eq!(get("missing").status, 404);
}

#[test]
fn python_http_client_against_our_server() {
    if !have_python() {
        return;
    }
    let server = OurServer::start();
    let out = run_ok(
        "python3",
        &[&script("http_client.py"), &server.addr.to_string()],
    );
    check_client_script(&parse_exchanges(&out), b"abcdefghij");
}

#[test]
fn twisted_agent_against_our_server() {
    if !have_twisted() {
        return;
    }
    let server = OurServer::start();
    let out = run_ok(
        "python3",
        &[&script("twisted_agent_client.py"), &server.addr.to_string()],
    );
    check_client_script(&parse_exchanges(&out), b"twisted chunked upload");
}

// ---------------------------------------------------------------------------------------
// Our client against twisted.web and Python's http.server.

#[test]
fn our_client_against_twisted_web() {
    if !have_twisted() {
        return;
    }
    let peer = PeerServer::start("twisted_web_server.py", &[]);
    let reactor = Reactor::new().unwrap();
    let client = Client::new(&reactor);

    let r = client.get(&peer.url("/")).wait().expect("GET /");
    assert_eq!(
        (r.status(), r.text().as_str()),
        (200, "hello from twisted.web\n")
    );
    assert_eq!(r.headers().get("x-peer"), Some("twisted"));
    assert_eq!(r.headers().get("content-type"), Some("text/plain"));

    let body = pattern(50_000);
    let r = client
        .post(&peer.url("/echo"), body.clone())
        .wait()
        .expect("POST /echo");
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), body.as_slice());

    // Written in pieces without a length: twisted.web sends it chunked.
    let r = client
        .get(&peer.url("/stream"))
        .wait()
        .expect("GET /stream");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("transfer-encoding"), Some("chunked"));
    assert_eq!(r.text(), "one two three\n");

    let r = client.get(&peer.url("/big")).wait().expect("GET /big");
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), (0..=255u8).collect::<Vec<u8>>().repeat(4096));

    let r = client
        .request("HEAD", &peer.url("/"), Headers::new(), Vec::new())
        .wait()
        .expect("HEAD /");
    assert_eq!(r.status(), 200);
    assert!(r.body().is_empty());

    let r = client.get(&peer.url("/nowhere")).wait().expect("GET 404");
    assert_eq!(r.status(), 404);
}

#[test]
fn our_client_against_python_http_server() {
    if !have_python() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ropewalk-interop-root-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = pattern(70_000);
    std::fs::write(dir.join("data.bin"), &file).unwrap();
    std::fs::write(dir.join("hello.txt"), b"hello from http.server\n").unwrap();
    let peer = PeerServer::start("python_http_server.py", &[dir.to_str().unwrap()]);
    let reactor = Reactor::new().unwrap();
    let client = Client::new(&reactor);

    // http.server speaks HTTP/1.0, one request per connection.
    let r = client
        .get(&peer.url("/hello.txt"))
        .wait()
        .expect("GET hello.txt");
    assert_eq!(r.status(), 200);
    assert_eq!(r.version().as_str(), "HTTP/1.0");
    assert_eq!(r.text(), "hello from http.server\n");
    assert!(r.headers().get("server").unwrap().contains("Python"));

    let r = client
        .get(&peer.url("/data.bin"))
        .wait()
        .expect("GET data.bin");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("content-length"), Some("70000"));
    assert_eq!(r.body(), file.as_slice());

    // A body without Content-Length, ended by the server closing the connection.
    let r = client
        .get(&peer.url("/nolength"))
        .wait()
        .expect("GET /nolength");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "no length, ended by close\n");

    let body = pattern(20_000);
    let r = client
        .post(&peer.url("/echo"), body.clone())
        .wait()
        .expect("POST /echo");
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), body.as_slice());

    let r = client
        .get(&peer.url("/missing.txt"))
        .wait()
        .expect("GET 404");
    assert_eq!(r.status(), 404);

    let r = client
        .request("HEAD", &peer.url("/hello.txt"), Headers::new(), Vec::new())
        .wait()
        .expect("HEAD");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("content-length"), Some("23"));
    assert!(r.body().is_empty());

    drop(peer);
    let _ = std::fs::remove_dir_all(&dir);
}
