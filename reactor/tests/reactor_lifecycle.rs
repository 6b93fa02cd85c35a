//! System event triggers, `call_when_running`, shutdown and signals
//! (Twisted: `test_internet.py` ThreePhaseEventTests / SystemEventTests,
//! `internet/test/test_core.py`).

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use ropewalk_reactor::deferred::{Deferred, Failure, WaitError};
use ropewalk_reactor::{Clock, Phase, Reactor, ReactorError, SystemEvent};
use support::{bounded, capture_logs, logged};

/// Signals reach every reactor with handlers installed in this process, so the tests that
/// install handlers or raise signals take turns.
static SIGNALS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn signals_to_myself() -> std::sync::MutexGuard<'static, ()> {
    SIGNALS.lock().unwrap_or_else(|e| e.into_inner())
}

type Log = Rc<RefCell<Vec<String>>>;

fn push(log: &Log, s: &str) {
    log.borrow_mut().push(s.to_string());
}

fn entries(log: &Log) -> Vec<String> {
    log.borrow().clone()
}

/// Stops the reactor once it runs.
fn stop_when_running(reactor: &Reactor) {
    let r = reactor.clone();
    reactor.call_when_running(move || r.stop().unwrap());
}

/// Twisted: ThreePhaseEventTests.test_fireEvent (startup and shutdown, every phase in
/// order, all before `run()` returns).
#[test]
fn phases_run_in_order_for_startup_and_shutdown() {
    bounded(Duration::from_secs(10), || {
        let reactor = Reactor::new().unwrap();
        let log: Log = Rc::default();
        for event in [SystemEvent::Shutdown, SystemEvent::Startup] {
            for phase in [Phase::After, Phase::During, Phase::Before] {
                let l = log.clone();
                reactor.add_system_event_trigger(phase, event, move || {
                    push(&l, &format!("{event:?} {phase:?}"));
                    Ok(())
                });
            }
        }
        stop_when_running(&reactor);
        reactor.run().unwrap();
        assert_eq!(
            entries(&log),
            [
                "Startup Before",
                "Startup During",
                "Startup After",
                "Shutdown Before",
                "Shutdown During",
                "Shutdown After"
            ]
        );
    });
}

/// Twisted: SystemEventTests.test_beforeReturnsDeferred: a `Before` shutdown trigger's
/// Deferred holds shutdown until it fires; the loop keeps running meanwhile.
#[test]
fn before_shutdown_deferred_delays_the_rest() {
    bounded(Duration::from_secs(10), || {
        let reactor = Reactor::new().unwrap();
        let log: Log = Rc::default();
        let (l, r) = (log.clone(), reactor.clone());
        reactor.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, move || {
            push(&l, "before");
            let l = l.clone();
            r.sleep(Duration::from_millis(20)).add_callback(move |()| {
                push(&l, "saved");
                Ok(())
            })
        });
        let l = log.clone();
        reactor.add_system_event_trigger(Phase::During, SystemEvent::Shutdown, move || {
            push(&l, "during");
            Ok(())
        });
        stop_when_running(&reactor);
        reactor.run().unwrap();
        assert_eq!(entries(&log), ["before", "saved", "during"]);
    });
}

/// Twisted: SystemEventTests.test_multipleBeforeReturnDeferred: `During` waits for all
/// of them.
#[test]
fn during_waits_for_every_before_deferred() {
    bounded(Duration::from_secs(10), || {
        let reactor = Reactor::new().unwrap();
        let log: Log = Rc::default();
        for ms in [15u64, 5] {
            let (l, r) = (log.clone(), reactor.clone());
            reactor.add_system_event_trigger(Phase::Before, SystemEvent::Startup, move || {
                let l = l.clone();
                r.sleep(Duration::from_millis(ms)).add_callback(move |()| {
                    push(&l, &format!("slept {ms}"));
                    Ok(())
                })
            });
        }
        let l = log.clone();
        reactor.add_system_event_trigger(Phase::During, SystemEvent::Startup, move || {
            push(&l, "during");
            Ok(())
        });
        stop_when_running(&reactor);
        reactor.run().unwrap();
        assert_eq!(entries(&log), ["slept 5", "slept 15", "during"]);
    });
}

/// Twisted: none (the deadline is ropewalk's): a `Before` shutdown trigger that never
/// fires holds shutdown only until the shutdown timeout, with a warning.
#[test]
fn shutdown_gives_up_waiting_after_the_timeout() {
    capture_logs();
    bounded(Duration::from_secs(10), || {
        let reactor = Reactor::new().unwrap();
        reactor.set_shutdown_timeout(Duration::from_millis(30));
        let keep: Rc<RefCell<Vec<ropewalk_reactor::deferred::Resolver<()>>>> = Rc::default();
        let k = keep.clone();
        reactor.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, move || {
            let (d, r) = Deferred::<()>::pending();
            k.borrow_mut().push(r);
            d
        });
        let ran_after = Rc::new(RefCell::new(false));
        let a = ran_after.clone();
        reactor.add_system_event_trigger(Phase::After, SystemEvent::Shutdown, move || {
            *a.borrow_mut() = true;
            Ok(())
        });
        stop_when_running(&reactor);
        reactor.run().unwrap();
        assert!(*ran_after.borrow());
        drop(keep);
    });
    assert!(!logged("trigger(s) still pending after 30ms").is_empty());
}

/// Twisted: none (Twisted ignores a second stop): a stop while shutdown waits for a
/// `Before` trigger (a second Ctrl-C during a graceful drain) ends the wait at once,
/// long before the shutdown timeout, and the rest of shutdown still runs.
#[test]
fn a_second_stop_ends_the_wait_for_shutdown_triggers() {
    capture_logs();
    bounded(Duration::from_secs(10), || {
        let reactor = Reactor::new().unwrap();
        reactor.set_shutdown_timeout(Duration::from_secs(60));
        let keep: Rc<RefCell<Vec<ropewalk_reactor::deferred::Resolver<()>>>> = Rc::default();
        let (k, r) = (keep.clone(), reactor.clone());
        reactor.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, move || {
            let (d, resolver) = Deferred::<()>::pending();
            k.borrow_mut().push(resolver);
            // The second stop, a turn later, while shutdown waits for `d`.
            let r2 = r.clone();
            r.call_later(Duration::from_millis(20), move || r2.stop().unwrap());
            d
        });
        let ran_after = Rc::new(RefCell::new(false));
        let a = ran_after.clone();
        reactor.add_system_event_trigger(Phase::After, SystemEvent::Shutdown, move || {
            *a.borrow_mut() = true;
            Ok(())
        });
        stop_when_running(&reactor);
        let started = std::time::Instant::now();
        reactor.run().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(*ran_after.borrow());
        drop(keep);
    });
    assert!(!logged("stopped again: not waiting for 1 shutdown trigger(s)").is_empty());
}

/// A stop during a `Before` startup trigger's wait is not lost: the loop stops once
/// startup is over.
#[test]
fn a_stop_during_startup_stops_the_loop_after_startup() {
    bounded(Duration::from_secs(10), || {
        let reactor = Reactor::new().unwrap();
        let r = reactor.clone();
        reactor.add_system_event_trigger(Phase::Before, SystemEvent::Startup, move || {
            let (d, resolver) = Deferred::<()>::pending();
            r.stop().unwrap();
            r.call_later(Duration::from_millis(10), move || {
                resolver.callback(()).unwrap();
            });
            d
        });
        reactor.run().unwrap();
    });
}

/// Twisted: ThreePhaseEventTests.test_beforeTriggerException and
/// test_duringTriggerException: a failing or panicking trigger is logged and the others
/// still run.
#[test]
fn failing_triggers_are_logged_and_the_rest_run() {
    capture_logs();
    bounded(Duration::from_secs(10), || {
        let reactor = Reactor::new().unwrap();
        let log: Log = Rc::default();
        reactor.add_system_event_trigger(Phase::Before, SystemEvent::Startup, || {
            Err(Failure::msg("lifecycle-marker-1 failed"))
        });
        reactor.add_system_event_trigger(
            Phase::During,
            SystemEvent::Startup,
            || -> Result<(), Failure> { panic!("lifecycle-marker-2 panicked") },
        );
        let l = log.clone();
        reactor.add_system_event_trigger(Phase::During, SystemEvent::Startup, move || {
            push(&l, "still ran");
            Ok(())
        });
        stop_when_running(&reactor);
        reactor.run().unwrap();
        assert_eq!(entries(&log), ["still ran"]);
    });
    assert_eq!(logged("lifecycle-marker-1").len(), 1);
    assert_eq!(logged("lifecycle-marker-2").len(), 1);
}

/// Twisted: ThreePhaseEventTests.test_removeTrigger, test_removeNonexistentTrigger,
/// test_removeRemovedTrigger.
#[test]
fn removed_triggers_do_not_run() {
    let reactor = Reactor::new().unwrap();
    let log: Log = Rc::default();
    let l = log.clone();
    let id = reactor.add_system_event_trigger(Phase::During, SystemEvent::Startup, move || {
        push(&l, "removed one ran");
        Ok(())
    });
    reactor.remove_system_event_trigger(id).unwrap();
    assert_eq!(
        reactor.remove_system_event_trigger(id),
        Err(ReactorError::UnknownTrigger)
    );
    stop_when_running(&reactor);
    reactor.run().unwrap();
    assert!(entries(&log).is_empty());
}

/// Twisted: ThreePhaseEventTests.test_triggersRunOnce: a trigger runs at its event once;
/// running the reactor again does not run it again.
#[test]
fn triggers_run_once() {
    let reactor = Reactor::new().unwrap();
    let log: Log = Rc::default();
    let l = log.clone();
    reactor.add_system_event_trigger(Phase::After, SystemEvent::Startup, move || {
        push(&l, "started");
        Ok(())
    });
    stop_when_running(&reactor);
    reactor.run().unwrap();
    stop_when_running(&reactor);
    reactor.run().unwrap();
    assert_eq!(entries(&log), ["started"]);
}

/// Twisted: test_core.test_callWhenRunningOrder: before `run()` the calls wait for
/// startup and keep their order; while running they run at once.
#[test]
fn call_when_running_order() {
    let reactor = Reactor::new().unwrap();
    let log: Log = Rc::default();
    for name in ["first", "second"] {
        let l = log.clone();
        assert!(reactor.call_when_running(move || push(&l, name)).is_some());
    }
    let (l, r) = (log.clone(), reactor.clone());
    reactor.call_when_running(move || {
        let l2 = l.clone();
        assert!(r.call_when_running(move || push(&l2, "now")).is_none());
        push(&l, "third");
        r.stop().unwrap();
    });
    reactor.run().unwrap();
    assert_eq!(entries(&log), ["first", "second", "now", "third"]);
}

/// Twisted: test_core.test_runningForStartupEvents (adapted): the reactor counts as
/// running in every startup phase, so `call_when_running` inside one runs at once.
#[test]
fn running_during_startup_phases() {
    let reactor = Reactor::new().unwrap();
    let seen = Rc::new(RefCell::new(vec![]));
    for phase in [Phase::Before, Phase::During, Phase::After] {
        let (s, r) = (seen.clone(), reactor.clone());
        reactor.add_system_event_trigger(phase, SystemEvent::Startup, move || {
            s.borrow_mut().push(r.is_running());
            Ok(())
        });
    }
    stop_when_running(&reactor);
    reactor.run().unwrap();
    assert_eq!(*seen.borrow(), [true, true, true]);
}

/// Installs the signal handlers on a fresh reactor, has `raise` send a signal (before
/// `run()`, or from a callback once running), and asserts that the signal stopped the
/// reactor gracefully (its shutdown triggers ran) well before a 5 s failsafe would have.
fn assert_a_signal_stops_the_reactor(raise: impl FnOnce(&Reactor) + Send + 'static) {
    let _turn = signals_to_myself();
    bounded(Duration::from_secs(10), || {
        let reactor = Reactor::new().unwrap();
        let guard = reactor.install_signal_handlers().unwrap();
        let log: Log = Rc::default();
        let l = log.clone();
        reactor.add_system_event_trigger(Phase::After, SystemEvent::Shutdown, move || {
            push(&l, "shut down");
            Ok(())
        });
        raise(&reactor);
        // A failsafe so a lost signal fails the test instead of hanging it.
        let r = reactor.clone();
        reactor.call_later(Duration::from_secs(5), move || {
            let _ = r.stop();
        });
        reactor.run().unwrap();
        assert_eq!(entries(&log), ["shut down"]);
        assert!(
            reactor.now() < Duration::from_secs(5),
            "stopped by the signal"
        );
        drop(guard);
    });
}

/// Twisted: test_base.ReactorBaseSignalTests (adapted): with handlers installed, SIGTERM
/// stops the reactor gracefully, running the shutdown triggers.
#[test]
fn sigterm_stops_the_reactor_gracefully() {
    assert_a_signal_stops_the_reactor(|reactor| {
        reactor.call_when_running(|| {
            signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
        });
    });
}

/// The signal handler only writes to a wake-up socket (as Twisted's reactor uses
/// `signal.set_wakeup_fd`), so a signal that arrives before `run()` is not lost: the
/// reactor reads it on its first turn and stops, running its shutdown triggers.
#[test]
fn a_signal_before_run_stops_the_reactor_on_its_first_turn() {
    assert_a_signal_stops_the_reactor(|_| {
        signal_hook::low_level::raise(signal_hook::consts::SIGINT).unwrap();
    });
}

/// The signal handlers live in the reactor as two wake-up sockets, and dropping the guard
/// takes them away on the reactor's next turn.
#[test]
fn dropping_the_signal_guard_removes_its_wake_up_sockets() {
    let _turn = signals_to_myself();
    let reactor = Reactor::new().unwrap();
    let before = reactor.stats().sources;
    let guard = reactor.install_signal_handlers().unwrap();
    assert_eq!(reactor.stats().sources, before + 2);
    drop(guard);
    let d = {
        let (d, r) = Deferred::<()>::pending();
        reactor.call_soon(move || r.callback(()).unwrap());
        d
    };
    d.wait().unwrap();
    assert_eq!(reactor.stats().sources, before);
}

/// With only signal handlers installed, a `wait()` on a Deferred nothing will fire still
/// ends with an error instead of hanging: a signal could only stop the reactor.
#[test]
fn signal_handlers_do_not_keep_a_hopeless_wait_alive() {
    let _turn = signals_to_myself();
    bounded(Duration::from_secs(10), || {
        let reactor = Reactor::new().unwrap();
        let _guard = reactor.install_signal_handlers().unwrap();
        let (d, _r) = Deferred::<()>::pending();
        let err = d.wait().unwrap_err();
        assert!(
            matches!(
                err.downcast_ref::<WaitError>(),
                Some(WaitError::ReactorStopped)
            ),
            "{err}"
        );
        drop(reactor);
    });
}

/// Two signals that arrive before the reactor's next turn are two stops, not one: the
/// first begins the shutdown and the second ends its wait for triggers at once (as a
/// second Ctrl-C during the shutdown does), not after the shutdown timeout.
#[test]
fn two_signals_read_in_one_turn_stop_at_once() {
    let _turn = signals_to_myself();
    bounded(Duration::from_secs(10), || {
        let reactor = Reactor::new().unwrap();
        let guard = reactor.install_signal_handlers().unwrap();
        reactor.set_shutdown_timeout(Duration::from_secs(60));
        // A shutdown trigger that never fires: only a second stop ends the wait for it.
        let (never, _keep) = Deferred::<()>::pending();
        reactor.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, move || never);
        signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
        signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
        reactor.run().unwrap();
        assert!(
            reactor.now() < Duration::from_secs(5),
            "the second signal ended the shutdown's wait"
        );
        drop(guard);
    });
}
