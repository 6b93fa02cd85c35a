//! `call_later` reads the same on every clock: a `Reactor`, a `ManualClock`, a
//! `&dyn Clock`, an `Rc<dyn Clock>` and a `Box<dyn Clock>` (before, a `dyn Clock` needed
//! `call_later_boxed(delay, Box::new(f))`, which code generic over `C: Clock` still calls).

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use ropewalk_reactor::deferred::Deferred;
use ropewalk_reactor::{Clock, ManualClock, Reactor};
use support::bounded;

type Log = Rc<RefCell<Vec<&'static str>>>;

fn generic<C: Clock>(clock: &C, log: &Log) {
    let log = log.clone();
    clock.call_later_boxed(
        Duration::from_secs(1),
        Box::new(move || log.borrow_mut().push("generic")),
    );
}

fn by_dyn_ref(clock: &dyn Clock, log: &Log) {
    let log = log.clone();
    clock.call_later(Duration::from_secs(2), move || {
        log.borrow_mut().push("&dyn")
    });
}

#[test]
fn call_later_works_on_every_form_of_clock() {
    let clock = ManualClock::new();
    let log: Log = Rc::default();
    generic(&clock, &log);
    by_dyn_ref(&clock, &log);
    let shared: Rc<dyn Clock> = Rc::new(clock.clone());
    let l = log.clone();
    shared.call_later(Duration::from_secs(3), move || {
        l.borrow_mut().push("Rc<dyn>")
    });
    let boxed: Box<dyn Clock> = Box::new(clock.clone());
    let l = log.clone();
    let call = boxed.call_later(Duration::from_secs(4), move || {
        l.borrow_mut().push("Box<dyn>")
    });
    assert_eq!(call.time(), Duration::from_secs(4));
    let l = log.clone();
    clock.call_later(Duration::from_secs(5), move || {
        l.borrow_mut().push("ManualClock")
    });

    clock.advance(Duration::from_millis(4500));
    assert_eq!(*log.borrow(), ["generic", "&dyn", "Rc<dyn>", "Box<dyn>"]);
    clock.advance(Duration::from_secs(1));
    assert_eq!(log.borrow().len(), 5);
}

#[test]
fn call_later_on_a_reactor_as_dyn_clock_fires_on_the_loop() {
    bounded(Duration::from_secs(10), || {
        let reactor = Reactor::new().unwrap();
        let (early, fired_early) = Deferred::<()>::pending();
        reactor.call_later(Duration::from_millis(1), move || {
            fired_early.callback(()).unwrap();
        });
        early.wait().unwrap();
        let clock: Rc<dyn Clock> = Rc::new(reactor.clone());
        let (d, resolver) = Deferred::<Duration>::pending();
        let start = clock.now();
        let c = clock.clone();
        clock.call_later(Duration::from_millis(20), move || {
            resolver.callback(c.now()).unwrap();
        });
        let fired_at = d.wait().unwrap();
        assert!(fired_at >= start + Duration::from_millis(20));
    });
}
