//! Every design of `architecture_server` answers the experiment's requests: each reply is
//! its request (scheduled time and job echoed), in order per connection, stamped with a
//! worker index; over loopback, every step bounded by a timeout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ropewalk_bench::jobs::{JobKind, Request, WIRE_LEN};

const DESIGNS: &[&str] = &[
    "one",
    "own",
    "shared",
    "dispatcher",
    "dispatcher-ll",
    "two-stage",
    "threads",
    "pool",
    "tokio-mt",
];

/// Kills the server when the test ends, whatever happens.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(design: &str) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_architecture_server"))
        .args(["--impl", design, "--threads", "2", "--rounds-per-us", "1"])
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start architecture_server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("read the listening line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{design}: unexpected first line {line:?}"))
        .to_string();
    (Killed(child), addr)
}

#[test]
fn every_design_answers_in_order() {
    for design in DESIGNS {
        let (_server, addr) = start(design);
        for conn in 0..3u64 {
            let mut s = TcpStream::connect(&addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            // Pipelined: a spin, a sleep, a spin; the replies must come back in this order.
            let sent: Vec<Request> = [
                (JobKind::Spin, 20_000),
                (JobKind::Sleep, 200_000),
                (JobKind::Spin, 0),
            ]
            .iter()
            .enumerate()
            .map(|(i, &(kind, job_ns))| Request {
                sched_ns: conn * 100 + i as u64,
                job_ns,
                kind,
                worker: 0,
            })
            .collect();
            let bytes: Vec<u8> = sent.iter().flat_map(|r| r.encode()).collect();
            s.write_all(&bytes).expect("send");
            for want in &sent {
                let mut buf = [0u8; WIRE_LEN];
                s.read_exact(&mut buf)
                    .unwrap_or_else(|e| panic!("{design}: no reply: {e}"));
                let got = Request::decode(&buf);
                assert_eq!(
                    (got.sched_ns, got.job_ns, got.kind),
                    (want.sched_ns, want.job_ns, want.kind),
                    "{design}: wrong reply"
                );
                if *design != "threads" {
                    assert!(got.worker < 2, "{design}: worker {} of 2", got.worker);
                }
            }
        }
    }
}
