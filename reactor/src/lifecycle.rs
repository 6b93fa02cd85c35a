//! Startup and shutdown: system event triggers (Twisted's `addSystemEventTrigger`),
//! `call_when_running`, and opt-in signal handling.

use std::cell::Cell;
use std::fmt;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ropewalk_deferred::{maybe_deferred, Deferred, IntoOutcome};

use polling::PollMode;

use crate::error::ReactorError;
use crate::io::{Interest, IoHandler, Ready};
use crate::reactor::{Reactor, Remote, RemoteOp};
use crate::slab::Key;

/// When a trigger runs, relative to its event.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::{Phase, Reactor, SystemEvent};
///
/// let reactor = Reactor::new()?;
/// reactor.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, || {
///     println!("flushing before shutdown");
///     Ok(())
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// First. A trigger may return a Deferred; the `During` phase waits for all of them
    /// (for shutdown, at most the [shutdown timeout](Reactor::set_shutdown_timeout)).
    Before,
    /// The event itself (for shutdown: connections are closed here).
    During,
    /// Last.
    After,
}

/// A reactor lifecycle event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemEvent {
    /// [`Reactor::run`] starts.
    Startup,
    /// [`Reactor::run`] is about to return after [`Reactor::stop`].
    Shutdown,
}

/// Names a trigger, to remove it with [`Reactor::remove_system_event_trigger`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TriggerId(u64);

type Trigger = Box<dyn FnOnce() -> Deferred<()>>;

#[derive(Default)]
pub(crate) struct Triggers {
    list: Vec<(TriggerId, Phase, SystemEvent, Trigger)>,
    next: u64,
    timeout: Option<Duration>,
}

const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

impl Reactor {
    /// Adds a function to run at a phase of a system event (Twisted's
    /// `addSystemEventTrigger`). Triggers of one phase run in the order they were added;
    /// one that fails or panics is logged and the others still run. Each trigger runs
    /// once: at the next time its event happens, then it is gone (so a reactor that is
    /// run again needs its triggers added again).
    ///
    /// Triggers run only through [`run`](Self::run), not while a `wait()` or `iterate()`
    /// drives the loop.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    /// use ropewalk_reactor::{Clock, Phase, Reactor, SystemEvent};
    ///
    /// let reactor = Reactor::new()?;
    /// let log = Rc::new(RefCell::new(vec![]));
    /// let (l, r) = (log.clone(), reactor.clone());
    /// reactor.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, move || {
    ///     l.borrow_mut().push("saving");
    ///     // Shutdown waits for this Deferred before going on.
    ///     r.sleep(Duration::from_millis(5))
    /// });
    /// let l = log.clone();
    /// reactor.add_system_event_trigger(Phase::After, SystemEvent::Shutdown, move || {
    ///     l.borrow_mut().push("bye");
    ///     Ok(())
    /// });
    /// let r = reactor.clone();
    /// reactor.call_when_running(move || r.stop().unwrap());
    /// reactor.run()?;
    /// assert_eq!(*log.borrow(), vec!["saving", "bye"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_system_event_trigger<R: IntoOutcome<()> + 'static>(
        &self,
        phase: Phase,
        event: SystemEvent,
        f: impl FnOnce() -> R + 'static,
    ) -> TriggerId {
        let mut t = self.inner.triggers.borrow_mut();
        let id = TriggerId(t.next);
        t.next += 1;
        t.list
            .push((id, phase, event, Box::new(move || maybe_deferred(f))));
        id
    }

    /// Removes a trigger that has not run yet.
    ///
    /// # Errors
    ///
    /// [`ReactorError::UnknownTrigger`] if there is no such trigger (it ran, or was
    /// removed).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{Phase, Reactor, ReactorError, SystemEvent};
    ///
    /// let reactor = Reactor::new()?;
    /// let id = reactor.add_system_event_trigger(Phase::During, SystemEvent::Startup, || Ok(()));
    /// reactor.remove_system_event_trigger(id).unwrap();
    /// assert_eq!(reactor.remove_system_event_trigger(id), Err(ReactorError::UnknownTrigger));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn remove_system_event_trigger(&self, id: TriggerId) -> Result<(), ReactorError> {
        let mut t = self.inner.triggers.borrow_mut();
        let before = t.list.len();
        t.list.retain(|(i, ..)| *i != id);
        if t.list.len() == before {
            Err(ReactorError::UnknownTrigger)
        } else {
            Ok(())
        }
    }

    /// Runs `f` now if the reactor is running, else once it has started (an `After`
    /// startup trigger, whose id is returned).
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let r = reactor.clone();
    /// assert!(reactor.call_when_running(move || r.stop().unwrap()).is_some());
    /// reactor.run()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_when_running(&self, f: impl FnOnce() + 'static) -> Option<TriggerId> {
        if self.is_running() {
            f();
            None
        } else {
            Some(
                self.add_system_event_trigger(Phase::After, SystemEvent::Startup, move || {
                    f();
                    Ok(())
                }),
            )
        }
    }

    /// How long shutdown waits for the Deferreds of `Before` shutdown triggers (default
    /// 30 s); past it, shutdown goes on and a warning is logged.
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// reactor.set_shutdown_timeout(std::time::Duration::from_secs(5));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_shutdown_timeout(&self, timeout: Duration) {
        self.inner.triggers.borrow_mut().timeout = Some(timeout);
    }

    /// Runs the three phases of `event`, waiting for `Before` triggers' Deferreds.
    pub(crate) fn fire_system_event(&self, event: SystemEvent) {
        for phase in [Phase::Before, Phase::During, Phase::After] {
            let due: Vec<Trigger> = {
                let mut t = self.inner.triggers.borrow_mut();
                let (due, keep) = std::mem::take(&mut t.list)
                    .into_iter()
                    .partition(|(_, p, e, _)| *p == phase && *e == event);
                t.list = keep;
                due.into_iter().map(|(_, _, _, f)| f).collect()
            };
            let pending = Rc::new(Cell::new(0usize));
            for trigger in due {
                let d = trigger();
                let count = phase == Phase::Before && !d.has_result();
                if count {
                    pending.set(pending.get() + 1);
                }
                let p = pending.clone();
                d.add_both(move |result| {
                    if let Err(f) = result {
                        log::error!("{event:?} trigger ({phase:?}) failed: {f}");
                    }
                    if count {
                        p.set(p.get() - 1);
                    }
                    Ok(())
                });
            }
            if pending.get() > 0 {
                self.wait_for_triggers(event, &pending);
            }
            if phase == Phase::During && event == SystemEvent::Shutdown {
                self.shutdown_sources();
                // Let the connections' `connection_lost` calls run before `run()` returns.
                self.turn_for(Duration::ZERO);
            }
        }
    }

    fn wait_for_triggers(&self, event: SystemEvent, pending: &Cell<usize>) {
        let timeout = self
            .inner
            .triggers
            .borrow()
            .timeout
            .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
        let deadline = Instant::now() + timeout;
        while pending.get() > 0 {
            let now = Instant::now();
            if now >= deadline {
                log::warn!(
                    "{event:?}: {} trigger(s) still pending after {timeout:?}; going on",
                    pending.get()
                );
                return;
            }
            // A stop() during the wait must not turn it into a busy loop.
            self.clear_stop();
            self.turn_for(deadline - now);
        }
    }

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
            self.inner
                .signal_sources
                .set(self.inner.signal_sources.get() + 1);
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
        let mut received = false;
        loop {
            match (&self.sock).read(&mut buf) {
                Ok(0) => break,
                Ok(_) => received = true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::error!("reading the {} wake-up socket: {e}", self.name);
                    break;
                }
            }
        }
        if received {
            log::info!("{} received: stopping the reactor", self.name);
            let _ = reactor.stop();
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
                            r.inner.signal_sources.set(r.inner.signal_sources.get() - 1);
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
