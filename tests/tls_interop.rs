//! TLS interop with OpenSSL, over 127.0.0.1: `openssl s_client` against our TLS echo
//! server, and our TLS client against `openssl s_server -www`; in both directions a wrong
//! host name and an untrusted certificate are refused. Certificates come from a CA made
//! at test time (`ropewalk_testkit::pki`).
//!
//! The peer is the `openssl` command: without it a plain `cargo test` skips these tests
//! loudly, and `ROPEWALK_REQUIRE_PEERS=1` (set by `.ci/run`, which installs it) makes
//! that a failure. Every subprocess is killed if it outlives its bound.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use ropewalk::deferred::Failure;
use ropewalk::reactor::tls::{TlsClientBuilder, TlsError, TlsServerBuilder};
use ropewalk::reactor::{Address, ListeningPort, Protocol, Reactor, ReactorHandle, TransportRef};
use ropewalk_testkit::peers::require;
use ropewalk_testkit::pki::TestCa;

/// The longest any subprocess may run.
const BOUND: Duration = Duration::from_secs(60);

fn have_openssl() -> bool {
    require(
        "openssl",
        &["openssl", "version"],
        "apt-get update && apt-get install -y openssl",
    )
}

/// A directory of this test's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ropewalk-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, file: &str, text: &str) -> String {
        let path = self.0.join(file);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills `child` unless `done` says it finished within [`BOUND`].
fn watchdog(child: &Child) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        if rx.recv_timeout(BOUND) == Err(mpsc::RecvTimeoutError::Timeout) {
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
    });
    tx
}

/// Runs `program args` with `input` on its standard input, to its end (bounded).
fn run(program: &str, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let done = watchdog(&child);
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    let _ = writer.join();
    out
}

fn openssl(args: &[&str], input: &[u8]) -> Output {
    run("openssl", args, input)
}

fn curl(args: &[&str], input: &[u8]) -> Output {
    run("curl", args, input)
}

/// A reactor on its own thread, serving what `listen` sets up on it; stopped and joined
/// when dropped.
struct ServerThread {
    addr: SocketAddr,
    handle: ReactorHandle,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    fn start(listen: impl FnOnce(&Reactor) -> ListeningPort + Send + 'static) -> ServerThread {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let reactor = Reactor::new().expect("reactor");
            let port = listen(&reactor);
            tx.send((port.local_addr().inet().unwrap(), reactor.handle()))
                .unwrap();
            reactor.run().expect("reactor run");
        });
        let (addr, handle) = rx.recv_timeout(BOUND).expect("server started");
        ServerThread {
            addr,
            handle,
            thread: Some(thread),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Our TLS echo server, on its own reactor thread.

/// Echoes each chunk; a chunk ending in `quit\n` closes the connection (close_notify).
struct Echo(Option<TransportRef>);

impl Protocol for Echo {
    fn connection_made(&mut self, t: TransportRef) {
        self.0 = Some(t);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        let t = self.0.as_ref().unwrap();
        t.write(data);
        if data.ends_with(b"quit\n") {
            t.lose_connection();
        }
        Ok(())
    }
}

/// Our TLS echo server with this certificate and key.
fn echo_server(cert_pem: &str, key_pem: &str) -> ServerThread {
    let config = TlsServerBuilder::from_pem(cert_pem.as_bytes(), key_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    ServerThread::start(move |reactor| {
        reactor
            .listen_tls(
                ([127, 0, 0, 1], 0).into(),
                |_: &Address| Some(Echo(None)),
                config,
            )
            .expect("listen")
    })
}

/// `openssl s_client` to `server` as `name`, trusting `ca_file`, sending `hello`.
fn s_client(server: &ServerThread, ca_file: &str, name: &str, extra: &[&str]) -> Output {
    let connect = server.addr.to_string();
    let mut args = vec![
        "s_client",
        "-connect",
        &connect,
        "-servername",
        name,
        "-verify_hostname",
        name,
        "-CAfile",
        ca_file,
        "-verify_return_error",
        "-quiet",
    ];
    args.extend_from_slice(extra);
    openssl(&args, b"hello over tls\nquit\n")
}

#[test]
fn openssl_s_client_talks_to_our_tls_echo() {
    if !have_openssl() {
        return;
    }
    let dir = TempDir::new("s-client");
    let ca = TestCa::new();
    let ca_file = dir.write("ca.pem", &ca.pem());
    let leaf = ca.leaf(&["localhost", "127.0.0.1"]);
    let server = echo_server(&leaf.cert_pem, &leaf.key_pem);
    for version in ["-tls1_3", "-tls1_2"] {
        let out = s_client(&server, &ca_file, "localhost", &[version]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "s_client {version} failed ({}): {stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout, "hello over tls\nquit\n", "{version}");
    }
}

#[test]
fn openssl_s_client_refuses_a_wrong_name_or_an_untrusted_ca() {
    if !have_openssl() {
        return;
    }
    let dir = TempDir::new("s-client-refuses");
    let ca = TestCa::new();
    let other_file = dir.write("other.pem", &TestCa::new().pem());
    let ca_file = dir.write("ca.pem", &ca.pem());
    let leaf = ca.leaf(&["localhost"]);
    let server = echo_server(&leaf.cert_pem, &leaf.key_pem);

    let out = s_client(&server, &other_file, "localhost", &[]);
    assert!(!out.status.success(), "untrusted CA accepted");
    assert!(out.stdout.is_empty(), "no data echoed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unable to get local issuer certificate"),
        "{err}"
    );

    let out = s_client(&server, &ca_file, "wrong.example", &[]);
    assert!(!out.status.success(), "wrong name accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hostname mismatch"), "{err}");

    // And the server is still fine.
    let out = s_client(&server, &ca_file, "localhost", &[]);
    assert!(out.status.success());
}

// ---------------------------------------------------------------------------------------
// Our client against `openssl s_server`.

/// `openssl s_server -www` on 127.0.0.1 with `leaf`; killed when dropped.
struct SServer {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl SServer {
    fn start(name: &str, cert_pem: &str, key_pem: &str) -> SServer {
        let dir = TempDir::new(name);
        let cert = dir.write("cert.pem", cert_pem);
        let key = dir.write("key.pem", key_pem);
        let mut child = Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                "127.0.0.1:0",
                "-cert",
                &cert,
                "-key",
                &key,
                "-www",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn openssl s_server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // "ACCEPT 127.0.0.1:PORT" once it listens; the rest is drained.
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("ACCEPT ") {
                    let _ = tx.send(a.to_string());
                    break;
                }
            }
            for _ in lines {}
        });
        let addr = match rx.recv_timeout(BOUND) {
            Ok(a) => a.parse().expect("an address"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("s_server did not print its address within {BOUND:?}");
            }
        };
        SServer {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Records what a client connection receives and how it ends.
#[derive(Default)]
struct Got {
    data: RefCell<Vec<u8>>,
    lost: RefCell<Option<Failure>>,
}

struct Recorder(Rc<Got>);

impl Protocol for Recorder {
    fn connection_made(&mut self, t: TransportRef) {
        t.write(b"GET / HTTP/1.0\r\n\r\n");
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        self.0.data.borrow_mut().extend_from_slice(data);
        Ok(())
    }

    fn connection_lost(&mut self, reason: Failure) {
        *self.0.lost.borrow_mut() = Some(reason);
    }
}

/// Our client to `addr` as `name`, trusting `ca`: the page, or the failure.
fn fetch(addr: SocketAddr, name: &str, ca: &TestCa) -> Result<String, Failure> {
    let reactor = Reactor::new().unwrap();
    let config = TlsClientBuilder::new()
        .without_default_roots()
        .add_root_pem(ca.pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let got = Rc::new(Got::default());
    let g = got.clone();
    let d = reactor.connect_tls(
        addr,
        name,
        move |_: &Address| Some(Recorder(g.clone())),
        config,
    );
    let _connected = d.wait()?;
    let deadline = std::time::Instant::now() + BOUND;
    while got.lost.borrow().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "s_server never closed"
        );
        reactor.iterate(Duration::from_millis(20));
    }
    let page = String::from_utf8_lossy(&got.data.borrow()).into_owned();
    Ok(page)
}

fn tls_error(r: Result<String, Failure>) -> String {
    match r {
        Ok(page) => panic!("fetched: {page}"),
        Err(f) => match f.downcast_ref::<TlsError>() {
            Some(e) => format!("{e:?}"),
            None => panic!("not a TLS error: {f}"),
        },
    }
}

#[test]
fn our_client_fetches_from_openssl_s_server() {
    if !have_openssl() {
        return;
    }
    let ca = TestCa::new();
    let leaf = ca.leaf(&["localhost"]);
    let server = SServer::start("s-server", &leaf.cert_pem, &leaf.key_pem);
    let page = fetch(server.addr, "localhost", &ca).unwrap();
    assert!(page.starts_with("HTTP/1.0 200 ok"), "{page}");
    assert!(page.contains("TLSv1.3"), "negotiated TLS 1.3: {page}");
}

#[test]
fn our_client_refuses_openssl_s_server_with_a_wrong_name_or_an_untrusted_ca() {
    if !have_openssl() {
        return;
    }
    let ca = TestCa::new();
    let leaf = ca.leaf(&["localhost"]);
    let server = SServer::start("s-server-refused", &leaf.cert_pem, &leaf.key_pem);
    let e = tls_error(fetch(server.addr, "wrong.example", &ca));
    assert_eq!(e, "NameMismatch");
    let e = tls_error(fetch(server.addr, "localhost", &TestCa::new()));
    assert_eq!(e, "UnknownIssuer");
}

// ---------------------------------------------------------------------------------------
// curl against our HTTPS server.

fn have_curl() -> bool {
    require(
        "curl",
        &["curl", "--version"],
        "apt-get update && apt-get install -y curl",
    )
}

/// Our `HttpServer` over TLS with this certificate and key.
fn https_server(cert_pem: &str, key_pem: &str) -> ServerThread {
    use ropewalk::protocols::http::{HttpServer, Request, Response, Site};
    let config = TlsServerBuilder::from_pem(cert_pem.as_bytes(), key_pem.as_bytes())
        .unwrap()
        .alpn(&[b"http/1.1"])
        .build()
        .unwrap();
    ServerThread::start(move |reactor| {
        let site = Site::new()
            .get("/", |_: Request| Ok(Response::text("Hello, TLS!\n")))
            .post("/echo", |req: Request| Ok(Response::bytes(req.into_body())));
        HttpServer::new(reactor, site)
            .listen_tls(reactor, ([127, 0, 0, 1], 0).into(), config)
            .expect("listen")
    })
}

#[test]
fn curl_fetches_from_our_https_server() {
    if !have_curl() {
        return;
    }
    let dir = TempDir::new("curl");
    let ca = TestCa::new();
    let ca_file = dir.write("ca.pem", &ca.pem());
    let leaf = ca.leaf(&["localhost"]);
    let server = https_server(&leaf.cert_pem, &leaf.key_pem);
    let port = server.addr.port();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = format!("https://localhost:{port}/");
    let echo = format!("https://localhost:{port}/echo");

    // Two requests on one kept-alive TLS connection, then a 2 MB body echoed back.
    let out = curl(
        &[
            "-sS",
            "--cacert",
            &ca_file,
            "--resolve",
            &resolve,
            "-w",
            "[%{http_code} %{num_connects} %{http_version}]",
            &url,
            &url,
        ],
        b"",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout, "Hello, TLS!\n[200 1 1.1]Hello, TLS!\n[200 0 1.1]",
        "second request reused the connection"
    );

    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let out = curl(
        &[
            "-sS",
            "--cacert",
            &ca_file,
            "--resolve",
            &resolve,
            "--data-binary",
            "@-",
            &echo,
        ],
        &body,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == body,
        "echoed body differs ({} bytes)",
        out.stdout.len()
    );

    // An untrusted CA, and a wrong name: refused by curl (exit 60).
    let other = dir.write("other.pem", &TestCa::new().pem());
    let out = curl(
        &["-sS", "--cacert", &other, "--resolve", &resolve, &url],
        b"",
    );
    assert_eq!(out.status.code(), Some(60), "untrusted CA");
    let wrong = format!("https://127.0.0.1:{port}/");
    let out = curl(&["-sS", "--cacert", &ca_file, &wrong], b"");
    assert_eq!(out.status.code(), Some(60), "certificate not for 127.0.0.1");
}

// ---------------------------------------------------------------------------------------
// Twisted's Agent against our HTTPS server.

fn have_twisted_tls() -> bool {
    require(
        "Twisted with TLS (python3 -c 'import twisted.web.client, OpenSSL, service_identity')",
        &[
            "python3",
            "-c",
            "import twisted.web.client, OpenSSL, service_identity",
        ],
        "python3 -m pip install 'twisted[tls]'",
    )
}

/// `tests/interop/twisted_https_agent.py` against `server`, trusting `ca_file`; its
/// lines.
fn twisted_agent(server: &ServerThread, ca_file: &str) -> Vec<String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop/twisted_https_agent.py")
        .to_string_lossy()
        .into_owned();
    let port = server.addr.port().to_string();
    let out = run("python3", &[&script, &port, ca_file], b"");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Twisted's `Agent` (browser-like policy: chain and host name checked) fetches, posts
/// and is told 404 through a persistent pool by our HTTPS server; trusting
/// another CA, it refuses the connection.
#[test]
fn twisted_agent_over_https_against_our_server() {
    if !have_twisted_tls() {
        return;
    }
    let dir = TempDir::new("twisted-agent");
    let ca = TestCa::new();
    let leaf = ca.leaf(&["localhost"]);
    let server = https_server(&leaf.cert_pem, &leaf.key_pem);

    let lines = twisted_agent(&server, &dir.write("ca.pem", &ca.pem()));
    let hello = hex(b"Hello, TLS!\n");
    let body: Vec<u8> = (0..256 * 256).map(|i| (i % 256) as u8).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0], format!("get1 200 {hello}"));
    assert_eq!(lines[1], format!("get2 200 {hello}"));
    assert_eq!(lines[2], format!("post 200 {}", hex(&body)));
    assert!(lines[3].starts_with("missing 404 "), "{}", lines[3]);

    let other = TestCa::new();
    let lines = twisted_agent(&server, &dir.write("other.pem", &other.pem()));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("refused "), "{}", lines[0]);
}
