//! `DeferredList`, `gather_results` and `race`, ported from Twisted's `test_defer.py`
//! (`DeferredListTests`, `DeferredListEmptyTests`, `DeferredCancellerTests` items for
//! lists, `RaceTests`, `FirstErrorTests`). Each test names the Twisted test it mirrors.

use std::cell::Cell;
use std::rc::Rc;

use ropewalk_deferred::{
    gather_results, gather_results_consuming_errors, race, Cancelled, Deferred, DeferredList,
    Failure, FailureGroup, FirstError, ListOutcome, Resolver,
};

/// A logger that keeps error records per thread, so each test sees only its own.
mod logs {
    use std::cell::RefCell;
    use std::sync::Once;

    struct Capture;

    thread_local! {
        static RECORDS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    impl log::Log for Capture {
        fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
            metadata.level() <= log::Level::Error
        }
        fn log(&self, record: &log::Record<'_>) {
            if self.enabled(record.metadata()) {
                RECORDS.with(|r| r.borrow_mut().push(record.args().to_string()));
            }
        }
        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture;
    static INIT: Once = Once::new();

    /// Starts capturing on this thread, forgetting anything logged before.
    pub fn start() {
        INIT.call_once(|| {
            log::set_logger(&CAPTURE).expect("no other logger in this test binary");
            log::set_max_level(log::LevelFilter::Error);
        });
        RECORDS.with(|r| r.borrow_mut().clear());
    }

    /// What was logged on this thread since `start` (or the last `take`).
    pub fn take() -> Vec<String> {
        RECORDS.with(|r| std::mem::take(&mut *r.borrow_mut()))
    }
}

/// Twisted's `GenericError`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct GenericError(&'static str);

/// The final result of `d`, which must have one (Twisted's `successResultOf` /
/// `failureResultOf`).
fn result_of<T: 'static>(d: &mut Deferred<T>) -> Result<T, Failure> {
    d.try_result().expect("deferred has a result")
}

/// Twisted's `fakeCallbackCanceller`: a canceller that callbacks "Callback Result".
fn callback_canceller() -> (Deferred<&'static str>, Resolver<&'static str>) {
    Deferred::with_canceller(|| Some(Ok("Callback Result")))
}

/// A pending Deferred whose canceller counts its calls and lets it errback `Cancelled`.
fn counted<T: 'static>(count: &Rc<Cell<u32>>) -> (Deferred<T>, Resolver<T>) {
    let count = count.clone();
    Deferred::with_canceller(move || {
        count.set(count.get() + 1);
        None
    })
}

fn unhandled(logs: &[String]) -> Vec<&String> {
    logs.iter()
        .filter(|l| l.starts_with("Unhandled error in Deferred"))
        .collect()
}

fn is_cancelled(r: &Result<impl Sized, Failure>) -> bool {
    matches!(r, Err(f) if f.is::<Cancelled>())
}

fn first_error(f: &Failure) -> &FirstError {
    f.downcast_ref::<FirstError>()
        .unwrap_or_else(|| panic!("expected FirstError, got {f}"))
}

// ---- DeferredListTests -------------------------------------------------------------

/// Twisted: DeferredListTests.testDeferredList
#[test]
fn test_deferred_list() {
    logs::start();
    let (d1, r1) = Deferred::<&str>::pending();
    let (d2, r2) = Deferred::<&str>::pending();
    let (d3, r3) = Deferred::<&str>::pending();
    let mut dl = DeferredList::new([d1, d2, d3]).into_deferred();

    r1.callback("1").unwrap();
    assert!(!dl.is_called());
    r2.errback(GenericError("2")).unwrap();
    assert!(!dl.is_called());
    r3.callback("3").unwrap();

    let results = result_of(&mut dl).unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(*results[0].as_ref().unwrap(), "1");
    let f = results[1].as_ref().unwrap_err();
    assert_eq!(f.downcast_ref::<GenericError>().unwrap().0, "2");
    assert_eq!(*results[2].as_ref().unwrap(), "3");

    // Not consumed: the failure stayed on d2, whose chain nobody else can reach.
    let logs = logs::take();
    let unhandled = unhandled(&logs);
    assert_eq!(unhandled.len(), 1, "{logs:?}");
    assert!(unhandled[0].ends_with(": 2"), "{logs:?}");
}

/// Twisted: DeferredListTests.testDeferredList, [exp] input order whatever the completion
/// order.
#[test]
fn test_deferred_list_results_in_input_order() {
    let (ds, rs): (Vec<_>, Vec<_>) = (0..4).map(|_| Deferred::<usize>::pending()).unzip();
    let mut dl = DeferredList::new(ds).into_deferred();
    let mut rs: Vec<Option<Resolver<usize>>> = rs.into_iter().map(Some).collect();
    for i in [2, 0, 3, 1] {
        assert!(!dl.is_called());
        rs[i].take().unwrap().callback(i * 10).unwrap();
    }
    let values: Vec<usize> = result_of(&mut dl)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(values, [0, 10, 20, 30]);
}

/// Twisted: DeferredListTests.testEmptyDeferredList and
/// DeferredListEmptyTests.testDeferredListEmpty
#[test]
fn test_empty_deferred_list() {
    let mut dl = DeferredList::<u8>::new([]).into_deferred();
    assert!(dl.has_result());
    assert!(result_of(&mut dl).unwrap().is_empty());

    // fireOnOneCallback with no members: it never fires...
    let dl = DeferredList::<u8>::new(Vec::new())
        .fire_on_one_callback(true)
        .into_outcome();
    assert!(!dl.is_called());
    // ...until cancelled, as any pending Deferred.
    dl.cancel();
    let mut dl = dl;
    assert!(is_cancelled(&result_of(&mut dl)));
}

/// Twisted: DeferredListTests.testDeferredListFireOnOneError
#[test]
fn test_deferred_list_fire_on_one_error() {
    logs::start();
    let (d1, r1) = Deferred::<&str>::pending();
    let (d2, r2) = Deferred::<&str>::pending();
    let (d3, r3) = Deferred::<&str>::pending();
    let mut dl = DeferredList::new([d1, d2, d3])
        .fire_on_one_errback(true)
        .into_deferred();

    r1.callback("1").unwrap();
    assert!(!dl.is_called());
    r2.errback(GenericError("from def2")).unwrap();
    assert!(dl.is_called());

    let f = result_of(&mut dl).unwrap_err();
    let first = first_error(&f);
    assert_eq!(first.index(), 1);
    assert_eq!(
        first.failure().downcast_ref::<GenericError>().unwrap().0,
        "from def2"
    );
    assert_eq!(f.to_string(), "deferred #1 failed: from def2");

    // The late member's result goes nowhere; the list keeps its first result.
    r3.callback("3").unwrap();
    // Twisted's test adds an errback to d2 to eat the failure; ours is left on d2.
    assert_eq!(unhandled(&logs::take()).len(), 1);
}

/// Twisted: DeferredListTests.testDeferredListDontConsumeErrors
#[test]
fn test_deferred_list_dont_consume_errors() {
    logs::start();
    let (d1, r1) = Deferred::<()>::pending();
    let mut dl = DeferredList::new([d1]).into_deferred();
    r1.errback(GenericError("Bang")).unwrap();

    let results = result_of(&mut dl).unwrap();
    assert_eq!(results[0].as_ref().unwrap_err().to_string(), "Bang");
    // The member's chain still ends in the failure: logged when it is dropped.
    let logs = logs::take();
    let unhandled = unhandled(&logs);
    assert_eq!(unhandled.len(), 1, "{logs:?}");
    assert!(unhandled[0].ends_with(": Bang"));
}

/// Twisted: DeferredListTests.testDeferredListConsumeErrors
#[test]
fn test_deferred_list_consume_errors() {
    logs::start();
    let (d1, r1) = Deferred::<()>::pending();
    let mut dl = DeferredList::new([d1]).consume_errors(true).into_deferred();
    r1.errback(GenericError("Bang")).unwrap();

    let results = result_of(&mut dl).unwrap();
    assert_eq!(results[0].as_ref().unwrap_err().to_string(), "Bang");
    assert_eq!(logs::take(), Vec::<String>::new());
}

/// Twisted: DeferredListTests.testDeferredListFireOnOneErrorWithAlreadyFiredDeferreds
#[test]
fn test_deferred_list_fire_on_one_error_with_already_fired_deferreds() {
    logs::start();
    let (d1, r1) = Deferred::<i32>::pending();
    let (d2, _r2) = Deferred::<i32>::pending();
    r1.errback(GenericError("Bang")).unwrap();

    let mut dl = DeferredList::new([d1, d2])
        .fire_on_one_errback(true)
        .consume_errors(true) // Twisted swallows d1's error by hand afterwards
        .into_deferred();
    assert!(dl.has_result());
    let f = result_of(&mut dl).unwrap_err();
    assert_eq!(first_error(&f).index(), 0);
    assert_eq!(logs::take(), Vec::<String>::new());
}

/// Twisted: DeferredListTests.testDeferredListWithAlreadyFiredDeferreds
#[test]
fn test_deferred_list_with_already_fired_deferreds() {
    let (d1, r1) = Deferred::<i32>::pending();
    let (d2, r2) = Deferred::<i32>::pending();
    r1.errback(GenericError("Bang")).unwrap();
    r2.callback(2).unwrap();

    let mut dl = DeferredList::new([d1, d2])
        .consume_errors(true)
        .into_deferred();
    assert!(dl.has_result());
    let results = result_of(&mut dl).unwrap();
    assert_eq!(results[0].as_ref().unwrap_err().to_string(), "Bang");
    assert_eq!(*results[1].as_ref().unwrap(), 2);
}

/// Twisted: [exp] fireOnOneCallback fires with `(result, index)` on the first success.
#[test]
fn test_deferred_list_fire_on_one_callback() {
    let (d1, _r1) = Deferred::<&str>::pending();
    let (d2, r2) = Deferred::<&str>::pending();
    let mut dl = DeferredList::new([d1, d2])
        .fire_on_one_callback(true)
        .into_outcome();
    assert!(!dl.is_called());
    r2.callback("two").unwrap();
    assert_eq!(result_of(&mut dl).unwrap().into_first(), Some((1, "two")));
}

/// Twisted: [exp] fireOnOneCallback with every member failed still fires on the callback
/// side, with the full list.
#[test]
fn test_deferred_list_fire_on_one_callback_all_failed() {
    let (d1, r1) = Deferred::<u8>::pending();
    let (d2, r2) = Deferred::<u8>::pending();
    let mut dl = DeferredList::new([d1, d2])
        .fire_on_one_callback(true)
        .consume_errors(true)
        .into_outcome();
    r2.errback(GenericError("b")).unwrap();
    assert!(!dl.is_called());
    r1.errback(GenericError("a")).unwrap();
    let ListOutcome::All(results) = result_of(&mut dl).unwrap() else {
        panic!("expected every result");
    };
    let messages: Vec<String> = results
        .iter()
        .map(|r| r.as_ref().unwrap_err().to_string())
        .collect();
    assert_eq!(messages, ["a", "b"]);
}

/// `into_deferred` cannot express fireOnOneCallback's `(result, index)`.
#[test]
#[should_panic(expected = "use into_outcome")]
fn into_deferred_with_fire_on_one_callback_panics() {
    drop(
        DeferredList::new([Deferred::succeed(1)])
            .fire_on_one_callback(true)
            .into_deferred(),
    );
}

// ---- Cancellation (DeferredCancellerTests) --------------------------------------------

/// Twisted: DeferredCancellerTests.test_cancelDeferredList
#[test]
fn test_cancel_deferred_list() {
    let (d1, r1) = Deferred::<()>::pending();
    let (d2, r2) = Deferred::<()>::pending();
    let mut dl = DeferredList::new([d1, d2])
        .consume_errors(true)
        .into_deferred();
    dl.cancel();
    assert!(r1.is_called());
    assert!(r2.is_called());
    let results = result_of(&mut dl).unwrap();
    assert!(results.iter().all(is_cancelled));
    // The producers' one late fire after a cancel is swallowed, as for any Deferred.
    assert!(r1.callback(()).is_ok());
}

/// Twisted: DeferredCancellerTests.test_cancelDeferredListCallback
#[test]
fn test_cancel_deferred_list_callback() {
    let (d1, _r1) = callback_canceller();
    let (d2, r2) = Deferred::pending();
    let mut dl = DeferredList::new([d1, d2])
        .consume_errors(true)
        .into_deferred();
    dl.cancel();
    assert!(r2.is_called());
    let results = result_of(&mut dl).unwrap();
    assert_eq!(*results[0].as_ref().unwrap(), "Callback Result");
    assert!(is_cancelled(&results[1]));
}

/// Twisted: DeferredCancellerTests.test_cancelDeferredListWithFireOnOneCallback
#[test]
fn test_cancel_deferred_list_with_fire_on_one_callback() {
    let (d1, r1) = Deferred::<()>::pending();
    let (d2, r2) = Deferred::<()>::pending();
    let mut dl = DeferredList::new([d1, d2])
        .fire_on_one_callback(true)
        .consume_errors(true)
        .into_outcome();
    dl.cancel();
    assert!(r1.is_called());
    assert!(r2.is_called());
    let results = result_of(&mut dl).unwrap().into_all().unwrap();
    assert!(results.iter().all(is_cancelled));
}

/// Twisted: DeferredCancellerTests.test_cancelDeferredListWithFireOnOneCallbackAndDeferredCallback
#[test]
fn test_cancel_deferred_list_with_fire_on_one_callback_and_deferred_callback() {
    logs::start();
    let (d1, _r1) = callback_canceller();
    let (d2, r2) = Deferred::pending();
    let mut dl = DeferredList::new([d1, d2])
        .fire_on_one_callback(true)
        .into_outcome();
    dl.cancel();
    assert_eq!(
        result_of(&mut dl).unwrap().into_first(),
        Some((0, "Callback Result"))
    );
    // The list fired while member 0 was cancelled; member 1 was still cancelled, and
    // (errors not consumed) its Cancelled is left on it, unhandled.
    assert!(r2.is_called());
    assert_eq!(logs::take(), Vec::<String>::new());
    drop(r2); // the last holder of member 1's chain
    let logs = logs::take();
    let unhandled = unhandled(&logs);
    assert_eq!(unhandled.len(), 1, "{logs:?}");
    assert!(unhandled[0].ends_with("deferred was cancelled"));
}

/// Twisted: DeferredCancellerTests.test_cancelDeferredListWithFireOnOneErrback
#[test]
fn test_cancel_deferred_list_with_fire_on_one_errback() {
    let (d1, r1) = Deferred::<()>::pending();
    let (d2, r2) = Deferred::<()>::pending();
    let mut dl = DeferredList::new([d1, d2])
        .fire_on_one_errback(true)
        .consume_errors(true)
        .into_deferred();
    dl.cancel();
    assert!(r1.is_called());
    assert!(r2.is_called());
    let f = result_of(&mut dl).unwrap_err();
    let first = first_error(&f);
    assert_eq!(first.index(), 0);
    assert!(first.failure().is::<Cancelled>());
}

/// Twisted: DeferredCancellerTests.test_cancelDeferredListWithFireOnOneErrbackAllDeferredsCallback
#[test]
fn test_cancel_deferred_list_with_fire_on_one_errback_all_deferreds_callback() {
    let (d1, _r1) = callback_canceller();
    let (d2, _r2) = callback_canceller();
    let mut dl = DeferredList::new([d1, d2])
        .fire_on_one_errback(true)
        .into_deferred();
    dl.cancel();
    let values: Vec<&str> = result_of(&mut dl)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(values, ["Callback Result", "Callback Result"]);
}

/// Twisted: DeferredCancellerTests.test_cancelDeferredListWithException
///
/// A member's canceller that panics is logged and the others are still cancelled. Unlike
/// Twisted (where that member stays unfired), our core then errbacks that member with
/// `Cancelled`, so the list fires too.
#[test]
fn test_cancel_deferred_list_with_exception() {
    logs::start();
    let (d1, _r1) = Deferred::<()>::with_canceller(|| panic!("test"));
    let (d2, r2) = Deferred::<()>::pending();
    let mut dl = DeferredList::new([d1, d2])
        .consume_errors(true)
        .into_deferred();
    dl.cancel();
    assert!(r2.is_called());
    let logs = logs::take();
    let panics: Vec<_> = logs.iter().filter(|l| l.contains("panicked")).collect();
    assert_eq!(panics.len(), 1, "{logs:?}");
    assert!(panics[0].ends_with("panicked: test"), "{logs:?}");
    let results = result_of(&mut dl).unwrap();
    assert!(results.iter().all(is_cancelled));
}

/// Twisted: DeferredCancellerTests.test_cancelFiredOnOneCallbackDeferredList
#[test]
fn test_cancel_fired_on_one_callback_deferred_list() {
    let (d1, r1) = Deferred::<()>::pending();
    let (d2, r2) = Deferred::<()>::pending();
    let mut dl = DeferredList::new([d1, d2])
        .fire_on_one_callback(true)
        .into_outcome();
    r1.callback(()).unwrap();
    dl.cancel();
    assert!(!r2.is_called(), "cancelling a fired list cancels nothing");
    assert_eq!(result_of(&mut dl).unwrap().into_first(), Some((0, ())));
}

/// Twisted: DeferredCancellerTests.test_cancelFiredOnOneErrbackDeferredList
#[test]
fn test_cancel_fired_on_one_errback_deferred_list() {
    let (d1, r1) = Deferred::<()>::pending();
    let (d2, r2) = Deferred::<()>::pending();
    let mut dl = DeferredList::new([d1, d2])
        .fire_on_one_errback(true)
        .consume_errors(true)
        .into_deferred();
    r1.errback(GenericError("test")).unwrap();
    dl.cancel();
    assert!(!r2.is_called(), "cancelling a fired list cancels nothing");
    let f = result_of(&mut dl).unwrap_err();
    assert!(first_error(&f).failure().is::<GenericError>());
}

/// Twisted: DeferredCancellerTests.test_cancelNestedDeferred, through a list: a member
/// that fired but waits on another Deferred has that one cancelled.
#[test]
fn test_cancel_deferred_list_member_waiting_on_inner() {
    let (inner, inner_r) = Deferred::<u8>::pending();
    let (outer, outer_r) = Deferred::<u8>::pending();
    let outer = outer.add_callback(move |_| inner);
    outer_r.callback(0).unwrap();
    let mut dl = DeferredList::new([outer])
        .consume_errors(true)
        .into_deferred();
    dl.cancel();
    assert!(inner_r.is_called());
    assert!(is_cancelled(&result_of(&mut dl).unwrap()[0]));
}

/// Rust's adaptation (no Twisted test): if cancelling the members does not settle the
/// list (a member is paused), the list errbacks with `Cancelled` itself, and the member's
/// later result goes nowhere.
#[test]
fn cancel_deferred_list_that_members_do_not_settle() {
    logs::start();
    let (mut d1, r1) = Deferred::<u8>::pending();
    d1.pause();
    let h = d1.cancel_handle();
    let mut dl = DeferredList::new([d1]).into_deferred();
    dl.cancel();
    assert!(h.is_called());
    assert!(result_of(&mut dl).unwrap_err().is::<Cancelled>());
    // Nobody can unpause the member now: its Cancelled is logged when it goes.
    drop(r1);
    assert_eq!(unhandled(&logs::take()).len(), 1);
}

/// Nothing leaks: the list's chain and the state are freed once everything is dropped.
#[test]
fn deferred_list_frees_its_chain() {
    let token = Rc::new(());
    let (d1, r1) = Deferred::<u8>::pending();
    let t = token.clone();
    let dl = DeferredList::new([d1])
        .consume_errors(true)
        .into_deferred()
        .add_callback(move |results| {
            let _keep = &t;
            Ok(results.len())
        });
    assert_eq!(Rc::strong_count(&token), 2);
    drop(dl);
    drop(r1); // the member errbacks ResolverDropped, which fires the list
    assert_eq!(Rc::strong_count(&token), 1);
}

// ---- gatherResults ----------------------------------------------------------------------

/// Twisted: DeferredListTests.test_gatherResults
#[test]
fn test_gather_results() {
    logs::start();
    let mut d = gather_results([Deferred::succeed(1), Deferred::succeed(2)]);
    assert_eq!(result_of(&mut d).unwrap(), [1, 2]);

    let mut d = gather_results([
        Deferred::succeed(1),
        Deferred::fail(GenericError("ValueError")),
    ]);
    let f = result_of(&mut d).unwrap_err();
    assert_eq!(first_error(&f).index(), 1);
    // Twisted's test removes the error from dl[1] by hand; ours is logged.
    assert_eq!(unhandled(&logs::take()).len(), 1);
}

/// Twisted: [exp] `gatherResults([])` gives `[]` at once.
#[test]
fn test_gather_results_empty() {
    let mut d = gather_results(Vec::<Deferred<u8>>::new());
    assert!(d.has_result());
    assert!(result_of(&mut d).unwrap().is_empty());
}

/// Twisted: DeferredListTests.test_gatherResultsWithConsumeErrors
#[test]
fn test_gather_results_with_consume_errors() {
    logs::start();
    let dgood = Deferred::succeed(1);
    let dbad = Deferred::fail(GenericError("oh noes"));
    let mut d = gather_results_consuming_errors([dgood, dbad]);
    let f = result_of(&mut d).unwrap_err();
    let first = first_error(&f);
    assert_eq!(first.index(), 1);
    assert_eq!(
        first.failure().downcast_ref::<GenericError>().unwrap().0,
        "oh noes"
    );
    assert_eq!(logs::take(), Vec::<String>::new());
}

/// Twisted: DeferredCancellerTests.test_cancelGatherResults
#[test]
fn test_cancel_gather_results() {
    let (d1, r1) = Deferred::<()>::pending();
    let (d2, r2) = Deferred::<()>::pending();
    let mut d = gather_results_consuming_errors([d1, d2]);
    d.cancel();
    assert!(r1.is_called());
    assert!(r2.is_called());
    let f = result_of(&mut d).unwrap_err();
    let first = first_error(&f);
    assert_eq!(first.index(), 0);
    assert!(first.failure().is::<Cancelled>());
}

/// Twisted: DeferredCancellerTests.test_cancelGatherResultsWithAllDeferredsCallback
#[test]
fn test_cancel_gather_results_with_all_deferreds_callback() {
    let (d1, _r1) = callback_canceller();
    let (d2, _r2) = callback_canceller();
    let mut d = gather_results([d1, d2]);
    d.cancel();
    assert_eq!(
        result_of(&mut d).unwrap(),
        ["Callback Result", "Callback Result"]
    );
}

// ---- RaceTests ------------------------------------------------------------------------------

/// Cancel counts, the Deferreds and their resolvers.
type RaceState = (Vec<Rc<Cell<u32>>>, Vec<Deferred<u32>>, Vec<Resolver<u32>>);

/// Twisted's `_setupRaceState`: `n` Deferreds whose cancellers count their calls.
fn race_state(n: usize) -> RaceState {
    let counts: Vec<Rc<Cell<u32>>> = (0..n).map(|_| Rc::new(Cell::new(0))).collect();
    let (ds, rs) = counts.iter().map(counted).unzip();
    (counts, ds, rs)
}

fn cancel_counts(counts: &[Rc<Cell<u32>>]) -> Vec<u32> {
    counts.iter().map(|c| c.get()).collect()
}

/// Twisted: RaceTests.test_success (every `beforeWinner`, `afterWinner` in 0..=3)
#[test]
fn test_race_success() {
    logs::start();
    for before in 0..=3 {
        for after in 0..=3 {
            let (counts, ds, rs) = race_state(before + 1 + after);
            let mut d = race(ds);
            let mut rs: Vec<Option<Resolver<u32>>> = rs.into_iter().map(Some).collect();
            rs[before].take().unwrap().callback(42).unwrap();
            assert_eq!(result_of(&mut d).unwrap(), (before, 42));
            let mut expected = vec![1; before + 1 + after];
            expected[before] = 0;
            assert_eq!(cancel_counts(&counts), expected);
        }
    }
    // The losers' Cancelled failures were consumed.
    assert_eq!(logs::take(), Vec::<String>::new());
}

/// Twisted: RaceTests.test_failure (failures in index order, nothing cancelled)
#[test]
fn test_race_failure() {
    logs::start();
    for before in 0..=3 {
        for after in 0..=3 {
            let n = before + 2 + after;
            let (counts, ds, rs) = race_state(n);
            let mut d = race(ds);
            let failures: Vec<Failure> = (0..n).map(|i| Failure::msg(format!("f{i}"))).collect();
            // Fire in reverse order: the group is still in index order.
            for (r, f) in rs.into_iter().zip(failures.iter().cloned()).rev() {
                assert!(!d.is_called());
                r.errback(f).unwrap();
            }
            let f = result_of(&mut d).unwrap_err();
            let group = f.downcast_ref::<FailureGroup>().expect("a FailureGroup");
            assert_eq!(group.failures().len(), n);
            for (got, want) in group.failures().iter().zip(&failures) {
                assert!(got.ptr_eq(want), "{got} != {want}");
            }
            assert_eq!(cancel_counts(&counts), vec![0; n]);
        }
    }
    assert_eq!(logs::take(), Vec::<String>::new());
}

/// Twisted: RaceTests.test_resultAfterCancel
#[test]
fn test_race_result_after_cancel() {
    logs::start();
    for before in 0..=3 {
        for after in 0..=3 {
            let (ds, rs): (Vec<Deferred<()>>, Vec<Resolver<()>>) =
                (0..before + 2 + after).map(|_| Deferred::pending()).unzip();
            let mut rs: Vec<Option<Resolver<()>>> = rs.into_iter().map(Some).collect();
            let mut d = race(ds);
            rs[before].take().unwrap().callback(()).unwrap();
            // Cancelled already: the late result is swallowed and goes nowhere.
            rs[before + 1].take().unwrap().callback(()).unwrap();
            assert_eq!(result_of(&mut d).unwrap(), (before, ()));
            drop(rs);
        }
    }
    assert_eq!(logs::take(), Vec::<String>::new());
}

/// Twisted: RaceTests.test_resultFromCancel
#[test]
fn test_race_result_from_cancel() {
    logs::start();
    let (winner, winner_r) = Deferred::<&str>::pending();
    let (loser, _loser_r) = Deferred::with_canceller(|| Some(Ok("from cancel")));
    let mut d = race([winner, loser]);
    winner_r.callback("expected").unwrap();
    assert_eq!(result_of(&mut d).unwrap(), (0, "expected"));
    assert_eq!(logs::take(), Vec::<String>::new());
}

/// Twisted: RaceTests.test_cancel (1..=3 Deferreds)
#[test]
fn test_race_cancel() {
    logs::start();
    for n in 1..=3 {
        let (counts, ds, _rs) = race_state(n);
        let mut d = race(ds);
        d.cancel();
        assert_eq!(cancel_counts(&counts), vec![1; n]);
        let f = result_of(&mut d).unwrap_err();
        let group = f.downcast_ref::<FailureGroup>().expect("a FailureGroup");
        assert!(group.failures().iter().all(|f| f.is::<Cancelled>()));
    }
    assert_eq!(logs::take(), Vec::<String>::new());
}

/// Twisted: [exp] `race([])` never fires.
#[test]
fn test_race_empty_never_fires() {
    let d = race(Vec::<Deferred<u8>>::new());
    assert!(!d.is_called());
    d.cancel();
    let mut d = d;
    assert!(result_of(&mut d).unwrap_err().is::<Cancelled>());
}

/// A loser whose canceller panics does not stop the other losers being cancelled.
#[test]
fn race_loser_canceller_panics() {
    logs::start();
    let count = Rc::new(Cell::new(0));
    let (panicky, _pr) = Deferred::<u8>::with_canceller(|| panic!("loser"));
    let (other, _or) = counted(&count);
    let (winner, wr) = Deferred::<u8>::pending();
    let mut d = race([panicky, winner, other]);
    wr.callback(5).unwrap();
    assert_eq!(result_of(&mut d).unwrap(), (1, 5));
    assert_eq!(count.get(), 1);
    let logs = logs::take();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(logs[0].ends_with("panicked: loser"));
}

// ---- FirstErrorTests ------------------------------------------------------------------------

/// Twisted: FirstErrorTests.test_repr
#[test]
fn test_first_error_repr() {
    let e = FirstError::new(3, Failure::new(GenericError("some text")));
    let repr = format!("{e:?}");
    assert!(repr.contains("index: 3"), "{repr}");
    assert!(repr.contains("some text"), "{repr}");
}

/// Twisted: FirstErrorTests.test_str
#[test]
fn test_first_error_str() {
    let e = FirstError::new(5, Failure::new(GenericError("some text")));
    assert_eq!(e.to_string(), "deferred #5 failed");
    assert_eq!(Failure::new(e).to_string(), "deferred #5 failed: some text");
}

/// Twisted: FirstErrorTests.test_comparison
#[test]
fn test_first_error_comparison() {
    let failure = Failure::new(GenericError("bar"));
    let first = FirstError::new(13, failure.clone());
    assert_eq!(first, FirstError::new(13, failure.clone()));
    assert_ne!(first, FirstError::new(14, failure));
    assert_ne!(
        first,
        FirstError::new(13, Failure::new(GenericError("bar")))
    );
}
