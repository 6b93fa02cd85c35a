//! Helpers for the transport tests: a protocol that records what happens to it (and
//! runs hooks a test gives it), and a way to run a reactor until something holds.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::{ConnectionError, Protocol, Reactor, TransportRef};

/// What happened to one connection's protocol.
#[derive(Default)]
pub struct Events {
    pub made: Cell<usize>,
    pub data: RefCell<Vec<u8>>,
    pub chunks: Cell<usize>,
    pub max_chunk: Cell<usize>,
    pub eofs: Cell<usize>,
    pub lost: RefCell<Vec<Failure>>,
    pub transport: RefCell<Option<TransportRef>>,
}

impl Events {
    pub fn new() -> Rc<Events> {
        Rc::new(Events::default())
    }

    /// The transport, once `connection_made` ran.
    pub fn transport(&self) -> TransportRef {
        self.transport.borrow().clone().expect("connection made")
    }

    pub fn lost_count(&self) -> usize {
        self.lost.borrow().len()
    }

    /// The one reason `connection_lost` was given (panics unless it ran exactly once).
    pub fn reason(&self) -> Failure {
        let lost = self.lost.borrow();
        assert_eq!(lost.len(), 1, "connection_lost calls: {lost:?}");
        lost[0].clone()
    }

    /// The [`ConnectionError`] `connection_lost` was given, as text (`Done`, `Aborted`...).
    pub fn reason_kind(&self) -> String {
        let f = self.reason();
        match f.downcast_ref::<ConnectionError>() {
            Some(e) => format!("{e:?}")
                .split('(')
                .next()
                .unwrap_or_default()
                .to_string(),
            None => format!("other: {f}"),
        }
    }

    pub fn received(&self) -> usize {
        self.data.borrow().len()
    }
}

type MadeHook = Box<dyn FnMut(&TransportRef)>;
type DataHook = Box<dyn FnMut(&TransportRef, &[u8]) -> Result<(), Failure>>;
type EofHook = Box<dyn FnMut(&TransportRef) -> bool>;

/// A protocol that records into [`Events`] and runs the hooks it was given.
pub struct Probe {
    ev: Rc<Events>,
    transport: Option<TransportRef>,
    on_made: Option<MadeHook>,
    on_data: Option<DataHook>,
    on_eof: Option<EofHook>,
    echo: bool,
}

impl Probe {
    pub fn new(ev: &Rc<Events>) -> Probe {
        Probe {
            ev: ev.clone(),
            transport: None,
            on_made: None,
            on_data: None,
            on_eof: None,
            echo: false,
        }
    }

    /// Writes back everything it receives.
    pub fn echo(mut self) -> Probe {
        self.echo = true;
        self
    }

    pub fn on_made(mut self, f: impl FnMut(&TransportRef) + 'static) -> Probe {
        self.on_made = Some(Box::new(f));
        self
    }

    pub fn on_data(
        mut self,
        f: impl FnMut(&TransportRef, &[u8]) -> Result<(), Failure> + 'static,
    ) -> Probe {
        self.on_data = Some(Box::new(f));
        self
    }

    pub fn on_eof(mut self, f: impl FnMut(&TransportRef) -> bool + 'static) -> Probe {
        self.on_eof = Some(Box::new(f));
        self
    }
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe").field("echo", &self.echo).finish()
    }
}

impl Protocol for Probe {
    fn connection_made(&mut self, transport: TransportRef) {
        self.ev.made.set(self.ev.made.get() + 1);
        *self.ev.transport.borrow_mut() = Some(transport.clone());
        self.transport = Some(transport.clone());
        if let Some(f) = self.on_made.as_mut() {
            f(&transport);
        }
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        self.ev.data.borrow_mut().extend_from_slice(data);
        self.ev.chunks.set(self.ev.chunks.get() + 1);
        self.ev
            .max_chunk
            .set(self.ev.max_chunk.get().max(data.len()));
        let t = self.transport.clone().expect("connection made");
        if self.echo {
            t.write(data);
        }
        match self.on_data.as_mut() {
            Some(f) => f(&t, data),
            None => Ok(()),
        }
    }

    fn eof_received(&mut self) -> bool {
        self.ev.eofs.set(self.ev.eofs.get() + 1);
        let t = self.transport.clone().expect("connection made");
        match self.on_eof.as_mut() {
            Some(f) => f(&t),
            None => false,
        }
    }

    fn connection_lost(&mut self, reason: Failure) {
        self.ev.lost.borrow_mut().push(reason);
    }
}

/// Runs turns of `reactor` until `cond` holds; fails the test after `limit`.
pub fn run_until(reactor: &Reactor, limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        reactor.iterate(Duration::from_millis(20));
    }
}

/// Runs `n` more turns that wait for nothing (to show something did *not* happen later).
pub fn spin(reactor: &Reactor, n: usize) {
    for _ in 0..n {
        reactor.iterate(Duration::ZERO);
    }
}

/// A cheap 64-bit checksum (FNV-1a over 8-byte words, then the tail), for comparing
/// large streams without keeping them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksum {
    h: u64,
    len: u64,
    pending: [u8; 8],
    npending: usize,
}

impl Default for Checksum {
    fn default() -> Self {
        Checksum {
            h: 0xcbf2_9ce4_8422_2325,
            len: 0,
            pending: [0; 8],
            npending: 0,
        }
    }
}

impl Checksum {
    fn word(&mut self, w: u64) {
        self.h ^= w;
        self.h = self.h.wrapping_mul(0x0000_0100_0000_01b3);
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        while self.npending > 0 && !data.is_empty() {
            self.pending[self.npending] = data[0];
            self.npending += 1;
            data = &data[1..];
            if self.npending == 8 {
                let w = u64::from_le_bytes(self.pending);
                self.word(w);
                self.npending = 0;
            }
        }
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().unwrap()));
        }
        for &b in chunks.remainder() {
            self.pending[self.npending] = b;
            self.npending += 1;
        }
    }

    /// (hash, length): equal for equal streams, whatever the chunking.
    pub fn finish(&self) -> (u64, u64) {
        let mut c = *self;
        for i in c.npending..8 {
            c.pending[i] = 0;
        }
        if c.npending > 0 {
            let w = u64::from_le_bytes(c.pending);
            c.word(w ^ (c.npending as u64) << 56);
        }
        (c.h, c.len)
    }
}

/// Deterministic test bytes: the byte at stream offset `i` (not a multiple of a small
/// period, so a dropped or repeated chunk changes the checksum).
pub fn fill(buf: &mut [u8], offset: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        let x = offset + i as u64;
        *b = (x ^ (x >> 8) ^ (x >> 17)).wrapping_mul(31) as u8;
    }
}

/// A listener with a backlog of 0 that never accepts, with its queue filled, so the
/// kernel drops further SYNs and a connect to it neither succeeds nor fails. Returns the
/// listener and the connections that fill it (keep them alive).
pub fn black_hole() -> (std::net::TcpListener, SocketAddr, Vec<std::net::TcpStream>) {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.listen(0).unwrap();
    let listener: std::net::TcpListener = sock.into();
    let addr = listener.local_addr().unwrap();
    let mut fill = Vec::new();
    // Linux queues backlog + 1 connections; connect until one cannot complete.
    for _ in 0..16 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => fill.push(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return (listener, addr, fill);
            }
            Err(e) => panic!("filling the backlog: {e}"),
        }
    }
    panic!("16 connections to a backlog-0 listener completed: no way to time out here");
}
