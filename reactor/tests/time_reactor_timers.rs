//! Timers on the real reactor, whose `Clock` reads real time.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ropewalk_reactor::{Clock, DelayedCall, Reactor, TimerError};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Stops `reactor` after `limit` even if a test's own stop never comes (a bug then fails
/// the test's assertions instead of hanging it).
fn safety_stop(reactor: &Reactor, limit: Duration) -> DelayedCall {
    let r = reactor.clone();
    reactor.call_later(limit, move || {
        let _ = r.stop();
    })
}

/// Twisted: test_internet.TimeTests.test_seconds, testCallLaterTime
#[test]
fn now_moves_forward_and_call_time_is_now_plus_delay() {
    let reactor = Reactor::new().unwrap();
    let a = reactor.now();
    let before = reactor.now();
    let call = reactor.call_later(ms(250), || {});
    let after = reactor.now();
    assert!(after >= before && before >= a);
    assert!(call.time() >= before + ms(250) && call.time() <= after + ms(250));
    call.cancel().unwrap();
}

/// A timed call never runs before its time: `reactor.now()` inside it is at least
/// `call.time()`, and at least the delay has passed on the wall clock.
/// Twisted: test_internet.TimeTests.test_callLaterUsesReactorSecondsInDelayedCall
#[test]
fn timers_never_fire_early() {
    let reactor = Reactor::new().unwrap();
    type Seen = Vec<(u64, Duration, Duration, Duration)>;
    let seen: Rc<RefCell<Seen>> = Rc::default();
    let start = Instant::now();
    let mut calls = Vec::new();
    for delay in [0u64, 1, 2, 3, 5, 8, 13, 21, 34] {
        let (r, s) = (reactor.clone(), seen.clone());
        let me: Rc<RefCell<Option<DelayedCall>>> = Rc::default();
        let m = me.clone();
        let call = reactor.call_later(ms(delay), move || {
            let time = m.borrow().as_ref().unwrap().time();
            s.borrow_mut().push((delay, r.now(), time, start.elapsed()));
        });
        *me.borrow_mut() = Some(call.clone());
        calls.push(call);
    }
    let r = reactor.clone();
    reactor.call_later(ms(40), move || r.stop().unwrap());
    let safety = safety_stop(&reactor, Duration::from_secs(10));
    reactor.run().unwrap();
    safety.cancel().unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 9, "not all ran: {seen:?}");
    for &(delay, now, time, elapsed) in seen.iter() {
        assert!(
            now >= time,
            "{delay} ms call ran at {now:?}, before its time {time:?}"
        );
        assert!(
            elapsed >= ms(delay),
            "{delay} ms call ran after only {elapsed:?}"
        );
    }
    let delays: Vec<u64> = seen.iter().map(|s| s.0).collect();
    assert_eq!(delays, [0, 1, 2, 3, 5, 8, 13, 21, 34], "not in time order");
    assert!(calls.iter().all(|c| !c.active()));
}

/// Calls with exactly equal deadlines run in the order they were scheduled.
#[test]
fn equal_deadlines_run_fifo() {
    let reactor = Reactor::new().unwrap();
    let order: Rc<RefCell<Vec<usize>>> = Rc::default();
    let calls: Vec<DelayedCall> = (0..50)
        .map(|i| {
            let o = order.clone();
            reactor.call_later(ms(5), move || o.borrow_mut().push(i))
        })
        .collect();
    // Line every call up on exactly one deadline.
    let target = calls.last().unwrap().time() + ms(5);
    for c in &calls {
        c.delay(target - c.time()).unwrap();
    }
    assert!(calls.iter().all(|c| c.time() == target));
    let deadline = Instant::now() + Duration::from_secs(10);
    while order.borrow().len() < 50 && Instant::now() < deadline {
        reactor.iterate(ms(50));
    }
    assert_eq!(*order.borrow(), (0..50).collect::<Vec<_>>());
}

/// A `call_later(ZERO)` made while timed calls run does not run in that pass: it runs on
/// the next turn, after the calls already due (Twisted's observed order
/// `['a', 'eq0'…'eq4', 'a-inner0']`, unlike `task.Clock`).
/// Twisted: base.ReactorBase.runUntilCurrent behaviour (reference §2.1, item 3)
#[test]
fn zero_delay_call_made_inside_a_timed_call_runs_on_the_next_turn() {
    let reactor = Reactor::new().unwrap();
    let log: Rc<RefCell<Vec<(String, u64)>>> = Rc::default();
    let (r, l) = (reactor.clone(), log.clone());
    reactor.call_later(Duration::ZERO, move || {
        l.borrow_mut().push(("a".into(), r.stats().turns));
        let (r2, l2) = (r.clone(), l.clone());
        r.call_later(Duration::ZERO, move || {
            l2.borrow_mut().push(("a-inner".into(), r2.stats().turns));
        });
    });
    for i in 0..5 {
        let (r, l) = (reactor.clone(), log.clone());
        reactor.call_later(Duration::ZERO, move || {
            l.borrow_mut().push((format!("eq{i}"), r.stats().turns));
        });
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.borrow().is_empty() && Instant::now() < deadline {
        reactor.iterate(Duration::ZERO);
    }
    let first_turn = log.borrow()[0].1;
    let names: Vec<String> = log.borrow().iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(names, ["a", "eq0", "eq1", "eq2", "eq3", "eq4"], "same pass");
    assert!(log.borrow().iter().all(|&(_, t)| t == first_turn));
    reactor.iterate(Duration::ZERO);
    let log = log.borrow();
    assert_eq!(
        log.len(),
        7,
        "the inner call did not run on the next turn: {log:?}"
    );
    assert_eq!(log[6], ("a-inner".to_string(), first_turn + 1));
}

/// A million pending timers schedule and cancel (in a scattered order) without trouble,
/// and none of them runs.
#[test]
fn a_million_timers_schedule_and_cancel() {
    const N: usize = 1_000_000;
    let reactor = Reactor::new().unwrap();
    let ran = Rc::new(Cell::new(0usize));
    let calls: Vec<DelayedCall> = (0..N)
        .map(|i| {
            let ran = ran.clone();
            // Deadlines spread over an hour, far in the future, not in insertion order.
            let delay = Duration::from_secs(3600) + Duration::from_micros((i * 7919 % N) as u64);
            reactor.call_later(delay, move || ran.set(ran.get() + 1))
        })
        .collect();
    assert_eq!(reactor.stats().pending_timers, N);
    // Cancel the odd ones first, then the even ones from the back.
    for c in calls.iter().skip(1).step_by(2) {
        c.cancel().unwrap();
    }
    assert_eq!(reactor.stats().pending_timers, N / 2);
    for c in calls.iter().step_by(2).rev() {
        c.cancel().unwrap();
    }
    assert_eq!(reactor.stats().pending_timers, 0);
    assert!(calls.iter().all(|c| !c.active()));
    assert_eq!(calls[12345].cancel(), Err(TimerError::AlreadyCancelled));
    reactor.iterate(Duration::ZERO);
    assert_eq!(ran.get(), 0);
    // The queue still works afterwards.
    let r = ran.clone();
    let call = reactor.call_later(Duration::ZERO, move || r.set(r.get() + 1));
    let deadline = Instant::now() + Duration::from_secs(10);
    while call.active() && Instant::now() < deadline {
        reactor.iterate(ms(10));
    }
    assert_eq!(ran.get(), 1);
    assert_eq!(reactor.stats().pending_timers, 0);
}

/// A timed call that panics is logged and the loop goes on running the others.
#[test]
fn panicking_timed_call_does_not_stop_the_loop() {
    support::capture_logs();
    let reactor = Reactor::new().unwrap();
    let after = Rc::new(Cell::new(false));
    reactor.call_later(ms(1), || panic!("reactor-timer-panic-91bd"));
    let (r, a) = (reactor.clone(), after.clone());
    reactor.call_later(ms(2), move || {
        a.set(true);
        r.stop().unwrap();
    });
    let safety = safety_stop(&reactor, Duration::from_secs(10));
    reactor.run().unwrap();
    safety.cancel().unwrap();
    assert!(after.get(), "the loop stopped at the panic");
    let records = support::logged("reactor-timer-panic-91bd");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].0, log::Level::Error);
}

/// Cancel, reset and delay work on the reactor's own calls.
/// Twisted: test_internet.TimeTests.test_cancelDelayedCall, test_callLaterReset
#[test]
fn cancel_and_reset_on_the_reactor() {
    let reactor = Reactor::new().unwrap();
    let log: Rc<RefCell<Vec<&str>>> = Rc::default();
    let l = log.clone();
    let cancelled = reactor.call_later(ms(1), move || l.borrow_mut().push("cancelled"));
    let l = log.clone();
    let reset = reactor.call_later(Duration::from_secs(3600), move || {
        l.borrow_mut().push("reset")
    });
    cancelled.cancel().unwrap();
    reset.reset(ms(2)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while reset.active() && Instant::now() < deadline {
        reactor.iterate(ms(10));
    }
    assert_eq!(*log.borrow(), ["reset"]);
    assert_eq!(reset.cancel(), Err(TimerError::AlreadyCalled));
    assert_eq!(cancelled.cancel(), Err(TimerError::AlreadyCancelled));
}

/// A blocking turn wakes up for the next timer instead of spinning or oversleeping:
/// `iterate` with a long timeout returns once the timer is due, in a few turns.
#[test]
fn iterate_wakes_for_the_next_timer() {
    let reactor = Reactor::new().unwrap();
    let call = reactor.call_later(ms(20), || {});
    let start = Instant::now();
    let turns0 = reactor.stats().turns;
    while call.active() && start.elapsed() < Duration::from_secs(10) {
        reactor.iterate(Duration::from_secs(5));
    }
    assert!(!call.active());
    let turns = reactor.stats().turns - turns0;
    assert!(turns <= 3, "took {turns} turns for one timer (busy loop?)");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "overslept: {:?}",
        start.elapsed()
    );
}

/// A call very far in the future does not break the poll timeout (Twisted clamps it).
/// Twisted: internet/test/test_time.py test_distantDelayedCall
#[test]
fn distant_delayed_call_does_not_break_the_loop() {
    support::bounded(Duration::from_secs(20), || {
        let reactor = Reactor::new().unwrap();
        let far = reactor.call_later(Duration::MAX, || panic!("never"));
        let far2 = reactor.call_later(Duration::from_secs(u64::MAX / 4), || panic!("never"));
        let start = Instant::now();
        reactor.iterate(ms(10));
        assert!(start.elapsed() < Duration::from_secs(5));
        let ran = Rc::new(Cell::new(false));
        let (r, rr) = (reactor.clone(), ran.clone());
        reactor.call_later(ms(5), move || {
            rr.set(true);
            r.stop().unwrap();
        });
        let safety = safety_stop(&reactor, Duration::from_secs(10));
        reactor.run().unwrap();
        safety.cancel().unwrap();
        assert!(ran.get());
        assert!(far.active() && far2.active());
        far.cancel().unwrap();
        far2.cancel().unwrap();
    });
}

#[test]
fn loop_time_is_read_once_per_wake_up_and_never_ahead_of_now() {
    let reactor = Reactor::new().unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (r, s) = (reactor.clone(), seen.clone());
    reactor.call_later(Duration::from_millis(2), move || {
        let first = r.loop_time();
        // Time passes inside the turn; the turn's reading stays.
        let until = r.now() + Duration::from_millis(1);
        while r.now() < until {}
        s.borrow_mut().push((first, r.loop_time(), r.now()));
        r.stop().unwrap();
    });
    reactor.run().unwrap();
    let (first, again, now) = seen.borrow()[0];
    assert_eq!(first, again);
    assert!(first >= Duration::from_millis(2), "{first:?}");
    assert!(first < now);
    // Outside a turn, it is `now`.
    let before = reactor.now();
    let t = reactor.loop_time();
    assert!(t >= before && t <= reactor.now());
}
