//! `Transport::send_file` over loopback TCP: a file region goes out in order with the
//! writes around it (`sendfile(2)` on Linux's epoll path, `pread` and a write on the
//! portable one), counts toward the write queue and its water marks, and
//! `lose_connection` sends it first.

mod support;

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use ropewalk_reactor::deferred::{Deferred, Failure, Resolver};
use ropewalk_reactor::{
    Address, ConnectionError, Producer, Protocol, Reactor, TransportRef, DEFAULT_HIGH_WATER,
};

const WAIT: Duration = Duration::from_secs(20);

/// A file in the temp dir filled with `support::net::fill`'s pattern, removed on drop.
struct TempFile(PathBuf, Vec<u8>);

impl TempFile {
    fn new(name: &str, len: usize) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("ropewalk-sendfile-{}-{name}", std::process::id()));
        let mut data = vec![0u8; len];
        support::net::fill(&mut data, 7);
        std::fs::write(&path, &data).unwrap();
        TempFile(path, data)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One thing the server does on a new connection.
#[derive(Clone)]
enum Step {
    Write(Vec<u8>),
    /// `write_more`: a head the file region after it joins in one packet.
    WriteMore(Vec<u8>),
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
                Step::WriteMore(b) => t.write_more(b),
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

/// Serves one connection with `steps` on `file`; a client on the worker pool reads it to
/// EOF `read_size` bytes at a time. What the client got, why the server's connection
/// ended, and what the server saw.
fn serve(file: &TempFile, steps: Vec<Step>, read_size: usize) -> (Vec<u8>, String, Rc<Seen>) {
    let reactor = Reactor::new().unwrap();
    let (lost_d, lost) = Deferred::<String>::pending();
    let lost = Rc::new(RefCell::new(Some(lost)));
    let seen = Rc::new(Seen::default());
    let opened = Rc::new(File::open(&file.0).unwrap());
    let (s, l) = (seen.clone(), lost.clone());
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
            Some(Sender {
                file: opened.clone(),
                steps: steps.clone(),
                seen: s.clone(),
                lost: l.clone(),
            })
        })
        .unwrap();
    let addr = port.local_addr().inet().unwrap();
    let got = reactor
        .defer_to_thread(move || {
            let mut s = TcpStream::connect(addr).map_err(Failure::new)?;
            s.set_read_timeout(Some(WAIT)).map_err(Failure::new)?;
            let mut out = Vec::new();
            let mut buf = vec![0u8; read_size];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return Ok(out),
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    // A reset after a short region: what came before it is the answer.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(out),
                    Err(e) => return Err(Failure::new(e)),
                }
            }
        })
        .wait()
        .unwrap();
    let why = lost_d.wait().unwrap();
    (got, why, seen)
}

#[test]
fn a_large_file_arrives_byte_exact_with_a_slow_reader() {
    let file = TempFile::new("large", 16 * 1024 * 1024 + 5);
    let len = file.1.len() as u64;
    let steps = vec![
        Step::Write(b"HEAD".to_vec()),
        Step::File(0, len),
        Step::Write(b"TAIL".to_vec()),
    ];
    // Small reads: the server's queue fills, and the region goes out as the peer reads.
    let (got, why, seen) = serve(&file, steps, 1024);
    assert_eq!(why, "done");
    assert_eq!(got.len() as u64, len + 8);
    assert_eq!(&got[..4], b"HEAD");
    assert!(
        got[4..got.len() - 4] == file.1[..],
        "the file arrived altered"
    );
    assert_eq!(&got[got.len() - 4..], b"TAIL");
    // The region counted toward the queue as what was left of it: the producer paused,
    // and was told of the progress as the peer read it (the last flush, which empties a
    // closing connection's queue, closes it instead).
    assert!(
        seen.queued_after.get() > DEFAULT_HIGH_WATER,
        "queued after the steps: {}",
        seen.queued_after.get()
    );
    assert_eq!(seen.pauses.get(), 1);
    // (Not resumed: the connection was closing, and closed once the queue drained.)
    assert_eq!(seen.resumes.get(), 0);
    let progress = seen.progress.borrow();
    assert!(progress.len() > 1);
    assert!(
        progress.windows(2).all(|w| w[1] < w[0]),
        "progress only goes down"
    );
    assert!(progress[0] < seen.queued_after.get());
}

#[test]
fn regions_and_writes_keep_their_order() {
    let file = TempFile::new("order", 2 * 1024 * 1024);
    let steps = vec![
        Step::WriteMore(b"a".to_vec()),
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
    let (got, why, _) = serve(&file, steps, 64 * 1024);
    assert_eq!(why, "done");
    assert_eq!(got.len(), want.len());
    assert!(got == want, "out of order");
}

#[test]
fn a_region_past_the_end_of_the_file_loses_the_connection() {
    let file = TempFile::new("short", 100_000);
    let steps = vec![
        Step::Write(b"x".to_vec()),
        Step::File(50_000, 60_000),
        Step::Write(b"never".to_vec()),
    ];
    let (got, why, _) = serve(&file, steps, 64 * 1024);
    assert_ne!(
        why, "done",
        "a short region is an error, never a clean close"
    );
    assert!(got.len() <= 1 + 50_000, "got {} bytes", got.len());
    assert!(!got.ends_with(b"never"));
}
