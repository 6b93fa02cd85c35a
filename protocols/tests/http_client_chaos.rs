//! Bad responses, generated: mutated HTTP responses (bytes flipped, inserted, deleted,
//! duplicated, lines broken, fields stretched) sent by a raw TCP server on loopback to our
//! client, each once in one write and once in random pieces. Deterministic (fixed seed).
//!
//! For every response the client must not panic, must finish (the server closes after
//! each response, so nothing may end in a timeout), and must reach the same outcome —
//! the same status and body, or an error — however the bytes were split.
//!
//! Twisted: none directly; the client-side counterpart of `http_chaos.rs`, in the spirit of
//! `web/test/test_webclient.py`'s malformed-response cases run over many inputs.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use ropewalk_protocols::http::{Client, ClientConfig, ClientError};
use ropewalk_reactor::Reactor;
use ropewalk_testkit::chaos::{mutate, Rng};

/// Valid responses the mutations start from.
const SEEDS: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nT: t\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the close",
    b"HTTP/1.0 200 OK\r\n\r\nold style",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nnah",
];

/// Fields that stress response framing.
const FIELDS: &[&[u8]] = &[
    b"Content-Length: 3\r\n",
    b"Content-Length: -1\r\n",
    b"Content-Length: 18446744073709551616\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip, chunked\r\n",
    b"Connection: close\r\n",
    b" folded\r\n",
];

/// What one request ended with.
#[derive(Debug, PartialEq)]
enum Outcome {
    Response(u16, Vec<u8>),
    Error,
}

const CASES: usize = 400;

#[test]
fn mutated_responses_same_outcome_however_split() {
    let mut rng = Rng(0x5851_f42d_4c95_7f2d);
    // (response, cut points) for each case.
    let cases: Vec<(Vec<u8>, Vec<usize>)> = (0..CASES)
        .map(|_| {
            let mut input = SEEDS[rng.below(SEEDS.len())].to_vec();
            mutate(&mut rng, &mut input, FIELDS);
            let mut cuts: Vec<usize> = (0..1 + rng.below(5))
                .map(|_| rng.below(input.len().max(1)))
                .collect();
            cuts.sort_unstable();
            cuts.dedup();
            (input, cuts)
        })
        .collect();

    // The raw server: two connections per case (whole, then in pieces), in order.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let to_serve = cases.clone();
    let (served, done) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        for (input, cuts) in &to_serve {
            for pieces in [false, true] {
                let Ok((mut sock, _)) = listener.accept() else {
                    return;
                };
                sock.set_nodelay(true).unwrap();
                sock.set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                // The whole request head (a GET has no body), so that closing after the
                // response sends a FIN, not a reset.
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match sock.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                let cuts: &[usize] = if pieces { cuts } else { &[] };
                let mut from = 0;
                for &to in cuts.iter().chain(std::iter::once(&input.len())) {
                    if to > from {
                        if sock.write_all(&input[from..to]).is_err() {
                            break;
                        }
                        from = to;
                    }
                }
                let _ = sock.shutdown(std::net::Shutdown::Write);
                served.send(()).unwrap();
            }
        }
    });

    let reactor = Reactor::new().unwrap();
    let config = ClientConfig {
        timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    };
    let mut failures = Vec::new();
    for (case, (input, _)) in cases.iter().enumerate() {
        let mut outcomes = Vec::new();
        for _ in 0..2 {
            // A client of its own for each request: no connection is reused across cases.
            let client = Client::with_config(&reactor, config.clone());
            let result = client.get(&format!("http://{addr}/r")).wait();
            done.recv_timeout(Duration::from_secs(20))
                .expect("the server served the connection");
            outcomes.push(match result {
                Ok(r) => Outcome::Response(r.status(), r.body().to_vec()),
                Err(f) => {
                    if f.downcast_ref::<ClientError>()
                        .is_some_and(ClientError::is_timeout)
                    {
                        failures.push(format!(
                            "case {case}: timed out on {:?}",
                            String::from_utf8_lossy(input)
                        ));
                    }
                    Outcome::Error
                }
            });
        }
        if outcomes[0] != outcomes[1] {
            failures.push(format!(
                "case {case}: one write gave {:?}, pieces gave {:?}, for {:?}",
                outcomes[0],
                outcomes[1],
                String::from_utf8_lossy(input)
            ));
        }
        if let Outcome::Response(status, body) = &outcomes[0] {
            // Three digits; 600..999 is not a defined status, and RFC 9110 §15 has a
            // client treat it as a 5xx rather than reject it: it is handed on as it came.
            if *status > 999 || body.len() > input.len() {
                failures.push(format!(
                    "case {case}: impossible response {status} with {} body bytes",
                    body.len()
                ));
            }
        }
    }
    server.join().unwrap();
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
