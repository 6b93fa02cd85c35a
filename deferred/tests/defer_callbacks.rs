//! Firing, ordering and path switching: Twisted's `DeferredTests` (test/test_defer.py)
//! for the plain callback chain, `AlreadyCalledTests`, `succeed`/`fail`/`maybeDeferred`,
//! and `repr` (here `Debug`).
//!
//! Not ported, one line each:
//! - `testCallbackWithKwArgs`: Rust has no keyword arguments; closures capture instead
//!   (`testCallbackWithArgs` covers capture).
//! - `test_reentrantRunCallbacks`, `test_nonReentrantCallbacks`,
//!   `test_reentrantRunCallbacksWithFailure`: a callback cannot add callbacks to its own
//!   Deferred, because `add_*` consumes the only handle before the callback can run.
//! - `testAlreadyCalled_CC/_CE/_EC/_EE` with one producer: firing consumes the `Resolver`,
//!   so a second fire does not compile; the four combinations are ported through the one
//!   race left (a canceller that already gave the result).
//! - `testAlreadyCalledDebug_*` (" C:"/" I:" stacks): `AlreadyCalled` carries the creation
//!   location instead, with or without debugging; covered by `already_called_names_creation_site`.
//! - `test_errbackWithNoArgs`, `test_errbackWithNoArgsNoDebug`: Rust has no "current
//!   exception" to errback with.
//! - `test_errorInCallbackDoesNotCaptureVars`, `…CapturesVarsWhenDebugging`: no frame locals in Rust.
//! - `test_addCallbacksNoneCallbackArgs`, `…NoneErrbackArgs`: no positional args to pass `None` for.
//! - `test_callbacksAttributeDeprecated`: no `callbacks` attribute.
//! - `callback(someDeferred)` handing the Deferred on as a plain value: a `Resolver<T>`
//!   takes a `T`; a `Deferred<Deferred<U>>` is possible but is just a value, as in Twisted.
//! - `test_maybeDeferredCoroutine*`, `test_fromCoroutine*`: see defer_await.rs for futures.

use std::cell::RefCell;
use std::rc::Rc;

use ropewalk_deferred::{
    fail, maybe_deferred, succeed, AlreadyCalled, Deferred, Failure, Outcome, Panicked,
};

type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn entries(l: &Log) -> Vec<String> {
    l.borrow().clone()
}

/// An error type of our own, to check that failures keep their type.
#[derive(Debug, PartialEq)]
struct Boom(&'static str);

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "boom: {}", self.0)
    }
}

impl std::error::Error for Boom {}

/// Twisted: DeferredTests.testCallbackWithoutArgs
#[test]
fn callback_receives_the_value_synchronously() {
    let got = log();
    let (d, r) = Deferred::<&str>::pending();
    let g = got.clone();
    let _d = d.add_callback(move |v| {
        g.borrow_mut().push(v.to_string());
        Ok(())
    });
    assert!(entries(&got).is_empty());
    r.callback("hello").unwrap();
    // Ran inside callback(), not on a later turn.
    assert_eq!(entries(&got), ["hello"]);
}

/// Twisted: DeferredTests.testCallbackWithArgs (extra arguments become captured values)
#[test]
fn callback_with_captured_arguments() {
    let got = log();
    let (d, r) = Deferred::<&str>::pending();
    let (g, extra) = (got.clone(), "world");
    let _d = d.add_callback(move |v| {
        g.borrow_mut().push(format!("{v} {extra}"));
        Ok(())
    });
    r.callback("hello").unwrap();
    assert_eq!(entries(&got), ["hello world"]);
}

/// Twisted: DeferredTests.testTwoCallbacks
#[test]
fn callbacks_run_in_order_each_on_the_previous_result() {
    let got = log();
    let (d, r) = Deferred::<u32>::pending();
    let (g1, g2, g3) = (got.clone(), got.clone(), got.clone());
    let d = d
        .add_callback(move |n| {
            g1.borrow_mut().push(format!("first {n}"));
            Ok(n + 1)
        })
        .add_callback(move |n| {
            g2.borrow_mut().push(format!("second {n}"));
            Ok(n * 10)
        })
        .add_callback(move |n| {
            g3.borrow_mut().push(format!("third {n}"));
            Ok(n.to_string())
        });
    r.callback(1).unwrap();
    assert_eq!(entries(&got), ["first 1", "second 2", "third 20"]);
    assert_eq!(d.wait().unwrap(), "20");
}

/// Twisted: DeferredTests.testCallbackErrors (the "raise" form: a callback's error)
#[test]
fn callback_error_switches_to_errback_path() {
    let got = log();
    let (g1, g2) = (got.clone(), got.clone());
    let d = Deferred::succeed("x")
        .add_callback(|s| Ok(s.parse::<i32>()?))
        .add_callback(move |n| {
            g1.borrow_mut().push(format!("skipped {n}"));
            Ok(n)
        })
        .add_errback(move |f| {
            assert!(f.is::<std::num::ParseIntError>());
            g2.borrow_mut().push("errback".into());
            Ok(-1)
        });
    assert_eq!(entries(&got), ["errback"]);
    assert_eq!(d.wait().unwrap(), -1);
}

/// Twisted: DeferredTests.testCallbackErrors (an exception raised in a callback; here a panic)
#[test]
fn panicking_callback_switches_to_errback_path() {
    let (d, r) = Deferred::<i32>::pending();
    let d = d
        .add_callback(|_| -> Result<i32, Failure> { panic!("callback exploded") })
        .add_errback(|f| {
            let p = f.downcast_ref::<Panicked>().expect("a Panicked failure");
            assert_eq!(p.message(), "callback exploded");
            Ok(7)
        });
    // The panic does not unwind into the firing code.
    r.callback(1).unwrap();
    assert_eq!(d.wait().unwrap(), 7);
}

/// Twisted: DeferredTests.test_callbackMaybeReturnsFailure (a returned Failure is handed
/// on as the same object)
#[test]
fn callback_returning_failure_hands_on_the_same_failure() {
    let f = Failure::new(Boom("same"));
    let f2 = f.clone();
    let d = Deferred::succeed(1)
        .add_callback(move |_| Outcome::<i32>::Failure(f2))
        .add_errback(move |got| {
            assert!(got.ptr_eq(&f));
            Ok(0)
        });
    assert_eq!(d.wait().unwrap(), 0);
}

/// Twisted: DeferredTests.test_errbackReturnsDeferred's first half and the [exp] fact of
/// reference §1.1.9: an errback returning a value switches back to the callback path.
#[test]
fn errback_value_switches_back_to_callback_path() {
    let got = log();
    let g = got.clone();
    let d = Deferred::<&str>::fail(Boom("x"))
        .add_errback(|_| Ok("recovered"))
        .add_callback(move |s| {
            g.borrow_mut().push(s.to_string());
            Ok(())
        });
    assert_eq!(entries(&got), ["recovered"]);
    assert!(d.wait().is_ok());
}

/// Twisted: failure.trap re-raising in an errback keeps the errback path
/// (test_failure.FailureTests.test_trapRaisesWrappedException, seen through a chain)
#[test]
fn errback_that_rethrows_stays_on_errback_path() {
    let got = log();
    let (g1, g2) = (got.clone(), got.clone());
    let d = Deferred::<i32>::fail(Boom("kept"))
        .add_errback(move |f| {
            g1.borrow_mut().push("first errback".into());
            f.trap::<std::fmt::Error>()?;
            Ok(1)
        })
        .add_callback(|n| Ok(n + 100))
        .add_errback(move |f| {
            g2.borrow_mut().push(f.to_string());
            Err(f)
        });
    assert_eq!(entries(&got), ["first errback", "boom: kept"]);
    assert_eq!(
        d.wait().unwrap_err().downcast_ref::<Boom>(),
        Some(&Boom("kept"))
    );
}

/// Twisted: DeferredTests.testImmediateSuccess
#[test]
fn callback_added_after_success_runs_at_once() {
    let got = log();
    let g = got.clone();
    let d = succeed("orange").add_callback(move |s| {
        g.borrow_mut().push(s.to_string());
        Ok(())
    });
    assert_eq!(entries(&got), ["orange"]);
    assert!(d.has_result());
}

/// Twisted: DeferredTests.testImmediateFailure
#[test]
fn errback_added_after_failure_runs_at_once() {
    let got = log();
    let g = got.clone();
    let d = fail::<i32>(Boom("now")).add_errback(move |f| {
        g.borrow_mut().push(f.to_string());
        Ok(0)
    });
    assert_eq!(entries(&got), ["boom: now"]);
    assert_eq!(d.wait().unwrap(), 0);
}

/// Twisted: DeferredTests.test_succeedMatchesManualSuccess
#[test]
fn succeed_matches_manual_success() {
    let (mut manual, r) = Deferred::<i32>::pending();
    r.callback(3).unwrap();
    let mut made = succeed(3);
    assert_eq!(manual.is_called(), made.is_called());
    assert_eq!(manual.has_result(), made.has_result());
    assert_eq!(manual.is_paused(), made.is_paused());
    assert_eq!(format!("{manual:?}"), format!("{made:?}"));
    assert_eq!(manual.try_result().unwrap().unwrap(), 3);
    assert_eq!(made.try_result().unwrap().unwrap(), 3);
}

/// Twisted: DeferredTests.test_addCallbacksNoneErrback (a failure passes through when the
/// errback hands it on) and addCallbacks' pair semantics
#[test]
fn add_callbacks_runs_exactly_one_side() {
    let got = log();
    let (g1, g2) = (got.clone(), got.clone());
    let d = Deferred::<i32>::fail(Boom("e")).add_callbacks(
        move |n| {
            g1.borrow_mut().push("callback".into());
            Ok(n)
        },
        move |f| {
            g2.borrow_mut().push("errback".into());
            Err(f)
        },
    );
    assert_eq!(entries(&got), ["errback"]);
    assert!(d.wait().unwrap_err().is::<Boom>());
}

/// Twisted: DeferredTests.testCallbackErrors via addCallbacks: the errback of the same pair
/// does not see the callback's own failure; the next errback does.
#[test]
fn add_callbacks_errback_does_not_see_its_callbacks_failure() {
    let got = log();
    let (g1, g2) = (got.clone(), got.clone());
    let d = Deferred::succeed(1)
        .add_callbacks(
            |_| -> Result<i32, Failure> { Err(Failure::new(Boom("cb"))) },
            move |_| {
                g1.borrow_mut().push("same pair".into());
                Ok(0)
            },
        )
        .add_errback(move |f| {
            g2.borrow_mut().push(f.to_string());
            Ok(9)
        });
    assert_eq!(entries(&got), ["boom: cb"]);
    assert_eq!(d.wait().unwrap(), 9);
}

/// Twisted: addBoth, as used by trial's successResultOf (reference §1.0): one function
/// sees either path.
#[test]
fn add_both_sees_value_and_failure() {
    let ok = succeed(2).add_both(|r| Ok(format!("{r:?}")));
    assert_eq!(ok.wait().unwrap(), "Ok(2)");
    let bad = fail::<i32>(Boom("b")).add_both(|r| Ok(r.unwrap_err().to_string()));
    assert_eq!(bad.wait().unwrap(), "boom: b");
}

/// Twisted: `callback(failure)` behaves as `errback(failure)` (reference §1.1.4); here
/// `Resolver::resolve(Err(..))`.
#[test]
fn resolve_with_err_runs_the_errbacks() {
    let (d, r) = Deferred::<i32>::pending();
    let d = d.add_callback(|n| Ok(n + 1)).add_errback(|f| {
        assert!(f.is::<Boom>());
        Ok(-1)
    });
    r.resolve(Err(Failure::new(Boom("r")))).unwrap();
    assert_eq!(d.wait().unwrap(), -1);
}

/// Twisted: DeferredTests.test_maybeDeferredSync
#[test]
fn maybe_deferred_sync_value() {
    let d = maybe_deferred(|| Ok::<_, Failure>(10));
    assert!(d.has_result());
    assert_eq!(d.wait().unwrap(), 10);
}

/// Twisted: DeferredTests.test_maybeDeferredSyncWithArgs
#[test]
fn maybe_deferred_sync_with_captured_args() {
    let (a, b) = (10, 20);
    assert_eq!(
        maybe_deferred(move || Ok::<_, Failure>(a + b))
            .wait()
            .unwrap(),
        30
    );
}

/// Twisted: DeferredTests.test_maybeDeferredSyncException (an `Err`, and a panic)
#[test]
fn maybe_deferred_sync_exception() {
    let d = maybe_deferred(|| -> Result<i32, Failure> { Ok("z".parse::<i32>()?) });
    assert!(d.wait().unwrap_err().is::<std::num::ParseIntError>());
    let d = maybe_deferred(|| -> Result<i32, Failure> { panic!("in maybe_deferred") });
    let f = d.wait().unwrap_err();
    assert_eq!(
        f.downcast_ref::<Panicked>().unwrap().message(),
        "in maybe_deferred"
    );
}

/// Twisted: DeferredTests.test_maybeDeferredSyncFailure (the same Failure object)
#[test]
fn maybe_deferred_sync_failure_is_the_same_failure() {
    let f = Failure::msg("returned failure");
    let f2 = f.clone();
    let got = maybe_deferred(move || Err::<i32, _>(f2))
        .wait()
        .unwrap_err();
    assert!(got.ptr_eq(&f));
}

/// Twisted: DeferredTests.test_maybeDeferredAsync (the returned Deferred itself)
#[test]
fn maybe_deferred_async_returns_that_deferred() {
    let (inner, r) = Deferred::<&str>::pending();
    let h = inner.cancel_handle();
    let d = maybe_deferred(move || inner);
    assert!(!d.is_called());
    r.callback("later").unwrap();
    assert!(h.is_called());
    assert_eq!(d.wait().unwrap(), "later");
}

/// Twisted: DeferredTests.test_maybeDeferredAsyncError
#[test]
fn maybe_deferred_async_error() {
    let (inner, r) = Deferred::<i32>::pending();
    let d = maybe_deferred(move || inner);
    r.errback(Boom("async")).unwrap();
    assert_eq!(
        d.wait().unwrap_err().downcast_ref::<Boom>(),
        Some(&Boom("async"))
    );
}

/// Twisted: AlreadyCalledTests.testAlreadyCalled_CC (first fire by a canceller's value)
#[test]
fn already_called_cc() {
    let (d, r) = Deferred::<i32>::with_canceller(|| Some(Ok(1)));
    d.cancel();
    let err: AlreadyCalled = r.callback(2).unwrap_err();
    assert!(err.to_string().starts_with("deferred already called"));
    assert_eq!(d.wait().unwrap(), 1);
}

/// Twisted: AlreadyCalledTests.testAlreadyCalled_CE
#[test]
fn already_called_ce() {
    let (d, r) = Deferred::<i32>::with_canceller(|| Some(Ok(1)));
    d.cancel();
    assert!(r.errback(Boom("late")).is_err());
    assert_eq!(d.wait().unwrap(), 1);
}

/// Twisted: AlreadyCalledTests.testAlreadyCalled_EE
#[test]
fn already_called_ee() {
    let (d, r) = Deferred::<i32>::with_canceller(|| Some(Err(Failure::new(Boom("first")))));
    d.cancel();
    assert!(r.errback(Boom("second")).is_err());
    assert_eq!(
        d.wait().unwrap_err().downcast_ref::<Boom>(),
        Some(&Boom("first"))
    );
}

/// Twisted: AlreadyCalledTests.testAlreadyCalled_EC
#[test]
fn already_called_ec() {
    let (d, r) = Deferred::<i32>::with_canceller(|| Some(Err(Failure::new(Boom("first")))));
    d.cancel();
    assert!(r.callback(5).is_err());
    assert!(d.wait().unwrap_err().is::<Boom>());
}

/// Twisted: AlreadyCalledTests.testNoDebugging / testAlreadyCalledDebug_CC: ours names
/// where the Deferred was created, always (a deliberate difference: no stacks).
#[test]
fn already_called_names_creation_site() {
    let line = line!() + 1;
    let (d, r) = Deferred::<()>::with_canceller(|| Some(Ok(())));
    d.cancel();
    let err = r.callback(()).unwrap_err();
    assert_eq!(err.created_at().file(), file!());
    assert_eq!(err.created_at().line(), line);
    assert!(err.to_string().contains(file!()));
}

/// Twisted: DeferredTests.test_repr
#[test]
fn debug_of_pending_deferred() {
    let (d, _r) = Deferred::<i32>::pending();
    let s = format!("{d:?}");
    assert!(s.starts_with("Deferred(pending"), "{s}");
    assert!(s.contains(file!()), "{s}");
}

/// Twisted: DeferredTests.test_reprWithResult
#[test]
fn debug_with_result() {
    let d = succeed("orange");
    assert_eq!(format!("{d:?}"), "Deferred(current result: \"orange\")");
    let d = fail::<i32>(Boom("b"));
    let s = format!("{d:?}");
    assert!(s.starts_with("Deferred(failed: boom: b"), "{s}");
    drop(d.add_errback(|_| Ok(0)));
}

/// Twisted: DeferredTests.test_reprWithChaining
#[test]
fn debug_while_waiting_on_another() {
    let (inner, r) = Deferred::<i32>::pending();
    let (outer, r0) = Deferred::<i32>::pending();
    let d = outer.add_callback(move |_| inner);
    r0.callback(1).unwrap();
    let s = format!("{d:?}");
    assert!(s.starts_with("Deferred(waiting on Deferred at 0x"), "{s}");
    r.callback(2).unwrap();
    assert_eq!(format!("{d:?}"), "Deferred(current result: 2)");
}

/// Twisted: none (ropewalk-specific): dropping the resolver unfired errbacks with
/// `ResolverDropped`, so a waiter never hangs.
#[test]
fn dropped_resolver_errbacks() {
    let (d, r) = Deferred::<i32>::pending();
    let d = d.add_errback(|f| {
        f.trap::<ropewalk_deferred::ResolverDropped>()?;
        Ok(-2)
    });
    drop(r);
    assert_eq!(d.wait().unwrap(), -2);
}

/// Twisted: none (ropewalk-specific): a Deferred printed from inside one of its own
/// callbacks (through a handle kept elsewhere) says it is running; nothing panics.
#[test]
fn debug_from_inside_its_own_callback() {
    use std::cell::RefCell;
    use std::rc::Rc;

    let slot: Rc<RefCell<Option<Deferred<u64>>>> = Rc::new(RefCell::new(None));
    let seen = Rc::new(RefCell::new(String::new()));
    let (d, r) = Deferred::<u64>::pending();
    let (s2, seen2) = (slot.clone(), seen.clone());
    let d = d.add_callback(move |n| {
        if let Some(d) = s2.borrow().as_ref() {
            *seen2.borrow_mut() = format!("{d:?}");
        }
        Ok(n + 1)
    });
    let d = d.add_callback(|n| Ok(n * 2));
    *slot.borrow_mut() = Some(d);
    r.callback(1).unwrap();
    assert!(
        seen.borrow().contains("running callbacks"),
        "{}",
        seen.borrow()
    );
    let d = slot.borrow_mut().take().unwrap();
    assert_eq!(d.wait().unwrap(), 4);
}

/// Twisted: none (ropewalk-specific): small values (stored inline) and boxed values pass
/// through a chain that changes type at every step, pending and fired, exactly.
#[test]
fn values_of_every_kind_pass_through_a_chain() {
    let (d, r) = Deferred::<u8>::pending();
    let d = d
        .add_callback(|b| Ok(i64::from(b) - 300)) // u8 -> i64 (inline -> inline)
        .add_callback(|n| Ok(n.to_string())) // -> String (boxed)
        .add_callback(|s| Ok(s.len() == 4)) // -> bool (inline)
        .add_callback(|b| Ok(if b { 'y' } else { 'n' })) // -> char
        .add_callback(|c| Ok((c, 2.5f64))) // -> tuple (boxed)
        .add_callback(|(c, x)| Ok(f64::from(u32::from(c)) + x)) // -> f64
        .add_callback(|x| Ok(x.to_bits())) // -> u64
        .add_callback(|_| Ok(())); // -> ()
    r.callback(45).unwrap();
    d.wait().unwrap(); // (): all the way through, with no failure

    let (d, r) = Deferred::<i32>::pending();
    let d = d
        .add_callback(|n| Ok(vec![n; 3]))
        .add_errback(|_| Ok(vec![]))
        .add_callback(|v| Ok(v.iter().map(|&n| i64::from(n)).sum::<i64>()))
        .add_callback(|n| Ok(f32::from(n as i16) / 2.0));
    r.callback(-7).unwrap();
    assert_eq!(d.wait().unwrap(), -10.5);
}

/// Twisted: none (ropewalk-specific): chains are reused after they are dropped; a reused
/// one starts empty (no result, no step, no pause) whatever the last one held.
#[test]
fn a_reused_chain_starts_empty() {
    for round in 0..3 {
        // Leave chains behind in every state a dropped one can be in.
        let (d, r) = Deferred::<u64>::pending();
        let mut d = d.add_callback(|n| Ok(n + 1));
        d.pause();
        drop(d);
        drop(r);
        let (d, _r) = Deferred::<String>::pending();
        drop(d.add_callback(|s| Ok(s.len())));
        let (d, r) = Deferred::<u64>::pending();
        r.callback(round).unwrap();
        assert_eq!(d.wait().unwrap(), round);

        let (mut d, r) = Deferred::<u64>::pending();
        assert!(!d.is_called() && !d.is_paused() && d.try_result().is_none());
        let d = d.add_callback(|n| Ok(n * 10));
        r.callback(round).unwrap();
        assert_eq!(d.wait().unwrap(), round * 10);
    }
}

/// Twisted: none (ropewalk-specific): what a callback captured is let go of when it runs
/// (or when its chain is dropped unfired), not kept with its chain, which is reused.
#[test]
fn a_capturing_callback_lets_go_of_its_captures_when_it_runs() {
    let token = Rc::new(());
    for round in 0..3u64 {
        let (d, r) = Deferred::<u64>::pending();
        let held = token.clone();
        let d = d.add_callback(move |n| Ok(n + Rc::strong_count(&held) as u64));
        assert_eq!(Rc::strong_count(&token), 2);
        r.callback(round).unwrap();
        assert_eq!(
            Rc::strong_count(&token),
            1,
            "captures dropped when the callback ran"
        );
        assert_eq!(d.wait().unwrap(), round + 2);

        // Never run: dropped with its chain.
        let (d, r) = Deferred::<u64>::pending();
        let held = token.clone();
        drop(d.add_callback(move |n| Ok(n + Rc::strong_count(&held) as u64)));
        drop(r);
        assert_eq!(
            Rc::strong_count(&token),
            1,
            "captures dropped with the chain"
        );
    }
}

thread_local! {
    static LATE: Late = const { Late };
}

/// Uses Deferreds from a thread-local destructor, which may run after the Deferred
/// engine's own per-thread pool is gone.
struct Late;

impl Drop for Late {
    fn drop(&mut self) {
        let (d, r) = Deferred::<u64>::pending();
        let add = 5u64;
        let d = d.add_callback(move |n| Ok(n + add));
        r.callback(1).unwrap();
        assert_eq!(d.wait().unwrap(), 6);
    }
}

/// Twisted: none (ropewalk-specific): a thread that used Deferreds (so holds pooled
/// chains) exits cleanly, even with Deferreds used in a thread-local destructor.
#[test]
fn a_thread_with_pooled_chains_exits_cleanly() {
    std::thread::spawn(|| {
        LATE.with(|_| ());
        for i in 0..10u64 {
            let (d, r) = Deferred::<u64>::pending();
            let (inner, ri) = Deferred::<u64>::pending();
            let d = d.add_callback(move |_| inner);
            r.callback(i).unwrap();
            ri.callback(i * 2).unwrap();
            assert_eq!(d.wait().unwrap(), i * 2);
        }
    })
    .join()
    .unwrap();
}
