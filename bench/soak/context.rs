//! What every client thread shares: the server's address, the options, the stop flag,
//! and the results (operations that went right, failures by kind, the slowest ones).

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::options::Opts;

#[derive(Default)]
pub(crate) struct StatsInner {
    /// Operations that ended as they should, per kind.
    pub(crate) ok: BTreeMap<&'static str, u64>,
    /// Requests (or echo messages, datagrams) exchanged, per kind.
    pub(crate) requests: BTreeMap<&'static str, u64>,
    /// "kind: what" -> count and the first few details.
    pub(crate) failures: BTreeMap<String, (u64, Vec<String>)>,
    /// The longest operation per kind.
    pub(crate) slowest: BTreeMap<&'static str, Duration>,
    /// Notes that are not failures (UDP datagrams lost, non-readers stopped by the server).
    pub(crate) notes: BTreeMap<String, u64>,
}

pub(crate) struct Stats {
    pub(crate) inner: Mutex<StatsInner>,
    pub(crate) verbose: bool,
}

impl Stats {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, StatsInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn ok(&self, kind: &'static str, took: Duration, requests: u64) {
        let mut s = self.lock();
        *s.ok.entry(kind).or_default() += 1;
        *s.requests.entry(kind).or_default() += requests;
        let slow = s.slowest.entry(kind).or_default();
        *slow = (*slow).max(took);
    }

    pub(crate) fn fail(&self, kind: &'static str, what: &str, detail: String) {
        if self.verbose {
            eprintln!("FAIL {kind}: {what}: {detail}");
        }
        let mut s = self.lock();
        let e = s.failures.entry(format!("{kind}: {what}")).or_default();
        e.0 += 1;
        if e.1.len() < 3 {
            e.1.push(detail);
        }
    }

    pub(crate) fn note(&self, what: String) {
        *self.lock().notes.entry(what).or_default() += 1;
    }
}

/// What every client thread shares.
pub(crate) struct Ctx {
    pub(crate) addr: SocketAddr,
    pub(crate) opts: Opts,
    pub(crate) stop: AtomicBool,
    pub(crate) load_end: Instant,
    pub(crate) stats: Stats,
}

impl Ctx {
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps up to `d`, less if the load stops.
    pub(crate) fn nap(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stopped() && Instant::now() < end {
            std::thread::sleep((end - Instant::now()).min(Duration::from_millis(100)));
        }
    }

    /// A connection for a client of kind `kind`, or `None` after counting the failure and
    /// pausing a little (so a refusing server is not hammered).
    pub(crate) fn connect_or_fail(&self, kind: &'static str, bound: Duration) -> Option<TcpStream> {
        match self.connect(bound) {
            Ok(s) => Some(s),
            Err(e) => {
                self.stats.fail(kind, "connect", e.to_string());
                self.nap(Duration::from_millis(100));
                None
            }
        }
    }

    pub(crate) fn connect(&self, bound: Duration) -> io::Result<TcpStream> {
        let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(bound))?;
        s.set_write_timeout(Some(bound))?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }
}

pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Makes the socket's close send a reset (SO_LINGER 0).
pub(crate) fn set_reset_on_close(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on an open socket with a pointer to a live linger struct and its
    // size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
