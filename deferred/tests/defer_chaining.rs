//! A Deferred returned from a callback (implicit chaining), `chain_deferred`, and
//! pause/unpause: Twisted's `DeferredTests` in test/test_defer.py.
//!
//! Not ported, one line each:
//! - `test_chainedPausedDeferredWithResult`, and the `d2.pause()`/`d2.unpause()` half of
//!   `test_callbackReturnsDeferred`: the inner handle is moved into the outer chain, so nothing
//!   can unpause it afterwards (waiting on a Deferred that waits on a third is ported instead).
//! - `test_asynchronousImplicitChain`/`…ErrorChain` "inner's later callbacks see None", and
//!   `test_resultOfDeferredResultOfDeferredOfFiredDeferredCalled`'s "callbacks added to the
//!   middle afterwards": the inner handle is moved, so nothing can be added to it afterwards.
//! - `test_circularChainWarning`, `test_circularChainException`: a callback cannot return the
//!   Deferred it is attached to; `add_*` consumed that handle.
//! - `test_chainDeferredRecordsExplicitChain` (`a._chainedTo is b`): private state; the
//!   observable part (the target fires with the source's result) is ported.
//! - `test_boundedStackDepth`: see defer_stack.rs (a million links on a 2 MiB stack).

use std::cell::RefCell;
use std::rc::Rc;

use ropewalk_deferred::{succeed, Deferred, Failure};

type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn entries(l: &Log) -> Vec<String> {
    l.borrow().clone()
}

fn push(l: &Log, s: impl Into<String>) {
    l.borrow_mut().push(s.into());
}

/// Twisted: DeferredTests.test_callbackReturnsDeferred (unpaused inner; see the note above)
#[test]
fn callback_returning_unfired_deferred_waits_for_it() {
    let got = log();
    let (d1, r1) = Deferred::<i32>::pending();
    let (d2, r2) = Deferred::<i32>::pending();
    let g = got.clone();
    let d1 = d1.add_callback(move |_| d2).add_callback(move |n| {
        push(&g, format!("got {n}"));
        Ok(n)
    });
    r1.callback(1).unwrap();
    assert!(entries(&got).is_empty(), "must wait for d2");
    assert!(d1.is_paused());
    r2.callback(2).unwrap();
    assert_eq!(entries(&got), ["got 2"]);
    assert!(!d1.is_paused());
    assert_eq!(d1.wait().unwrap(), 2);
}

/// Twisted: DeferredTests.test_errbackReturnsDeferred
#[test]
fn errback_returning_deferred_waits_for_it() {
    let got = log();
    let (d, r) = Deferred::<&str>::pending();
    let (d2, r2) = Deferred::<&str>::pending();
    let g = got.clone();
    let mut d = d.add_errback(move |_| d2).add_callback(move |s| {
        push(&g, s);
        Ok(s)
    });
    r.errback(std::io::Error::other("value error")).unwrap();
    assert!(d.try_result().is_none(), "assertNoResult");
    assert!(entries(&got).is_empty());
    r2.callback("result").unwrap();
    assert_eq!(entries(&got), ["result"]);
}

/// Twisted: DeferredTests.test_synchronousImplicitChain
#[test]
fn callback_returning_fired_deferred_continues_synchronously() {
    let got = log();
    let g = got.clone();
    let d = succeed(1)
        .add_callback(|_| succeed("inner"))
        .add_callback(move |s| {
            push(&g, s);
            Ok(())
        });
    assert_eq!(entries(&got), ["inner"]);
    assert!(d.has_result());
}

/// Twisted: DeferredTests.test_asynchronousImplicitChain (the outer part)
#[test]
fn outer_takes_inner_result_when_inner_fires_later() {
    let got = log();
    let (first, r1) = Deferred::<()>::pending();
    let (second, r2) = Deferred::<u64>::pending();
    let g = got.clone();
    let _first = first.add_callback(move |_| second).add_callback(move |n| {
        push(&g, n.to_string());
        Ok(())
    });
    r1.callback(()).unwrap();
    assert!(entries(&got).is_empty());
    r2.callback(42).unwrap();
    assert_eq!(entries(&got), ["42"]);
}

/// Twisted: DeferredTests.test_synchronousImplicitErrorChain
#[test]
fn callback_returning_failed_deferred_switches_to_errback() {
    let d = succeed(1)
        .add_callback(|_| Deferred::<i32>::fail(Failure::msg("inner failed")))
        .add_callback(|n| Ok(n + 1000))
        .add_errback(|f| {
            assert_eq!(f.to_string(), "inner failed");
            Ok(-1)
        });
    assert_eq!(d.wait().unwrap(), -1);
}

/// Twisted: DeferredTests.test_asynchronousImplicitErrorChain
#[test]
fn outer_takes_inner_failure_when_inner_fails_later() {
    let (first, r1) = Deferred::<()>::pending();
    let (second, r2) = Deferred::<i32>::pending();
    let mut first = first.add_callback(move |_| second);
    r1.callback(()).unwrap();
    assert!(first.try_result().is_none());
    r2.errback(std::io::Error::other("late")).unwrap();
    let f = first.try_result().unwrap().unwrap_err();
    assert!(f.is::<std::io::Error>());
}

/// Twisted: DeferredTests.test_doubleAsynchronousImplicitChaining
#[test]
fn chaining_is_transitive() {
    let got = log();
    let (first, r_first) = Deferred::<&str>::pending();
    let (second, r_second) = Deferred::<()>::pending();
    let (third, r_third) = Deferred::<()>::pending();
    let second = second.add_callback(move |_| first);
    let g = got.clone();
    let _third = third.add_callback(move |_| second).add_callback(move |s| {
        push(&g, s);
        Ok(())
    });
    // second waits for first; third waits for second.
    r_second.callback(()).unwrap();
    r_third.callback(()).unwrap();
    assert!(entries(&got).is_empty());
    r_first.callback("result").unwrap();
    assert_eq!(entries(&got), ["result"]);
}

/// Twisted: DeferredTests.test_innerCallbacksPreserved
#[test]
fn inner_callbacks_run_before_the_outer_continues() {
    let got = log();
    let (inner, r_inner) = Deferred::<String>::pending();
    let (g0, g1, g2, g3) = (got.clone(), got.clone(), got.clone(), got.clone());
    let outer = succeed("outer".to_string()).add_callback(move |s| {
        push(&g0, format!("start-of-cb {s}"));
        succeed("inner".to_string())
            .add_callback(move |_| {
                push(&g1, "firstCallback");
                inner
            })
            .add_callback(move |s| {
                push(&g2, format!("secondCallback {s}"));
                Ok(s.repeat(2))
            })
    });
    r_inner.callback("orange".into()).unwrap();
    let _outer = outer.add_callback(move |s| {
        push(&g3, s);
        Ok(())
    });
    assert_eq!(
        entries(&got),
        [
            "start-of-cb outer",
            "firstCallback",
            "secondCallback orange",
            "orangeorange"
        ]
    );
}

/// Twisted: DeferredTests.test_continueCallbackNotFirst (gatherResults([a]) replaced by `a`)
#[test]
fn continuation_is_found_after_other_callbacks() {
    let got = log();
    let (a, ra) = Deferred::<&str>::pending();
    let (g0, g1, g2, g3) = (got.clone(), got.clone(), got.clone(), got.clone());
    let d = succeed("outer")
        .add_callback(move |s| {
            push(&g0, format!("cb {s}"));
            let (d, r) = Deferred::<()>::pending();
            let returner = d
                .add_callback(move |_| {
                    push(&g1, "firstCallback");
                    a
                })
                .add_callback(move |s| {
                    push(&g2, format!("secondCallback {s}"));
                    Ok(())
                });
            r.callback(()).unwrap();
            returner
        })
        .add_errback(move |f| {
            push(&g3, format!("failure {f}"));
            Ok(())
        });
    assert_eq!(entries(&got), ["cb outer", "firstCallback"]);
    ra.callback("withers").unwrap();
    assert_eq!(
        entries(&got),
        ["cb outer", "firstCallback", "secondCallback withers"]
    );
    assert!(d.has_result());
}

/// Twisted: DeferredTests.test_callbackOrderPreserved
#[test]
fn outer_callbacks_run_after_the_inner_ones() {
    let got = log();
    let (a, ra) = Deferred::<&str>::pending();
    let (outer, r_outer) = Deferred::<&str>::pending();
    let (g0, g1, g2, g3) = (got.clone(), got.clone(), got.clone(), got.clone());
    let _outer = outer
        .add_callback(move |s| {
            push(&g0, format!("cb {s}"));
            let (d, r) = Deferred::<()>::pending();
            let returner = d
                .add_callback(move |_| {
                    push(&g1, "firstCallback");
                    a
                })
                .add_callback(move |s| {
                    push(&g2, format!("secondCallback {s}"));
                    Ok(())
                });
            r.callback(()).unwrap();
            returner
        })
        .add_callback(move |_| {
            push(&g3, "final");
            Ok(())
        });
    r_outer.callback("outer").unwrap();
    assert_eq!(entries(&got), ["cb outer", "firstCallback"]);
    ra.callback("withers").unwrap();
    assert_eq!(
        entries(&got),
        [
            "cb outer",
            "firstCallback",
            "secondCallback withers",
            "final"
        ]
    );
}

/// Twisted: DeferredTests.test_nestedAsynchronousChainedDeferredsWithExtraCallbacks
#[test]
fn nested_chains_with_extra_callbacks() {
    let got = log();
    let (inner, r_inner) = Deferred::<&str>::pending();
    let (g0, g1, g2, g3) = (got.clone(), got.clone(), got.clone(), got.clone());
    let (outer, r_outer) = Deferred::<&str>::pending();
    let _outer = outer
        .add_callback(move |s| {
            push(&g0, format!("start-of-cb {s}"));
            succeed("inner")
                .add_callback(move |s| {
                    push(&g1, format!("firstCallback {s}"));
                    inner.add_callback(|s| Ok(vec![s]))
                })
                .add_callback(move |v| {
                    push(&g2, format!("secondCallback {v:?}"));
                    Ok(v.repeat(2))
                })
        })
        .add_callback(move |v| {
            push(&g3, format!("outer {v:?}"));
            Ok(())
        });
    r_outer.callback("outer").unwrap();
    assert_eq!(entries(&got), ["start-of-cb outer", "firstCallback inner"]);
    r_inner.callback("withers").unwrap();
    assert_eq!(
        entries(&got),
        [
            "start-of-cb outer",
            "firstCallback inner",
            "secondCallback [\"withers\"]",
            "outer [\"withers\", \"withers\"]"
        ]
    );
}

/// Twisted: DeferredTests.test_resultOfDeferredResultOfDeferredOfFiredDeferredCalled
/// (order of firing kept: second, first, then third)
#[test]
fn three_deferreds_fired_out_of_order() {
    let got = log();
    let (first, r1) = Deferred::<()>::pending();
    let (second, r2) = Deferred::<()>::pending();
    let (third, r3) = Deferred::<&str>::pending();
    let second = second.add_callback(move |_| third);
    let g = got.clone();
    let _first = first.add_callback(move |_| second).add_callback(move |s| {
        push(&g, s);
        Ok(())
    });
    r2.callback(()).unwrap();
    r1.callback(()).unwrap();
    assert!(entries(&got).is_empty());
    r3.callback("third").unwrap();
    assert_eq!(entries(&got), ["third"]);
}

/// Twisted: DeferredTests.test_pausedDeferredChained (the inner's own callbacks run even
/// though the outer is paused; the outer goes on only when unpaused)
#[test]
fn paused_outer_does_not_stop_the_inner() {
    let got = log();
    let (first, r1) = Deferred::<()>::pending();
    let (second, r2) = Deferred::<()>::pending();
    let (g1, g2) = (got.clone(), got.clone());
    let second = second.add_callback(move |_| {
        push(&g1, "second's callback");
        Ok(())
    });
    let mut first = first.add_callback(move |_| second);
    r1.callback(()).unwrap();
    first.pause();
    r2.callback(()).unwrap();
    assert_eq!(entries(&got), ["second's callback"]);
    let first = first.add_callback(move |_| {
        push(&g2, "first goes on");
        Ok(())
    });
    assert_eq!(entries(&got), ["second's callback"]);
    first.unpause();
    assert_eq!(entries(&got), ["second's callback", "first goes on"]);
}

/// Twisted: DeferredTests.test_chainDeferredRecordsImplicitChain and
/// test_explicitChainClearedWhenResolved (seen through `Debug` and `is_paused`)
#[test]
fn implicit_chain_recorded_then_cleared() {
    let (b, rb) = Deferred::<i32>::pending();
    let (a, ra) = Deferred::<i32>::pending();
    let a = a.add_callback(move |_| b);
    ra.callback(0).unwrap();
    assert!(format!("{a:?}").contains("waiting on Deferred at"));
    assert!(a.is_paused());
    rb.callback(1).unwrap();
    assert!(!format!("{a:?}").contains("waiting on"));
    assert!(!a.is_paused());
    assert_eq!(a.wait().unwrap(), 1);
}

/// Twisted: DeferredTests.test_explicitChainClearedWhenResolved (chainDeferred)
#[test]
fn chain_deferred_hands_on_the_value() {
    let (a, ra) = Deferred::<&str>::pending();
    let (b, rb) = Deferred::<&str>::pending();
    b.chain_deferred(ra);
    assert!(!a.is_called());
    rb.callback("x").unwrap();
    assert!(a.has_result());
    assert_eq!(a.wait().unwrap(), "x");
}

/// Twisted: chainDeferred = addCallbacks(d2.callback, d2.errback) (reference §1.5.29)
#[test]
fn chain_deferred_hands_on_a_failure() {
    let (a, ra) = Deferred::<i32>::pending();
    let (b, rb) = Deferred::<i32>::pending();
    b.add_callback(|n| Ok(n * 2)).chain_deferred(ra);
    rb.errback(std::io::Error::other("gone")).unwrap();
    assert_eq!(a.wait().unwrap_err().to_string(), "gone");
}

/// Twisted: DeferredTests.testPausedFailure
#[test]
fn paused_failure_waits_for_unpause() {
    let got = log();
    let mut d = Deferred::<()>::fail(Failure::msg("fail"));
    d.pause();
    let g = got.clone();
    let d = d.add_errback(move |f| {
        push(&g, f.to_string());
        Ok(())
    });
    assert!(entries(&got).is_empty());
    d.unpause();
    assert_eq!(entries(&got), ["fail"]);
}

/// Twisted: DeferredTests.testUnpauseBeforeCallback
#[test]
fn unpause_before_callback() {
    let got = log();
    let (mut d, r) = Deferred::<i32>::pending();
    d.pause();
    let g = got.clone();
    let d = d.add_callback(move |n| {
        push(&g, n.to_string());
        Ok(n)
    });
    d.unpause();
    assert!(entries(&got).is_empty());
    r.callback(5).unwrap();
    assert_eq!(entries(&got), ["5"]);
}

/// Twisted: pause() is a counter (reference §1.3.18): two pauses need two unpauses.
#[test]
fn pauses_nest() {
    let got = log();
    let (mut d, r) = Deferred::<i32>::pending();
    d.pause();
    d.pause();
    let g = got.clone();
    let d = d.add_callback(move |n| {
        push(&g, n.to_string());
        Ok(n)
    });
    r.callback(1).unwrap();
    d.unpause();
    assert!(entries(&got).is_empty());
    assert!(d.is_paused());
    d.unpause();
    assert_eq!(entries(&got), ["1"]);
    assert!(d.has_result());
}

/// Twisted: the unmatched-unpause quirk (reference §1.3.19). A deliberate difference,
/// documented on `Deferred::unpause`: an unmatched unpause does nothing, so the next pause
/// still pauses (Twisted's counter would go to -1 and that pause would have no effect).
#[test]
fn unmatched_unpause_is_a_no_op() {
    let got = log();
    let mut d = succeed(3);
    d.unpause();
    d.pause();
    assert!(d.is_paused());
    let g = got.clone();
    let d = d.add_callback(move |n| {
        push(&g, n.to_string());
        Ok(n)
    });
    assert!(
        entries(&got).is_empty(),
        "pause after an unmatched unpause holds"
    );
    d.unpause();
    assert_eq!(entries(&got), ["3"]);
}

/// Found by defer_model.rs. The same as `paused_outer_does_not_stop_the_inner` (Twisted:
/// DeferredTests.test_pausedDeferredChained) and `implicit_chain_recorded_then_cleared`,
/// on a Deferred that had already fired when the callback was added, so the callback ran
/// at once: the handle it leaves is called and waiting, and pausing it does not hold back
/// the inner Deferred's own callbacks. (It used to be the inner Deferred's own handle.)
#[test]
fn a_callback_run_at_once_that_returns_a_pending_deferred_leaves_it_waiting() {
    let got = log();
    let (inner, r) = Deferred::<i32>::pending();
    let g1 = got.clone();
    let inner = inner.add_callback(move |n| {
        push(&g1, "inner's callback");
        Ok(n)
    });
    let mut outer = succeed(1).add_callback(move |_| inner);
    assert!(outer.is_called(), "it fired before the callback was added");
    assert!(
        outer.is_paused(),
        "waiting on the Deferred its callback returned"
    );
    assert!(!outer.has_result());
    assert!(format!("{outer:?}").contains("waiting on Deferred at"));
    outer.pause();
    r.callback(2).unwrap();
    assert_eq!(entries(&got), ["inner's callback"]);
    assert!(!outer.has_result(), "paused by its own handle");
    outer.unpause();
    assert_eq!(outer.wait().unwrap(), 2);
}

/// Found by defer_model.rs. An `unpause` with no `pause` before it does nothing (see
/// `unmatched_unpause_is_a_no_op`), also while the Deferred waits on one its callback
/// returned: it used to end the wait, and the next callback ran without the result.
#[test]
fn an_unmatched_unpause_does_not_end_a_wait() {
    let got = log();
    let (d, r) = Deferred::<i32>::pending();
    let (inner, ri) = Deferred::<i32>::pending();
    let g = got.clone();
    let d = d.add_callback(move |_| inner).add_callback(move |n| {
        push(&g, n.to_string());
        Ok(n)
    });
    r.callback(1).unwrap();
    d.unpause();
    assert!(
        entries(&got).is_empty(),
        "still waiting on the inner Deferred"
    );
    assert!(d.is_paused());
    ri.callback(7).unwrap();
    assert_eq!(entries(&got), ["7"]);
    assert_eq!(d.wait().unwrap(), 7);
}

/// Found by defer_model.rs. A `chain_deferred` source that can never go on (paused by its
/// handle, which `chain_deferred` consumed) and that nothing holds any more lets its target
/// go as a dropped resolver does: whatever waits on the target gets `ResolverDropped`
/// instead of waiting for ever on a Deferred nothing can fire or cancel. (Twisted would
/// leave the target pending; ropewalk's dropped resolvers errback, see
/// `ResolverDropped`.)
#[test]
fn a_chain_deferred_source_dropped_unfinished_lets_its_target_go() {
    let (target, rt) = Deferred::<i32>::pending();
    let (waiter, rw) = Deferred::<i32>::pending();
    let waiter = waiter.add_callback(move |_| target);
    rw.callback(0).unwrap();
    assert!(waiter.is_paused());
    let mut source = succeed(5);
    source.pause();
    source.chain_deferred(rt);
    let f = waiter.wait().unwrap_err();
    assert!(f.is::<ropewalk_deferred::ResolverDropped>(), "{f}");
}

/// Twisted: chainDeferred is addCallbacks(d2.callback, d2.errback) (reference §1.5.29), and
/// a Deferred cancelled without a canceller swallows one late fire (§1.6.30): a source with
/// no callbacks of its own hands its result straight to a target cancelled meanwhile, which
/// swallows it.
#[test]
fn chain_deferred_onto_a_cancelled_target_is_swallowed() {
    let (a, ra) = Deferred::<i32>::pending();
    let (b, rb) = Deferred::<i32>::pending();
    b.chain_deferred(ra);
    a.cancel();
    rb.callback(1).unwrap();
    assert!(a.wait().unwrap_err().is::<ropewalk_deferred::Cancelled>());
}
