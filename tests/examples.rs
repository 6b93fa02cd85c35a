//! Every example, run as a user runs it: servers are started on a free loopback port,
//! talked to, and stopped with SIGTERM; scripts are checked by output and exit code.
//! (`cargo test` builds the examples before it runs this.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `kv_server`'s own socket-free test (`StringTransport` + `ManualClock`), compiled here
/// with the example's code so that `cargo test --workspace` runs it. (Marking the example
/// `test = true` instead would build it only as a test harness, and the binary the tests
/// below start would be missing on a fresh clone.) `cargo test --example kv_server` runs
/// it too.
#[path = "../examples/kv_server.rs"]
#[allow(dead_code)]
mod kv_server_example;

/// Where cargo put the example binaries (next to this test's `deps/` folder).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "example {name} not built at {}",
        path.display()
    );
    path
}

/// Runs a script example to completion, bounded in time.
fn run_script(name: &str, args: &[&str]) -> Output {
    run_script_with_log(name, args, None)
}

/// As [`run_script`], with `RUST_LOG` set to `log` (unset when `None`, whatever the test
/// runner has, so stderr holds only what the example itself prints).
fn run_script_with_log(name: &str, args: &[&str], log: Option<&str>) -> Output {
    let mut cmd = Command::new(example(name));
    cmd.args(args).env_remove("RUST_LOG");
    if let Some(filter) = log {
        cmd.env("RUST_LOG", filter);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn example");
    let (tx, rx) = mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
    });
    let mut out = Vec::new();
    let mut err = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_end(&mut err).unwrap();
    let status = child.wait().unwrap();
    let _ = tx.send(());
    Output {
        status,
        stdout: out,
        stderr: err,
    }
}

/// A running server example; stopped with SIGTERM when dropped.
struct Server {
    child: Option<Child>,
    addr: SocketAddr,
}

impl Server {
    fn start(name: &str, args: &[&str]) -> Server {
        let mut cmd = Command::new(example(name));
        cmd.args(args);
        Server::start_command(cmd)
    }

    /// As `start`, with a command made by the caller.
    fn start_command(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server printed its address in time");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .parse()
            .expect("an address");
        Server {
            child: Some(child),
            addr,
        }
    }

    /// Sends SIGTERM and checks the server exits cleanly, in time.
    fn stop(mut self) {
        let mut child = self.child.take().expect("running");
        let pid = child.id();
        Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(status) => {
                let status = status.unwrap();
                assert!(status.success(), "server exit status {status}");
            }
            Err(_) => {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
                panic!("server did not stop on SIGTERM");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns status and body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let status = head[9..12].parse().unwrap();
    (status, resp[split + 4..].to_vec())
}

#[test]
fn http_server_routes() {
    let server = Server::start("http_server", &["--port", "0"]);
    let addr = server.addr;
    assert_eq!(
        http(addr, "GET", "/", b""),
        (200, b"Hello, World!\n".to_vec())
    );
    assert_eq!(
        http(addr, "POST", "/echo", b"rope"),
        (200, b"rope".to_vec())
    );
    let (status, body) = http(addr, "GET", "/delay?ms=30", b"");
    assert_eq!((status, body.as_slice()), (200, &b"waited 30 ms\n"[..]));
    let (status, body) = http(addr, "GET", "/thread?ms=5", b"");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).starts_with("worked 5 ms on"));
    assert_eq!(http(addr, "GET", "/delay?ms=abc", b"").0, 400);
    assert_eq!(http(addr, "GET", "/nowhere", b"").0, 404);
    assert_eq!(http(addr, "DELETE", "/", b"").0, 405);
    server.stop();
}

/// Reads from `s` until the peer closes, with `s`'s read timeout as the bound: what was
/// read, or `None` if the bound passed first.
fn read_until_closed(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(got),
            Err(_) => return None,
        }
    }
}

#[test]
fn http_server_timeouts_from_the_command_line() {
    let server = Server::start(
        "http_server",
        &[
            "--port",
            "0",
            "--idle-timeout",
            "0.3",
            "--request-timeout",
            "0.3",
        ],
    );
    // Idle after a keep-alive response: closed by the server (the default is 60 s).
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let got = read_until_closed(&mut s).expect("the idle connection was closed in time");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\nHello, World!\n"),
        "one response only: {text}"
    );
    // A request head that stops part way: 408, then closed (the default is 30 s).
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: te").unwrap();
    let got = read_until_closed(&mut s).expect("the stalled request was ended in time");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    server.stop();
}

#[test]
fn http_server_rejects_a_bad_timeout() {
    for args in [
        &["--idle-timeout", "soon"][..],
        &["--request-timeout", "0"],
        &["--idle-timeout", "-1"],
        &["--idle-timeout"],
    ] {
        let out = run_script("http_server", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(args[0]), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: never listened");
    }
}

#[test]
fn tcp_proxy_forwards_to_the_http_server() {
    let backend = Server::start("http_server", &["--port", "0"]);
    let to = backend.addr.to_string();
    let proxy = Server::start("tcp_proxy", &["--port", "0", "--to", &to]);
    assert_eq!(
        http(proxy.addr, "GET", "/", b""),
        (200, b"Hello, World!\n".to_vec())
    );
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(http(proxy.addr, "POST", "/echo", &big), (200, big));
    proxy.stop();
    backend.stop();
}

#[test]
fn tcp_proxy_refuses_bad_arguments() {
    let out = run_script("tcp_proxy", &["--port", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--to HOST:PORT is required"));
    for to in [
        "127.0.0.1:abc",
        "127.0.0.1",
        ":8080",
        "127.0.0.1:0",
        "127.0.0.1:70000",
    ] {
        let out = run_script("tcp_proxy", &["--port", "0", "--to", to]);
        assert_eq!(out.status.code(), Some(2), "--to {to}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("expected HOST:PORT"), "--to {to}: {err}");
    }
}

#[test]
fn multicore_echo_refuses_zero_threads() {
    for n in ["0", "-1", "many"] {
        let out = run_script("multicore_echo", &["--port", "0", "--threads", n]);
        assert_eq!(out.status.code(), Some(2), "--threads {n}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad thread count"), "--threads {n}: {err}");
    }
}

#[test]
fn pattern_event_queue_prints_the_dispatch_order() {
    let out = run_script("pattern_event_queue", &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let order = [
        "before the reactor runs: [\"thermostat target is now 22\"]",
        "display shows Reading(21.5)",
        "display shows Reading(31.0)",
        "fan switched on",
        "display shows Alarm(\"door open\")",
        "siren: door open",
    ];
    let mut at = 0;
    for line in order {
        let found = text[at..]
            .find(line)
            .unwrap_or_else(|| panic!("{line:?} missing in\n{text}"));
        at += found + line.len();
    }
}

#[test]
fn pattern_closures_runs_timer_and_connection() {
    let out = run_script("pattern_closures", &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "client: got welcome",
        "server: got \"hello\"",
        "client: got bye",
        "timer: 50 ms passed",
        "done",
    ] {
        assert!(text.contains(line), "{line:?} missing in\n{text}");
    }
}

#[test]
fn pattern_deferred_shows_callbacks_errbacks_and_timeouts() {
    let out = run_script("pattern_deferred", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1. connected, then waited 20 ms"), "{text}");
    assert!(text.contains("2. refused, as expected"), "{text}");
    assert!(text.contains("3. deferred timed out after 30ms"), "{text}");
}

#[test]
fn echo_client_reports_a_refused_connection() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let out = run_script("echo_client", &["--port", &free, "hello"]);
    assert_eq!(out.status.code(), Some(1));
    // One clean line that names the address: no "Unhandled error in Deferred" log.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err,
        format!("echo_client: 127.0.0.1:{free}: connection refused\n"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn pattern_coop_runs_the_udp_server_and_clients_as_tasks() {
    let out = run_script("pattern_coop", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["alpha", "beta", "gamma"] {
        assert!(
            text.contains(&format!("server: {name:?} from a client")),
            "{text}"
        );
        assert!(
            text.contains(&format!("client got: response to {name}")),
            "{text}"
        );
    }
}

#[test]
fn http_server_fetch_and_static_files() {
    let root = std::env::temp_dir().join(format!("ropewalk-example-root-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("hello.txt"), b"static hello\n").unwrap();
    let backend = Server::start("http_server", &["--port", "0"]);
    let root_arg = root.to_str().unwrap().to_string();
    let server = Server::start("http_server", &["--port", "0", "--root", &root_arg]);
    assert_eq!(
        http(server.addr, "GET", "/static/hello.txt", b""),
        (200, b"static hello\n".to_vec())
    );
    assert_eq!(
        http(server.addr, "GET", "/static/../Cargo.toml", b"").0,
        403
    );
    let url = format!("/fetch?url=http://{}/", backend.addr);
    let (status, body) = http(server.addr, "GET", &url, b"");
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&body).contains("Hello, World!"),
        "{body:?}"
    );
    let (status, _) = http(server.addr, "GET", "/fetch?url=http://127.0.0.1:1/", b"");
    assert_eq!(status, 502);
    server.stop();
    backend.stop();
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn http_get_prints_the_response_and_fails_clearly() {
    let server = Server::start("http_server", &["--port", "0"]);
    let url = format!("http://{}/", server.addr);
    let out = run_script("http_get", &[&url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("Hello, World!"), "{text}");
    server.stop();
    let out = run_script("http_get", &["http://127.0.0.1:1/"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!out.stderr.is_empty());
    let out = run_script("http_get", &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn http_get_with_bad_arguments_prints_its_usage() {
    for args in [
        &["a", "b"][..],
        &["http://127.0.0.1:1/", "http://127.0.0.1:2/"],
        &["a"],
        &["ftp://example.test/"],
        &["--verbose", "http://127.0.0.1:1/"],
    ] {
        let out = run_script("http_get", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("usage: http_get [--cacert FILE] URL"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// Every example, with the arguments each takes: a port option, or none at all.
const SERVERS: [&str; 5] = [
    "chat_server",
    "echo_server",
    "http_server",
    "multicore_echo",
    "tcp_proxy",
];
const NO_ARGUMENTS: [&str; 4] = [
    "pattern_closures",
    "pattern_coop",
    "pattern_deferred",
    "pattern_event_queue",
];

/// Runs `name args` and checks it refused them: exit 2, the reason and the usage on
/// stderr, nothing on stdout (no server started listening).
fn assert_refused(name: &str, args: &[&str], reason: &str) {
    let out = run_script(name, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {err}");
    assert!(
        err.contains(reason),
        "{name} {args:?}: no {reason:?} in {err}"
    );
    assert!(
        err.contains("usage: "),
        "{name} {args:?}: no usage in {err}"
    );
    assert!(out.stdout.is_empty(), "{name} {args:?}");
}

#[test]
fn every_example_refuses_an_unknown_option_a_missing_value_and_a_bad_port() {
    for name in SERVERS {
        // tcp_proxy needs a valid --to for the other checks to be reached.
        let to: &[&str] = if name == "tcp_proxy" {
            &["--to", "127.0.0.1:9"]
        } else {
            &[]
        };
        let with =
            |extra: &[&'static str]| -> Vec<&str> { to.iter().chain(extra).copied().collect() };
        assert_refused(name, &with(&["--bogus"]), "unknown option: --bogus");
        assert_refused(name, &with(&["--port"]), "--port needs a value");
        for port in ["abc", "70000", "-1"] {
            assert_refused(name, &with(&["--port", port]), "bad port");
        }
    }
    for args in [
        &["--bogus", "hi"][..],
        &["--port"],
        &["--port", "x", "hi"],
        &["--port", "0", "hi"],
        &[],
    ] {
        let out = run_script("echo_client", args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "echo_client {args:?}: {err}");
        assert!(err.contains("usage: echo_client"), "{args:?}: {err}");
    }
    for name in NO_ARGUMENTS {
        assert_refused(name, &["--bogus"], "unexpected argument \"--bogus\"");
        assert_refused(name, &["extra"], "unexpected argument \"extra\"");
    }
}

#[test]
fn every_server_names_the_address_it_cannot_bind() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    for name in SERVERS {
        let mut args = vec!["--port", &port];
        if name == "tcp_proxy" {
            args.extend(["--to", "127.0.0.1:9"]);
        }
        let out = run_script(name, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
            "{name}: {err}"
        );
        assert!(out.stdout.is_empty(), "{name}: printed `listening on`");
    }
}

#[test]
fn examples_install_a_logger_and_rust_log_debug_shows_the_reactor() {
    for name in NO_ARGUMENTS {
        let out = run_script_with_log(name, &[], Some("debug"));
        assert!(out.status.success(), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("DEBUG ropewalk_reactor"), "{name}: {err}");
    }
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let port = free.port().to_string();
    let out = run_script_with_log("echo_client", &["--port", &port, "hi"], Some("debug"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("connecting to {free}")), "{err}");
    let clients = ["echo_client", "http_get"];
    for name in SERVERS.iter().chain(&NO_ARGUMENTS).chain(&clients) {
        let module = include_str_of(name);
        assert!(
            module.contains("env_logger::init()"),
            "{name} installs no logger"
        );
        assert!(
            module.contains("`RUST_LOG=debug`"),
            "{name}'s doc does not say RUST_LOG=debug"
        );
    }
}

/// The source of an example, for what its documentation promises.
fn include_str_of(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}.rs"));
    std::fs::read_to_string(path).expect("the example's source")
}

/// Reads lines from `s` until one contains `want` (bounded by the socket's read timeout).
fn read_until(r: &mut BufReader<TcpStream>, want: &str) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).expect("a line before the timeout");
        assert!(n > 0, "connection closed before {want:?}; got {seen:?}");
        seen.push_str(&line);
        if line.contains(want) {
            return line;
        }
    }
}

fn chat_client(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

/// Two members in the room, welcomed, the first told of the second.
type Member = (TcpStream, BufReader<TcpStream>);
fn two_chat_members(addr: SocketAddr) -> (Member, Member) {
    let (a, mut ar) = chat_client(addr);
    read_until(&mut ar, "welcome");
    let (b, mut br) = chat_client(addr);
    read_until(&mut br, "welcome");
    read_until(&mut ar, "joined");
    ((a, ar), (b, br))
}

#[test]
fn chat_server_broadcasts_between_clients() {
    let server = Server::start("chat_server", &["--port", "0"]);
    let ((mut a, mut ar), (mut b, mut br)) = two_chat_members(server.addr);
    a.write_all(b"/nick alice\r\n").unwrap();
    read_until(&mut ar, "you are now alice");
    read_until(&mut br, "is now alice");
    a.write_all(b"hello bob\r\n").unwrap();
    assert!(read_until(&mut br, "hello bob").contains("<alice> hello bob"));
    b.write_all(b"/nick alice\r\n").unwrap();
    read_until(&mut br, "that name is taken");
    b.write_all(b"/quit\r\n").unwrap();
    read_until(&mut br, "bye");
    read_until(&mut ar, "left");
    a.write_all(b"/quit\r\n").unwrap();
    read_until(&mut ar, "bye");
    server.stop();
}

/// nc sends LF, not CRLF: two lines in one packet must stay two lines.
#[test]
fn chat_server_takes_lf_lines_as_nc_sends_them() {
    let server = Server::start("chat_server", &["--port", "0"]);
    let ((mut a, mut ar), (mut b, mut br)) = two_chat_members(server.addr);
    a.write_all(b"/nick alice\nhello bob\n").unwrap();
    read_until(&mut ar, "you are now alice");
    assert!(read_until(&mut br, "hello bob").contains("<alice> hello bob"));
    // CRLF (telnet) still works, and mixes with LF.
    b.write_all(b"/nick bob\r\nhi alice\n").unwrap();
    assert!(read_until(&mut ar, "hi alice").contains("<bob> hi alice"));
    a.write_all(b"/quit\n").unwrap();
    read_until(&mut ar, "bye");
    server.stop();
}

#[test]
fn echo_server_echoes_tcp_after_half_close_and_udp_whole() {
    let server = Server::start("echo_server", &["--port", "0"]);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let data: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    s.write_all(&data).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(
        back, data,
        "RFC 862: everything sent before the half-close comes back"
    );

    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let big = vec![7u8; 65_507];
    udp.send_to(&big, server.addr).unwrap();
    let mut buf = vec![0u8; 70_000];
    let (n, _) = udp.recv_from(&mut buf).unwrap();
    assert_eq!(n, big.len());

    let out = run_script(
        "echo_client",
        &["--port", &server.addr.port().to_string(), "hi", "there"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi there");
    server.stop();
}

#[test]
fn multicore_echo_echoes_on_every_reactor_in_every_mode() {
    for mode in ["own", "shared", "dispatcher", "dispatcher:least-loaded"] {
        let server = Server::start(
            "multicore_echo",
            &["--port", "0", "--threads", "2", "--mode", mode],
        );
        let mut streams: Vec<TcpStream> = (0..50)
            .map(|_| {
                let s = TcpStream::connect(server.addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s
            })
            .collect();
        for (i, s) in streams.iter_mut().enumerate() {
            s.write_all(format!("ping {i:02}").as_bytes()).unwrap();
        }
        for (i, s) in streams.iter_mut().enumerate() {
            let mut back = [0u8; 7];
            s.read_exact(&mut back).unwrap();
            assert_eq!(back, format!("ping {i:02}").as_bytes(), "{mode}");
        }
        drop(streams);
        server.stop();
    }
    let out = run_script("multicore_echo", &["--mode", "sideways"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A port nothing listens on (bound, then closed).
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The three newcomer programs (the guide's table) fail with one clean message.
fn assert_one_clean_error(out: &Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(want), "{err}");
    assert!(!err.contains("Unhandled error"), "{err}");
}

#[test]
fn kv_server_answers_get_from_a_timer_after_set() {
    let server = Server::start("kv_server", &["--port", "0"]);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"SET a 1 2\r\nGET a\r\nGET b\r\nDEL a\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let lines: Vec<String> = (0..4)
        .map(|_| {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            line
        })
        .collect();
    // SET and the bad line answer at once; the GETs when their timers fire.
    assert_eq!(lines, ["OK\r\n", "ERR\r\n", "1 2\r\n", "NOT FOUND\r\n"]);
    server.stop();
    let out = run_script("kv_server", &["--port", "x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad port: x"));
}

#[test]
fn line_client_asks_one_line_and_fails_clearly() {
    let server = Server::start("kv_server", &["--port", "0"]);
    let by_name = format!("localhost:{}", server.addr.port());
    let out = run_script("line_client", &[&by_name, "SET k v"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"OK\n");
    let out = run_script("line_client", &[&server.addr.to_string(), "GET k"]);
    assert_eq!(out.stdout, b"v\n", "{out:?}");
    server.stop();
    let refused = run_script("line_client", &[&free_port().to_string(), "GET k"]);
    assert_one_clean_error(&refused, "line_client: connection refused");
    assert_one_clean_error(&run_script("line_client", &["x"]), "usage: line_client");
}

#[test]
fn fetch_two_gathers_both_responses_and_fails_clearly() {
    let server = Server::start("http_server", &["--port", "0"]);
    let (a, b) = (
        format!("http://{}/", server.addr),
        format!("http://{}/missing", server.addr),
    );
    let out = run_script("fetch_two", &[&a, &b]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with(&format!("{a}: 200 (")), "{text}");
    assert!(lines[1].starts_with(&format!("{b}: 404 (")), "{text}");
    server.stop();
    let refused = format!("http://{}/", free_port());
    let out = run_script("fetch_two", &[&a, &refused]);
    assert_one_clean_error(&out, "connection refused");
}

/// A fresh directory holding a certificate and key for `localhost` (PEM), signed by the
/// test CA returned; the directory, the CA, and the two paths.
fn tls_files(name: &str) -> (PathBuf, ropewalk_testkit::pki::TestCa, String, String) {
    let dir = std::env::temp_dir().join(format!("ropewalk-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = ropewalk_testkit::pki::TestCa::new();
    let (cert, key) = ca.leaf(&["localhost"]).write_to(&dir).unwrap();
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    (dir, ca, path(cert), path(key))
}

/// A TLS client configuration trusting `ca` only.
fn trusting(
    ca: &ropewalk_testkit::pki::TestCa,
) -> std::sync::Arc<ropewalk::reactor::tls::rustls::ClientConfig> {
    ropewalk::reactor::tls::TlsClientBuilder::new()
        .without_default_roots()
        .add_root_pem(ca.pem().as_bytes())
        .unwrap()
        .build()
        .unwrap()
}

/// `http_server --tls-cert FILE --tls-key FILE` serves HTTPS (checked with our TLS client
/// and with `http_get --cacert`, trusting the test CA); the flags go together, and a
/// missing file is named.
#[test]
fn http_server_serves_https_with_tls_cert_and_key() {
    use ropewalk::deferred::Failure;
    use ropewalk::reactor::{Address, Protocol, Reactor, TransportRef};
    use std::cell::RefCell;
    use std::rc::Rc;

    struct Get(Rc<RefCell<Vec<u8>>>);
    impl Protocol for Get {
        fn connection_made(&mut self, t: TransportRef) {
            t.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        }
        fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
            self.0.borrow_mut().extend_from_slice(data);
            Ok(())
        }
    }

    let (dir, ca, cert, key) = tls_files("https-example");
    let (cert, key) = (cert.as_str(), key.as_str());

    let server = Server::start(
        "http_server",
        &["--port", "0", "--tls-cert", cert, "--tls-key", key],
    );
    let reactor = Reactor::new().unwrap();
    let config = trusting(&ca);
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let conn = reactor
        .connect_tls(
            server.addr,
            "localhost",
            move |_: &Address| Some(Get(g.clone())),
            config,
        )
        .wait()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&got.borrow()).contains("Hello, World!") {
        assert!(std::time::Instant::now() < deadline, "no response");
        reactor.iterate(Duration::from_millis(20));
    }
    assert!(got.borrow().starts_with(b"HTTP/1.1 200 OK\r\n"));
    drop(conn);

    // http_get --cacert (curl's flag) trusts the test CA; without it, the default roots
    // do not, and the error says why.
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let url = format!("https://localhost:{}/", server.addr.port());
    let out = run_script("http_get", &["--cacert", ca_file.to_str().unwrap(), &url]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("Hello, World!"), "{text}");
    let out = run_script("http_get", &[&url]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown issuer"), "{err}");
    server.stop();

    let out = run_script("http_server", &["--port", "0", "--tls-cert", cert]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("go together"));
    let missing = dir.join("missing.pem");
    let missing = missing.to_str().unwrap();
    let out = run_script(
        "http_server",
        &["--port", "0", "--tls-cert", missing, "--tls-key", key],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.pem"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `echo_server --tls-cert FILE --tls-key FILE` echoes over TLS, past the client's
/// half-close (its close_notify), then closes cleanly.
#[test]
fn echo_server_echoes_over_tls() {
    use ropewalk::deferred::Failure;
    use ropewalk::reactor::{Address, ConnectionError, Protocol, Reactor, TransportRef};
    use std::cell::RefCell;
    use std::rc::Rc;

    #[derive(Default)]
    struct Seen {
        data: RefCell<Vec<u8>>,
        lost: RefCell<Option<Failure>>,
    }
    struct Say(Rc<Seen>);
    impl Protocol for Say {
        fn connection_made(&mut self, t: TransportRef) {
            t.write(b"hello over tls");
            t.half_close();
        }
        fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
            self.0.data.borrow_mut().extend_from_slice(data);
            Ok(())
        }
        fn connection_lost(&mut self, reason: Failure) {
            *self.0.lost.borrow_mut() = Some(reason);
        }
    }

    let (dir, ca, cert, key) = tls_files("tls-echo");
    let (cert, key) = (cert.as_str(), key.as_str());
    let server = Server::start(
        "echo_server",
        &["--port", "0", "--tls-cert", cert, "--tls-key", key],
    );
    let reactor = Reactor::new().unwrap();
    let config = trusting(&ca);
    let seen = Rc::new(Seen::default());
    let s = seen.clone();
    reactor
        .connect_tls(
            server.addr,
            "localhost",
            move |_: &Address| Some(Say(s.clone())),
            config,
        )
        .wait()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while seen.lost.borrow().is_none() {
        assert!(std::time::Instant::now() < deadline, "no close");
        reactor.iterate(Duration::from_millis(20));
    }
    assert_eq!(&seen.data.borrow()[..], b"hello over tls");
    let reason = seen.lost.borrow_mut().take().unwrap();
    assert!(
        reason
            .downcast_ref::<ConnectionError>()
            .is_some_and(|e| e.is_clean()),
        "{reason}"
    );
    server.stop();
    let out = run_script("echo_server", &["--port", "0", "--tls-key", key]);
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends two pipelined requests in one write — `/` and a slow `/delay` — and reads the
/// first response: once it is back, the server has read the slow request too (it parses
/// every complete request in what it reads). Returns the stream, positioned after the
/// first response.
fn start_slow_request(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: test\r\n\r\nGET /delay?ms=400 HTTP/1.1\r\nHost: test\r\n\r\n",
    )
    .unwrap();
    let first = b"Hello, World!\n";
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(first) {
        let n = s.read(&mut byte).expect("the first response");
        assert_eq!(n, 1, "closed early: {}", String::from_utf8_lossy(&got));
        got.push(byte[0]);
    }
    s
}

/// SIGTERM mid-request: the server drains (the slow request is answered in full, with
/// `Connection: close`) and exits 0 — on one reactor and on a group, in every accept mode.
#[test]
fn http_server_drains_on_sigterm() {
    for args in [
        &["--port", "0"][..],
        &["--port", "0", "--reactors", "2", "--accept", "per-reactor"],
        &["--port", "0", "--reactors", "2", "--accept", "shared"],
        &["--port", "0", "--reactors", "2", "--accept", "dispatcher"],
        &[
            "--port",
            "0",
            "--reactors",
            "2",
            "--accept",
            "dispatcher:least-loaded",
        ],
    ] {
        let server = Server::start("http_server", args);
        let mut s = start_slow_request(server.addr);
        server.stop(); // SIGTERM; asserts exit status 0 within 5 s
        let rest = read_until_closed(&mut s).expect("closed after the drain");
        let text = String::from_utf8_lossy(&rest);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{args:?}: {text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("\r\nconnection: close\r\n"),
            "{args:?}: {text}"
        );
        assert!(
            text.ends_with("\r\n\r\nwaited 400 ms\n"),
            "{args:?}: {text}"
        );
    }
}

/// A second SIGTERM during the drain stops the server at once, long before the drain's
/// deadline.
#[test]
fn http_server_second_sigterm_stops_at_once() {
    let server = Server::start("http_server", &["--port", "0", "--drain-timeout", "60"]);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: test\r\n\r\nGET /delay?ms=10000 HTTP/1.1\r\nHost: test\r\n\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"Hello, World!\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1);
        got.push(byte[0]);
    }
    let pid = server.child.as_ref().unwrap().id().to_string();
    // The first starts the drain, which waits for the 10 s request; the second ends it.
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let started = std::time::Instant::now();
    server.stop(); // a third; asserts exit 0 within 5 s
    assert!(started.elapsed() < Duration::from_secs(5));
    let rest = read_until_closed(&mut s).expect("closed");
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}

#[test]
fn http_server_rejects_bad_group_flags() {
    for args in [
        &["--reactors", "0"][..],
        &["--reactors", "many"],
        &["--reactors"],
        &["--accept", "sideways"],
        &["--accept", "dispatcher:fastest"],
        &["--reactors", "2", "--accept"],
    ] {
        let out = run_script("http_server", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("usage: http_server"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: never listened");
    }
}

/// `echo_server --reactors 2` in every accept mode: TCP echo on many connections at once
/// and UDP, then a clean stop on SIGTERM; bad flags exit 2 with the usage.
#[test]
fn echo_server_runs_a_group_in_every_accept_mode() {
    for mode in [
        "per-reactor",
        "shared",
        "dispatcher",
        "dispatcher:round-robin",
        "dispatcher:least-loaded",
    ] {
        let server = Server::start(
            "echo_server",
            &["--port", "0", "--reactors", "2", "--accept", mode],
        );
        let mut streams: Vec<TcpStream> = (0..20)
            .map(|_| {
                let s = TcpStream::connect(server.addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s
            })
            .collect();
        for (i, s) in streams.iter_mut().enumerate() {
            s.write_all(format!("echo {i:02}").as_bytes()).unwrap();
        }
        for (i, s) in streams.iter_mut().enumerate() {
            let mut back = [0u8; 7];
            s.read_exact(&mut back).unwrap();
            assert_eq!(back, format!("echo {i:02}").as_bytes(), "{mode}");
        }
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        udp.send_to(b"datagram", server.addr).unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = udp.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"datagram", "{mode}");
        drop(streams);
        server.stop();
    }
    for args in [
        &["--reactors", "0"][..],
        &["--accept", "dispatch"],
        &["--accept", "dispatcher:random"],
    ] {
        let out = run_script("echo_server", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: echo_server"));
    }
}

/// A listening socket the test binds, inherited by the child it spawns with `spawn`:
/// close-on-exec is cleared only around the spawn.
fn spawn_inheriting(listener: &std::net::TcpListener, spawn: impl FnOnce() -> Server) -> Server {
    let sock = socket2::SockRef::from(listener);
    sock.set_cloexec(false).unwrap();
    let server = spawn();
    sock.set_cloexec(true).unwrap();
    server
}

/// The server serves on a socket it inherits, named by `--listen-fd N` or passed as
/// systemd does (at descriptor 3, with `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`),
/// and drains and exits 0 on SIGTERM.
#[test]
fn http_server_serves_on_an_inherited_socket() {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fd = listener.as_raw_fd().to_string();

    let server = spawn_inheriting(&listener, || {
        Server::start("http_server", &["--listen-fd", &fd])
    });
    assert_eq!(server.addr, addr);
    assert_eq!(
        http(addr, "GET", "/", b""),
        (200, b"Hello, World!\n".to_vec())
    );
    server.stop();

    // systemd: the socket at descriptor 3, and LISTEN_PID the server's own pid (the
    // shell's, which `exec` keeps).
    let server = spawn_inheriting(&listener, || {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("exec 3<&\"$FD\"; LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=http exec \"$0\"")
            .arg(example("http_server"))
            .env("FD", &fd);
        Server::start_command(cmd)
    });
    assert_eq!(server.addr, addr);
    assert_eq!(
        http(addr, "GET", "/", b""),
        (200, b"Hello, World!\n".to_vec())
    );
    server.stop();

    // Not a listening socket, or not open: a clear error, exit status 1.
    for bad in ["1", "999"] {
        let out = run_script("http_server", &["--listen-fd", bad]);
        assert_ne!(out.status.code(), Some(0), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--listen-fd"),
            "{bad}"
        );
    }
}
