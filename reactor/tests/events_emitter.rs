//! `Emitter`: listeners and the reactor's event queue (the event-handler pattern).

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use ropewalk_reactor::{Emitter, ListenerId, Reactor};
use support::{capture_logs, logged};

type Log = Rc<RefCell<Vec<String>>>;

fn logger(log: &Log, name: &'static str) -> impl FnMut(&u32) + 'static {
    let log = log.clone();
    move |e| log.borrow_mut().push(format!("{name}:{e}"))
}

/// Listeners run in registration order, synchronously, each once per event.
#[test]
fn emit_calls_listeners_in_order() {
    let e = Emitter::new();
    let log: Log = Rc::default();
    e.on(logger(&log, "a"));
    e.on(logger(&log, "b"));
    e.emit(&1);
    e.emit(&2);
    assert_eq!(*log.borrow(), ["a:1", "b:1", "a:2", "b:2"]);
}

/// A listener added during an emit waits for the next event; one removed before its
/// turn is not called.
#[test]
fn listeners_change_while_being_called() {
    let e: Emitter<u32> = Emitter::new();
    let log: Log = Rc::default();
    let victim: Rc<RefCell<Option<ListenerId>>> = Rc::default();
    let (e2, l2, v2) = (e.clone(), log.clone(), victim.clone());
    e.on(move |n| {
        l2.borrow_mut().push(format!("first:{n}"));
        if *n == 1 {
            e2.on(logger(&l2, "late"));
            if let Some(id) = v2.borrow_mut().take() {
                assert!(e2.off(id));
            }
        }
    });
    *victim.borrow_mut() = Some(e.on(logger(&log, "victim")));
    e.emit(&1);
    e.emit(&2);
    assert_eq!(*log.borrow(), ["first:1", "first:2", "late:2"]);
}

/// `post` queues the event: it is emitted on a later reactor turn, in posting order.
#[test]
fn post_dispatches_on_a_later_turn() {
    let reactor = Reactor::new().unwrap();
    let e = Emitter::new();
    let log: Log = Rc::default();
    e.on(logger(&log, "h"));
    e.post(&reactor, 1);
    e.post(&reactor, 2);
    assert!(log.borrow().is_empty());
    reactor.iterate(Duration::ZERO);
    assert_eq!(*log.borrow(), ["h:1", "h:2"]);
}

/// A panicking listener is logged and the others still run.
#[test]
fn panicking_listener_is_logged() {
    capture_logs();
    let e = Emitter::new();
    let log: Log = Rc::default();
    e.on(|_: &u32| panic!("emitter-test: listener blew up"));
    e.on(logger(&log, "after"));
    e.emit(&7);
    assert_eq!(*log.borrow(), ["after:7"]);
    assert_eq!(logged("emitter-test: listener blew up").len(), 1);
}

/// `off` of an unknown id is false; `listener_count` follows.
#[test]
fn off_and_count() {
    let e: Emitter<u32> = Emitter::new();
    let id = e.on(|_| {});
    assert_eq!(e.listener_count(), 1);
    assert!(e.off(id));
    assert!(!e.off(id));
    assert_eq!(e.listener_count(), 0);
}
