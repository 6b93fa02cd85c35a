//! Opt-in signal handling: SIGINT and SIGTERM stop a reactor (through a wake-up socket
//! it watches, as Twisted does) or every reactor of a group (through a thread).
//!
//! The wake-up socket is a source like any other: a `SignalReader` registered with the
//! reactor, counted apart so that a `wait()` with nothing else to wait for still ends.

use std::fmt;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::Arc;

use crate::reactor::{IoHandler, Reactor, Remote, RemoteOp};
use crate::slab::Key;
use crate::sys::{Interest, PollMode, Ready};

impl Reactor {
    /// Makes SIGINT and SIGTERM stop this reactor gracefully (shutdown triggers run,
    /// then `run()` returns). Until the returned guard is dropped.
    ///
    /// As in Twisted (which hands the signal to the reactor through a wake-up
    /// descriptor), the signal handler only writes a byte to a socket the reactor watches;
    /// the reactor reads it on its next turn and stops itself. No thread is started: a
    /// single-reactor program stays single-threaded, so the kernel does not have to count
    /// references on every descriptor a system call uses (it does once a process has a
    /// second thread).
    ///
    /// # Errors
    ///
    /// The system error if the socket pair cannot be made or the handlers cannot be
    /// installed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let _signals = reactor.install_signal_handlers()?;
    /// reactor.run()?; // Ctrl-C stops it cleanly
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn install_signal_handlers(&self) -> std::io::Result<SignalGuard> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut guard = Watched {
            ids: Vec::new(),
            keys: Vec::new(),
            remote: self.inner.remote.clone(),
        };
        // On an error part way, dropping `guard` undoes what was done.
        for (signal, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
            let (read, write) = UnixStream::pair()?;
            read.set_nonblocking(true)?;
            let reader = Rc::new(SignalReader { sock: read, name });
            let key = self.register(
                &reader.sock,
                Interest::READ,
                PollMode::Level,
                reader.clone(),
            )?;
            guard.keys.push(key);
            self.inner.sources.count_signal_source(true);
            guard
                .ids
                .push(signal_hook::low_level::pipe::register(signal, write)?);
        }
        Ok(SignalGuard {
            kind: GuardKind::Reactor(guard),
        })
    }
}

/// The read end of one signal's wake-up socket, watched by the reactor.
struct SignalReader {
    sock: UnixStream,
    name: &'static str,
}

impl IoHandler for SignalReader {
    fn ready(self: Rc<Self>, reactor: &Reactor, _ready: Ready) {
        let mut buf = [0u8; 64];
        // Each byte is one signal: two read at once (a second Ctrl-C before this turn)
        // are a stop and a stop during the stopping, not one.
        let mut received = 0usize;
        loop {
            match (&self.sock).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => received += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::error!("reading the {} wake-up socket: {e}", self.name);
                    break;
                }
            }
        }
        if received > 0 {
            log::info!("{} received: stopping the reactor", self.name);
            reactor.stop_for_signals(received);
        }
    }
}

/// What [`Reactor::install_signal_handlers`] set up: the signal actions and the
/// registrations of their wake-up sockets.
struct Watched {
    ids: Vec<signal_hook::SigId>,
    keys: Vec<Key>,
    /// The way to the reactor's thread; not a `ReactorHandle`, which would count as work
    /// that may still arrive and keep a hopeless `wait()` waiting.
    remote: Arc<Remote>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        // First no more writes (this closes the write ends), then no more reads: the
        // reactor drops the read ends with their registrations, on its own thread.
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
        let keys = std::mem::take(&mut self.keys);
        if !keys.is_empty() {
            self.remote
                .push(RemoteOp::Call(Box::new(move |r: &Reactor| {
                    for key in keys {
                        if r.deregister(key) {
                            r.inner.sources.count_signal_source(false);
                        }
                    }
                })));
        }
    }
}

/// SIGINT and SIGTERM stop every reactor of `reactors`, until the guard is dropped.
pub(crate) fn stop_on_signals(reactors: Vec<crate::ReactorHandle>) -> std::io::Result<SignalGuard> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let close = signals.handle();
    std::thread::Builder::new()
        .name("ropewalk-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                log::info!("signal {sig} received: stopping the reactor");
                for reactor in &reactors {
                    reactor.stop();
                }
            }
        })?;
    Ok(SignalGuard {
        kind: GuardKind::Thread(close),
    })
}

/// Keeps [`Reactor::install_signal_handlers`] (or
/// [`ReactorGroup::install_signal_handlers`](crate::ReactorGroup::install_signal_handlers))
/// in force; dropping it stops handling the signals (their default action does not come
/// back while the process lives).
///
/// # Examples
///
/// ```no_run
/// use ropewalk_reactor::Reactor;
///
/// let reactor = Reactor::new()?;
/// // Keep the guard for as long as SIGINT and SIGTERM should stop the reactor.
/// let _signals = reactor.install_signal_handlers()?;
/// reactor.run()?; // Ctrl-C returns from here
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SignalGuard {
    kind: GuardKind,
}

enum GuardKind {
    /// One reactor: its own wake-up sockets.
    Reactor(Watched),
    /// A group: a thread that receives the signals and stops every reactor.
    Thread(signal_hook::iterator::Handle),
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        if let GuardKind::Thread(close) = &self.kind {
            close.close();
        }
    }
}

impl fmt::Debug for SignalGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match &self.kind {
            GuardKind::Reactor(w) => format!("{} wake-up sockets", w.keys.len()),
            GuardKind::Thread(_) => "a thread".to_string(),
        };
        f.debug_struct("SignalGuard")
            .field("through", &how)
            .finish()
    }
}
