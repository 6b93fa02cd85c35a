//! How many writes TLS makes to the connection below: what the server sends in answer to
//! one read (session tickets, the protocol's answer, its `close_notify`) goes below in one
//! write, so one `send` and one TCP segment, not one per record. Driven by hand: a
//! rustls client in memory, and a `StringTransport` below the server's TLS that counts
//! the writes it gets.

mod support;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;

use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::testing::StringTransport;
use ropewalk_reactor::tls::rustls::pki_types::ServerName;
use ropewalk_reactor::tls::rustls::ClientConnection;
use ropewalk_reactor::tls::{StartTls, StartTlsFactory, StartTlsProtocol};
use ropewalk_reactor::{for_protocol, Address, Factory, Protocol, Reactor, TransportRef};
use support::tls::pki;

/// Answers every read with `answer`; with `close`, then closes (as an HTTP server answers
/// `Connection: close`).
#[derive(Default)]
struct Answer {
    transport: Option<TransportRef>,
    received: Rc<RefCell<Vec<u8>>>,
    close: bool,
}

impl Protocol for Answer {
    fn connection_made(&mut self, transport: TransportRef) {
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        self.received.borrow_mut().extend_from_slice(data);
        let t = self.transport.as_ref().expect("connected");
        t.write_vectored(&[b"HTTP/1.1 200 OK\r\n", b"Content-Length: 2\r\n\r\n"]);
        t.write(b"hi");
        if self.close {
            t.lose_connection();
        }
        Ok(())
    }
}

/// A server-side TLS connection over a `StringTransport`, and a client for it in memory.
struct Pair {
    server: StartTlsProtocol<Answer>,
    below: Rc<StringTransport>,
    client: ClientConnection,
    received: Rc<RefCell<Vec<u8>>>,
}

impl Pair {
    fn new(reactor: &Reactor, close: bool) -> Pair {
        let (ca, config) = pki();
        let received = Rc::new(RefCell::new(Vec::new()));
        let r = received.clone();
        let factory = StartTlsFactory::new(
            reactor,
            for_protocol(move || Answer {
                received: r.clone(),
                close,
                ..Answer::default()
            }),
        );
        let mut server = factory.build_protocol(&Address::Test).expect("a protocol");
        let below = StringTransport::connect(&mut server);
        let link = server
            .protocol()
            .borrow()
            .transport
            .clone()
            .expect("connected");
        // Fires when the handshake ends; its result is seen in the bytes exchanged.
        let _handshake = link.start_tls(StartTls::server(config));
        let name = ServerName::try_from("localhost").unwrap();
        let client = ClientConnection::new(support::tls::client(&ca), name).unwrap();
        Pair {
            server,
            below,
            client,
            received,
        }
    }

    /// What the client has to send, given to the server.
    fn client_to_server(&mut self) {
        let mut wire = Vec::new();
        while self.client.wants_write() {
            self.client.write_tls(&mut wire).unwrap();
        }
        assert!(!wire.is_empty(), "the client has nothing to send");
        self.server.data_received(&wire).unwrap();
    }

    /// What the server wrote below, given to the client.
    fn server_to_client(&mut self) {
        let wire = self.below.take();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            self.client.read_tls(&mut rest).unwrap();
            self.client.process_new_packets().unwrap();
        }
    }

    /// Handshakes up to the client's Finished, which it holds with `request` after it:
    /// the server's next read ends the handshake and carries a request.
    fn handshake_then_request(&mut self, request: &[u8]) {
        self.client_to_server(); // ClientHello
        self.server_to_client(); // ServerHello … Finished
        assert!(
            !self.client.is_handshaking(),
            "the client has the server's Finished"
        );
        self.client.writer().write_all(request).unwrap();
    }

    /// The plaintext the client has read, and whether the server's close_notify came.
    fn client_reads(&mut self) -> (Vec<u8>, bool) {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.client.reader().read(&mut buf) {
                Ok(0) => return (got, true),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => return (got, false),
            }
        }
    }
}

const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";

#[test]
fn tickets_answer_and_close_notify_go_below_in_one_write() {
    let reactor = Reactor::new().unwrap();
    let mut p = Pair::new(&reactor, true);
    p.handshake_then_request(b"GET / HTTP/1.1\r\n\r\n");
    let before = p.below.write_calls();
    // The client's Finished and its request, in one read: the server sends its session
    // tickets, the answer's two writes, and its close_notify.
    p.client_to_server();
    assert_eq!(p.received.borrow().as_slice(), b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(
        p.below.write_calls() - before,
        1,
        "one write below for one read"
    );
    assert!(p.below.is_disconnecting(), "closed after the close_notify");
    p.server_to_client();
    assert_eq!(p.client_reads(), (ANSWER.to_vec(), true));
}

#[test]
fn keep_alive_answers_go_below_in_one_write_each() {
    let reactor = Reactor::new().unwrap();
    let mut p = Pair::new(&reactor, false);
    p.handshake_then_request(b"first");
    p.client_to_server();
    p.server_to_client();
    assert_eq!(p.client_reads(), (ANSWER.to_vec(), false));
    for round in 0..3 {
        p.client.writer().write_all(b"again").unwrap();
        let before = p.below.write_calls();
        p.client_to_server();
        assert_eq!(p.below.write_calls() - before, 1, "round {round}");
        p.server_to_client();
        assert_eq!(p.client_reads(), (ANSWER.to_vec(), false), "round {round}");
    }
    assert!(!p.below.is_disconnecting());
}

#[test]
fn a_large_answer_is_not_held_back() {
    // Past 16 KiB a write goes below at once, inside the read, so that the connection's
    // water marks see it.
    struct Big(Option<TransportRef>);
    impl Protocol for Big {
        fn connection_made(&mut self, t: TransportRef) {
            self.0 = Some(t);
        }
        fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> {
            let t = self.0.as_ref().unwrap();
            for _ in 0..4 {
                t.write(&[b'x'; 10_000]);
            }
            Ok(())
        }
    }
    let reactor = Reactor::new().unwrap();
    let (ca, config) = pki();
    let factory = StartTlsFactory::new(&reactor, for_protocol(|| Big(None)));
    let mut server = factory.build_protocol(&Address::Test).unwrap();
    let below = StringTransport::connect(&mut server);
    let link = server.protocol().borrow().0.clone().unwrap();
    let _handshake = link.start_tls(StartTls::server(config));
    let name = ServerName::try_from("localhost").unwrap();
    let mut client = ClientConnection::new(support::tls::client(&ca), name).unwrap();
    // Sends what the client has, gives the server's answer to the client; the plaintext
    // it read.
    let exchange = |client: &mut ClientConnection, server: &mut StartTlsProtocol<Big>| {
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        server.data_received(&wire).unwrap();
        let back = below.take();
        let mut rest = &back[..];
        let mut got = 0;
        let mut buf = [0u8; 16384];
        while !rest.is_empty() {
            client.read_tls(&mut rest).unwrap();
            client.process_new_packets().unwrap();
            while let Ok(n) = client.reader().read(&mut buf) {
                if n == 0 {
                    break;
                }
                got += n;
            }
        }
        got
    };
    assert_eq!(exchange(&mut client, &mut server), 0);
    client.writer().write_all(b"go").unwrap();
    let before = below.write_calls();
    let got = exchange(&mut client, &mut server);
    // 20 000 bytes held pass the limit at the second write and at the fourth: each time
    // what is held goes below.
    assert_eq!(below.write_calls() - before, 2);
    assert_eq!(got, 40_000);
}
