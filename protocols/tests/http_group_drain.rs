//! Stopping a `ReactorGroup` of HTTP servers (each draining on shutdown) loses no
//! in-flight response, in every accept mode of `GroupListener`: real loopback TCP, the
//! clients on the test thread, every read bounded by a timeout.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use ropewalk_protocols::http::{HttpServer, Request, Response, Site};
use ropewalk_reactor::{defer_later, AcceptQueue, Dispatch, GroupListener, ReactorGroup};

/// How long a client waits for anything before the test fails.
const LIMIT: Duration = Duration::from_secs(10);

/// Requests in flight when the group is stopped.
const IN_FLIGHT: usize = 8;

/// How long `/slow` takes to answer, from its arrival.
const SLOW: Duration = Duration::from_millis(300);

#[test]
fn stopping_a_group_answers_every_request_in_flight() {
    for queue in [
        AcceptQueue::PerReactor,
        AcceptQueue::Shared,
        AcceptQueue::Dispatcher(Dispatch::RoundRobin),
        AcceptQueue::Dispatcher(Dispatch::LeastLoaded),
    ] {
        let listener = GroupListener::bind("127.0.0.1:0".parse().unwrap(), queue).unwrap();
        let addr = listener.local_addr();
        let (arrived_tx, arrived) = mpsc::channel::<usize>();
        let group = ReactorGroup::start(2, move |reactor, index| {
            let (tx, r) = (arrived_tx.clone(), reactor.clone());
            let site = Site::new().get("/slow", move |_: Request| {
                let _ = tx.send(index);
                defer_later(&r, SLOW, move || {
                    Ok(Response::text(format!("answered by reactor {index}\n")))
                })
            });
            let server = HttpServer::new(reactor, site);
            server.listen_group(reactor, &listener)?;
            server.drain_on_shutdown(reactor, LIMIT);
            Ok(())
        })
        .unwrap();

        let mut clients: Vec<TcpStream> = (0..IN_FLIGHT)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(LIMIT)).unwrap();
                s.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
                    .unwrap();
                s
            })
            .collect();
        // Every request has reached its handler: all are in flight.
        let mut serving = BTreeSet::new();
        for _ in 0..IN_FLIGHT {
            let index = arrived
                .recv_timeout(LIMIT)
                .unwrap_or_else(|_| panic!("{queue}: a request never arrived"));
            serving.insert(index);
        }
        // `stop` returns once every reactor has drained and stopped.
        let stopper = std::thread::spawn(move || group.stop());
        for (i, s) in clients.iter_mut().enumerate() {
            let mut got = Vec::new();
            s.read_to_end(&mut got)
                .unwrap_or_else(|e| panic!("{queue}: client {i}: {e}"));
            let text = String::from_utf8_lossy(&got);
            assert!(
                text.starts_with("HTTP/1.1 200 OK\r\n"),
                "{queue}: client {i}: {text:?}"
            );
            assert!(
                text.to_ascii_lowercase()
                    .contains("\r\nconnection: close\r\n"),
                "{queue}: client {i}: {text:?}"
            );
            let (_, body) = text.split_once("\r\n\r\n").expect("a head and a body");
            assert!(
                body.starts_with("answered by reactor ") && body.ends_with('\n'),
                "{queue}: client {i}: the full body: {body:?}"
            );
        }
        stopper.join().unwrap().unwrap();
        // Round-robin puts 4 on each reactor: both were draining requests in flight.
        if queue == AcceptQueue::Dispatcher(Dispatch::RoundRobin) {
            assert_eq!(serving.len(), 2, "{queue}");
        }
    }
}
