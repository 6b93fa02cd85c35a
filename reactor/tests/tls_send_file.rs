//! `Transport::send_file` over TLS: a file region is read and encrypted a chunk at a time as
//! the connection drains, so a file much larger than the memory it may use goes out to a
//! slow reader with the server's memory bounded; it keeps its order with the writes around
//! it, counts toward the water marks, goes out before `lose_connection`'s `close_notify`,
//! and a region past the end of the file loses the connection without a `close_notify`.
//! The same holds on a connection switched to TLS by `start_tls`, with the region given
//! during the handshake.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ropewalk_reactor::deferred::{Deferred, Failure, Resolver};
use ropewalk_reactor::tls::{rustls, StartTls, StartTlsFactory};
use ropewalk_reactor::{
    Address, ConnectionError, ListenOptions, Producer, Protocol, Reactor, TransportRef,
    DEFAULT_HIGH_WATER,
};
use support::tls::{client, pki};

const WAIT: Duration = Duration::from_secs(30);

/// Counts the bytes each thread has allocated and not freed, and the peak of that count:
/// the reactor runs on the test's own thread, so its peak is the server's memory (the
/// client reads on a worker thread, counted there).
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is passed on to the system allocator unchanged; the counting only
// touches thread-local cells with constant initializers (no allocation, no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller promised for `layout`.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller promised for `layout`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize));
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Starts counting this thread's peak from what it holds now.
fn reset_peak() -> isize {
    let now = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(now));
    now
}

fn peak() -> isize {
    PEAK.with(Cell::get)
}

/// A file in the temp dir filled with `support::net::fill`'s pattern, removed on drop.
struct TempFile(PathBuf, Vec<u8>);

impl TempFile {
    fn new(name: &str, len: usize) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "ropewalk-tls-sendfile-{}-{name}",
            std::process::id()
        ));
        let mut data = vec![0u8; len];
        support::net::fill(&mut data, 11);
        std::fs::write(&path, &data).unwrap();
        TempFile(path, data)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One thing the server does once the handshake is done.
#[derive(Clone)]
enum Step {
    Write(Vec<u8>),
    File(u64, u64),
}

/// What the server saw.
#[derive(Default)]
struct Seen {
    /// `write_buffer_len` right after the steps.
    queued_after: Cell<usize>,
    pauses: Cell<usize>,
    resumes: Cell<usize>,
    /// `write_progress` counts, in order.
    progress: RefCell<Vec<usize>>,
}

impl Producer for Seen {
    fn pause_producing(&self) {
        self.pauses.set(self.pauses.get() + 1);
    }
    fn resume_producing(&self) {
        self.resumes.set(self.resumes.get() + 1);
    }
    fn stop_producing(&self) {}
    fn write_progress(&self, queued: usize) {
        self.progress.borrow_mut().push(queued);
    }
}

/// Runs `steps` then `lose_connection` on each connection; fires `lost` with the reason.
struct Sender {
    file: Rc<File>,
    steps: Vec<Step>,
    seen: Rc<Seen>,
    lost: Rc<RefCell<Option<Resolver<String>>>>,
}

impl Protocol for Sender {
    fn connection_made(&mut self, t: TransportRef) {
        t.register_producer(self.seen.clone(), true);
        for step in &self.steps {
            match step {
                Step::Write(b) => t.write(b),
                Step::File(offset, len) => t.send_file(self.file.clone(), *offset, *len),
            }
        }
        self.seen.queued_after.set(t.write_buffer_len());
        t.lose_connection();
    }

    fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> {
        Ok(())
    }

    fn connection_lost(&mut self, reason: Failure) {
        let why = match reason.downcast_ref::<ConnectionError>() {
            Some(ConnectionError::Done) => "done".to_string(),
            _ => format!("{reason}"),
        };
        if let Some(r) = self.lost.borrow_mut().take() {
            let _ = r.callback(why);
        }
    }
}

/// What a TLS client read: the bytes, and whether they ended with the server's
/// `close_notify` (a clean end) rather than a bare close.
struct Got {
    data: Vec<u8>,
    clean: bool,
}

/// Connects to `addr` as `localhost` with `config` and reads to the end `read_size` bytes
/// at a time (blocking: run it on the worker pool).
fn read_all(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    read_size: usize,
) -> Result<Got, Failure> {
    let sock = TcpStream::connect(addr).map_err(Failure::new)?;
    sock.set_read_timeout(Some(WAIT)).map_err(Failure::new)?;
    read_tls(sock, config, read_size)
}

/// Makes a TLS handshake as `localhost` over `sock` and reads to the end.
fn read_tls(
    sock: TcpStream,
    config: Arc<rustls::ClientConfig>,
    read_size: usize,
) -> Result<Got, Failure> {
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(Failure::new)?;
    let conn = rustls::ClientConnection::new(config, name).map_err(Failure::new)?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut data = Vec::new();
    let mut buf = vec![0u8; read_size];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return Ok(Got { data, clean: true }),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            // The socket closed without a close_notify (rustls says so), or was reset.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return Ok(Got { data, clean: false })
            }
            Err(e) => return Err(Failure::new(e)),
        }
    }
}

/// What one served connection gave: what the client got, why the server's connection
/// ended, what the server's producer saw, and the most the server's thread held at once
/// beyond what it held before the connection.
struct Served {
    got: Got,
    why: String,
    seen: Rc<Seen>,
    peak: isize,
}

/// Serves one TLS connection with `steps` on `file`; a client on the worker pool reads it
/// to its end `read_size` bytes at a time.
fn serve(file: &TempFile, steps: Vec<Step>, read_size: usize) -> Served {
    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let config = client(&ca);
    let (lost_d, lost) = Deferred::<String>::pending();
    let lost = Rc::new(RefCell::new(Some(lost)));
    let seen = Rc::new(Seen::default());
    let opened = Rc::new(File::open(&file.0).unwrap());
    let (s, l) = (seen.clone(), lost.clone());
    let port = reactor
        .listen_tls(
            "127.0.0.1:0".parse().unwrap(),
            move |_: &Address| {
                Some(Sender {
                    file: opened.clone(),
                    steps: steps.clone(),
                    seen: s.clone(),
                    lost: l.clone(),
                })
            },
            server,
        )
        .unwrap();
    let addr = port.local_addr().inet().unwrap();
    // The reactor's own buffers, made on first use, are not the connection's.
    reactor.iterate(Duration::ZERO);
    let before = reset_peak();
    let got = reactor
        .defer_to_thread(move || read_all(addr, config, read_size))
        .wait()
        .unwrap();
    let why = lost_d.wait().unwrap();
    let peak = peak() - before;
    eprintln!("server thread peak: {peak} bytes");
    Served {
        got,
        why,
        seen,
        peak,
    }
}

/// A 16 MiB file to a client that reads 1 KiB at a time: it arrives byte-exact after the
/// write before it and before the one after it, then `close_notify`; the server's thread
/// never holds more than a small bound (the whole file in memory was the bug); the
/// region counted toward the queue, paused the producer, and its progress was reported.
#[test]
fn a_large_file_arrives_byte_exact_with_bounded_memory() {
    let file = TempFile::new("large", 16 * 1024 * 1024 + 5);
    let len = file.1.len() as u64;
    let steps = vec![
        Step::Write(b"HEAD".to_vec()),
        Step::File(0, len),
        Step::Write(b"TAIL".to_vec()),
    ];
    let served = serve(&file, steps, 1024);
    let got = &served.got.data;
    assert_eq!(served.why, "done");
    assert!(served.got.clean, "no close_notify after the file");
    assert_eq!(got.len() as u64, len + 8);
    assert_eq!(&got[..4], b"HEAD");
    assert!(
        got[4..got.len() - 4] == file.1[..],
        "the file arrived altered"
    );
    assert_eq!(&got[got.len() - 4..], b"TAIL");
    // A couple of chunks below, the read buffer, rustls's own: well under 1 MiB.
    assert!(
        served.peak < 1024 * 1024,
        "the server held {} bytes at once for a {len}-byte file",
        served.peak
    );
    let seen = &served.seen;
    assert!(
        seen.queued_after.get() as u64 > len / 2,
        "queued after the steps: {}",
        seen.queued_after.get()
    );
    assert!(seen.queued_after.get() > DEFAULT_HIGH_WATER);
    assert_eq!(seen.pauses.get(), 1);
    let progress = seen.progress.borrow();
    assert!(progress.len() > 1, "{} progress reports", progress.len());
    assert!(progress[0] < seen.queued_after.get());
    assert!(progress[progress.len() - 1] < progress[0]);
}

#[test]
fn regions_and_writes_keep_their_order() {
    let file = TempFile::new("order", 2 * 1024 * 1024);
    let steps = vec![
        Step::Write(b"a".to_vec()),
        Step::File(10, 100),
        Step::Write(b"b".to_vec()),
        Step::File(0, 5),
        Step::File(1_000_000, 900_000),
        Step::Write(b"c".to_vec()),
        Step::File(2 * 1024 * 1024 - 3, 3),
        Step::File(7, 0),
        Step::Write(b"d".to_vec()),
    ];
    let mut want = b"a".to_vec();
    want.extend_from_slice(&file.1[10..110]);
    want.push(b'b');
    want.extend_from_slice(&file.1[..5]);
    want.extend_from_slice(&file.1[1_000_000..1_900_000]);
    want.push(b'c');
    want.extend_from_slice(&file.1[2 * 1024 * 1024 - 3..]);
    want.push(b'd');
    let served = serve(&file, steps, 64 * 1024);
    assert_eq!(served.why, "done");
    assert!(served.got.clean);
    assert_eq!(served.got.data.len(), want.len());
    assert!(served.got.data == want, "out of order");
}

#[test]
fn a_region_past_the_end_of_the_file_loses_the_connection() {
    let file = TempFile::new("short", 300_000);
    let steps = vec![
        Step::Write(b"x".to_vec()),
        Step::File(50_000, 260_000),
        Step::Write(b"never".to_vec()),
    ];
    let served = serve(&file, steps, 64 * 1024);
    assert_ne!(
        served.why, "done",
        "a short region is an error, never a clean close"
    );
    assert!(served.why.contains("short"), "{}", served.why);
    assert!(
        !served.got.clean,
        "a truncated response ended with close_notify"
    );
    let got = &served.got.data;
    assert!(got.len() <= 1 + 250_000, "got {} bytes", got.len());
    assert!(got[1..] == file.1[50_000..50_000 + got.len() - 1]);
    assert!(!got.ends_with(b"never"));
}

/// Says `starttls\n` in clear, switches to TLS at once and sends the region, then closes.
struct StartTlsSender {
    file: Rc<File>,
    len: u64,
    config: Arc<rustls::ServerConfig>,
    lost: Rc<RefCell<Option<Resolver<String>>>>,
}

impl Protocol for StartTlsSender {
    fn connection_made(&mut self, t: TransportRef) {
        t.write(b"starttls\n");
        // The handshake is still to come: the region waits for it.
        drop(t.start_tls(StartTls::server(self.config.clone())));
        t.send_file(self.file.clone(), 0, self.len);
        t.lose_connection();
    }

    fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> {
        Ok(())
    }

    fn connection_lost(&mut self, reason: Failure) {
        let why = match reason.downcast_ref::<ConnectionError>() {
            Some(ConnectionError::Done) => "done".to_string(),
            _ => format!("{reason}"),
        };
        if let Some(r) = self.lost.borrow_mut().take() {
            let _ = r.callback(why);
        }
    }
}

/// `send_file` on a connection made by a `StartTlsFactory`, given during the `start_tls`
/// handshake: the region goes out encrypted once the handshake is done, read as the
/// connection drains (not read whole into memory).
#[test]
fn a_file_after_start_tls_goes_out_encrypted_with_bounded_memory() {
    let file = TempFile::new("starttls", 8 * 1024 * 1024 + 3);
    let len = file.1.len() as u64;
    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let config = client(&ca);
    let (lost_d, lost) = Deferred::<String>::pending();
    let lost = Rc::new(RefCell::new(Some(lost)));
    let opened = Rc::new(File::open(&file.0).unwrap());
    let factory = StartTlsFactory::new(&reactor, move |_: &Address| {
        Some(StartTlsSender {
            file: opened.clone(),
            len,
            config: server.clone(),
            lost: lost.clone(),
        })
    });
    let port = reactor
        .listen_tcp_factory(
            "127.0.0.1:0".parse().unwrap(),
            factory,
            &ListenOptions::default(),
        )
        .unwrap();
    let addr = port.local_addr().inet().unwrap();
    reactor.iterate(Duration::ZERO);
    let before = reset_peak();
    let got = reactor
        .defer_to_thread(move || {
            let mut sock = TcpStream::connect(addr).map_err(Failure::new)?;
            sock.set_read_timeout(Some(WAIT)).map_err(Failure::new)?;
            let mut clear = [0u8; 9];
            sock.read_exact(&mut clear).map_err(Failure::new)?;
            assert_eq!(&clear, b"starttls\n");
            read_tls(sock, config, 4096)
        })
        .wait()
        .unwrap();
    let why = lost_d.wait().unwrap();
    let peak = peak() - before;
    assert_eq!(why, "done");
    assert!(got.clean);
    assert!(got.data == file.1, "the file arrived altered");
    assert!(
        peak < 1024 * 1024,
        "the server held {peak} bytes at once for a {len}-byte file"
    );
}

/// A pull producer that sends a file `step` bytes at a time, one region per
/// `resume_producing`, then closes.
struct PullFile {
    t: TransportRef,
    file: Rc<File>,
    next: Cell<u64>,
    len: u64,
    step: u64,
    resumes: Cell<usize>,
}

impl Producer for PullFile {
    fn pause_producing(&self) {}
    fn resume_producing(&self) {
        self.resumes.set(self.resumes.get() + 1);
        let at = self.next.get();
        if at == self.len {
            self.t.unregister_producer();
            self.t.lose_connection();
            return;
        }
        let n = self.step.min(self.len - at);
        self.next.set(at + n);
        self.t.send_file(self.file.clone(), at, n);
    }
    fn stop_producing(&self) {}
}

/// Registers a [`PullFile`] on its connection.
struct PullSender {
    file: Rc<File>,
    len: u64,
    producer: Rc<RefCell<Option<Rc<PullFile>>>>,
    lost: Rc<RefCell<Option<Resolver<String>>>>,
}

impl Protocol for PullSender {
    fn connection_made(&mut self, t: TransportRef) {
        let p = Rc::new(PullFile {
            t: t.clone(),
            file: self.file.clone(),
            next: Cell::new(0),
            len: self.len,
            step: 1024 * 1024,
            resumes: Cell::new(0),
        });
        *self.producer.borrow_mut() = Some(p.clone());
        t.register_producer(p, false);
    }

    fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> {
        Ok(())
    }

    fn connection_lost(&mut self, reason: Failure) {
        let why = match reason.downcast_ref::<ConnectionError>() {
            Some(ConnectionError::Done) => "done".to_string(),
            _ => format!("{reason}"),
        };
        if let Some(r) = self.lost.borrow_mut().take() {
            let _ = r.callback(why);
        }
    }
}

/// A pull producer is asked for more only once what it gave (a file region) has gone
/// below and the connection's queue is empty: the whole file arrives in order, a region
/// per `resume_producing`, with the server's memory bounded.
#[test]
fn a_pull_producer_of_file_regions_is_asked_as_each_one_drains() {
    let file = TempFile::new("pull", 6 * 1024 * 1024 + 9);
    let len = file.1.len() as u64;
    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let config = client(&ca);
    let (lost_d, lost) = Deferred::<String>::pending();
    let lost = Rc::new(RefCell::new(Some(lost)));
    let producer = Rc::new(RefCell::new(None));
    let opened = Rc::new(File::open(&file.0).unwrap());
    let p = producer.clone();
    let port = reactor
        .listen_tls(
            "127.0.0.1:0".parse().unwrap(),
            move |_: &Address| {
                Some(PullSender {
                    file: opened.clone(),
                    len,
                    producer: p.clone(),
                    lost: lost.clone(),
                })
            },
            server,
        )
        .unwrap();
    let addr = port.local_addr().inet().unwrap();
    reactor.iterate(Duration::ZERO);
    let before = reset_peak();
    let got = reactor
        .defer_to_thread(move || read_all(addr, config, 16 * 1024))
        .wait()
        .unwrap();
    let why = lost_d.wait().unwrap();
    let peak = peak() - before;
    assert_eq!(why, "done");
    assert!(got.clean);
    assert!(got.data == file.1, "the file arrived altered");
    let resumes = producer.borrow().as_ref().unwrap().resumes.get();
    // Seven regions, and the call that found nothing left.
    assert_eq!(resumes, 8);
    assert!(peak < 1024 * 1024, "the server held {peak} bytes at once");
}
