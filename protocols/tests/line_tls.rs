//! `LineReceiver` over TLS, unchanged: lines echo both ways through a handshake, with
//! the server pausing and resuming its reading on the way, and a clean close
//! (close_notify) at the end. Certificates come from a CA made at test time.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::tls::{TlsClientBuilder, TlsServerBuilder};
use ropewalk_reactor::{Address, ConnectionError, Reactor};
use ropewalk_testkit::pki::TestCa;

const WAIT: Duration = Duration::from_secs(20);
const LINES: usize = 2000;

/// Answers each line in upper case; every 100th line it pauses, and resumes on the next
/// turn. `quit` closes the connection.
struct Upper {
    reactor: Reactor,
}

impl LineHandler for Upper {
    fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
        if line == b"quit" {
            ctl.lose_connection();
            return Ok(());
        }
        ctl.send_line(&line.to_ascii_uppercase());
        if line.ends_with(b"00") {
            ctl.pause();
            let handle = ctl.pause_handle();
            self.reactor.call_soon(move || handle.resume());
        }
        Ok(())
    }
}

/// Sends the lines and `quit`, and keeps what comes back.
struct Ask {
    lines: Rc<RefCell<Vec<Vec<u8>>>>,
    lost: Rc<RefCell<Option<Failure>>>,
}

fn line(i: usize) -> Vec<u8> {
    // Lines of many lengths, so records and lines do not line up.
    let mut l = format!("line {i:05} ").into_bytes();
    l.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, i % 300));
    l
}

impl LineHandler for Ask {
    fn connection_made(&mut self, ctl: &mut LineControl<'_>) {
        for i in 0..LINES {
            ctl.send_line(&line(i));
        }
        ctl.send_line(b"quit");
    }

    fn line_received(&mut self, line: &[u8], _: &mut LineControl<'_>) -> Result<(), Failure> {
        self.lines.borrow_mut().push(line.to_vec());
        Ok(())
    }

    fn connection_lost(&mut self, reason: Failure) {
        *self.lost.borrow_mut() = Some(reason);
    }
}

#[test]
fn line_receiver_echoes_over_tls_both_ways() {
    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new();
    let leaf = ca.leaf(&["localhost"]);
    let server = TlsServerBuilder::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let client = TlsClientBuilder::new()
        .without_default_roots()
        .add_root_pem(ca.pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let r = reactor.clone();
    let port = reactor
        .listen_tls(
            "127.0.0.1:0".parse().unwrap(),
            move |_: &Address| {
                Some(LineReceiver::new(Upper { reactor: r.clone() }).with_max_length(1024))
            },
            server,
        )
        .unwrap();
    let lines = Rc::new(RefCell::new(Vec::new()));
    let lost = Rc::new(RefCell::new(None));
    let (l, x) = (lines.clone(), lost.clone());
    reactor
        .connect_tls(
            port.local_addr().inet().unwrap(),
            "localhost",
            move |_: &Address| {
                Some(LineReceiver::new(Ask {
                    lines: l.clone(),
                    lost: x.clone(),
                }))
            },
            client,
        )
        .wait()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while lost.borrow().is_none() {
        assert!(Instant::now() < deadline, "no close within {WAIT:?}");
        reactor.iterate(Duration::from_millis(20));
    }
    let lines = lines.borrow();
    assert_eq!(lines.len(), LINES);
    for (i, got) in lines.iter().enumerate() {
        assert_eq!(got, &line(i).to_ascii_uppercase(), "line {i}");
    }
    let reason = lost.borrow_mut().take().unwrap();
    assert!(
        reason
            .downcast_ref::<ConnectionError>()
            .is_some_and(|e| e.is_clean()),
        "closed cleanly by close_notify: {reason}"
    );
}
