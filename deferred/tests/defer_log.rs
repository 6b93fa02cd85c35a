//! Unhandled failures are logged when the Deferred is dropped: Twisted's `LogTests`
//! (test/test_defer.py), through a capturing `log::Log` installed once for this binary.
//! Each test puts a unique marker in its failure and looks only at records holding it, so
//! tests running in parallel do not see each other's records.
//!
//! Not ported, one line each:
//! - `test_errorLogWithInnerFrameRef`, `test_errorLogWithInnerFrameCycle`: about Python
//!   frames and garbage-collection cycles; Rust drops deterministically.
//! - `test_errorLogDebugInfo` (`"(debug:  I"` invoker stack): we log the creation site
//!   always (checked below), and no invoker stack.
//! - `UtilTests.test_logError*`: there is no `logError` helper.

use std::sync::{Mutex, Once};

use ropewalk_deferred::{Deferred, Failure, Panicked};

struct Capture;

static RECORDS: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        RECORDS
            .lock()
            .unwrap()
            .push((record.level(), record.args().to_string()));
    }
    fn flush(&self) {}
}

fn install() {
    INSTALL.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// The records that mention `marker`.
fn records(marker: &str) -> Vec<(log::Level, String)> {
    RECORDS
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, m)| m.contains(marker))
        .cloned()
        .collect()
}

#[derive(Debug)]
struct Wrapped(Failure);

impl std::fmt::Display for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("outer context")
    }
}

impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.error())
    }
}

/// Twisted: LogTests.test_errorLog (and test_errorLogNoRepr: the message, not a repr)
#[test]
fn unhandled_failure_logged_once_on_drop() {
    install();
    let marker = "marker-error-log-1";
    let d = Deferred::<i32>::fail(Failure::msg(marker));
    assert!(records(marker).is_empty(), "not logged before the drop");
    drop(d);
    let got = records(marker);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, log::Level::Error);
    assert!(
        got[0].1.starts_with("Unhandled error in Deferred"),
        "{}",
        got[0].1
    );
    assert!(got[0].1.contains(file!()), "names where it was created");
    assert!(
        !got[0].1.contains("Failure("),
        "no Debug repr: {}",
        got[0].1
    );
}

/// Twisted: LogTests.test_errorLog, with the cause chain in the text
#[test]
fn unhandled_failure_log_has_the_cause_chain() {
    install();
    let marker = "marker-cause-chain";
    let (d, r) = Deferred::<i32>::pending();
    let d = d.add_callback(|n| Ok(n + 1));
    r.errback(Wrapped(Failure::msg(marker))).unwrap();
    drop(d);
    let got = records(marker);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].1.contains(&format!("outer context: {marker}")),
        "{}",
        got[0].1
    );
}

/// Twisted: LogTests.test_errorClearedByChaining's first half: a failure handled by an
/// errback is not logged.
#[test]
fn handled_failure_not_logged() {
    install();
    let marker = "marker-handled";
    let d = Deferred::<i32>::fail(Failure::msg(marker)).add_errback(|_| Ok(0));
    drop(d);
    assert!(records(marker).is_empty());
}

/// Twisted: LogTests.test_chainedErrorCleanup: a failure handed on through chaining is
/// not logged on the inner Deferred; the outer handles it.
#[test]
fn failure_handed_on_by_chaining_not_logged_on_inner() {
    install();
    let marker = "marker-chained-cleanup";
    let (inner, r) = Deferred::<i32>::pending();
    let outer = Deferred::succeed(())
        .add_callback(move |_| inner)
        .add_errback(|_| Ok(1));
    r.errback(Failure::msg(marker)).unwrap();
    assert_eq!(outer.wait().unwrap(), 1);
    assert!(records(marker).is_empty());
}

/// Twisted: LogTests.test_errorClearedByChaining: an errback that returns a Deferred
/// which succeeds clears the failure.
#[test]
fn failure_cleared_by_errback_returning_deferred() {
    install();
    let marker = "marker-cleared-by-chaining";
    let d = Deferred::<i32>::fail(Failure::msg(marker)).add_errback(|_| Deferred::succeed(5));
    drop(d);
    assert!(records(marker).is_empty());
}

/// Twisted: LogTests.test_chainedErrorCleanup, unhandled variant: the failure is logged
/// once, by the outer Deferred that ended with it, not by the inner too.
#[test]
fn failure_through_chain_unhandled_logged_once() {
    install();
    let marker = "marker-chained-unhandled";
    let (inner, r) = Deferred::<i32>::pending();
    let outer = Deferred::succeed(()).add_callback(move |_| inner);
    r.errback(Failure::msg(marker)).unwrap();
    drop(outer);
    assert_eq!(records(marker).len(), 1);
}

/// Twisted: AwaitTests (reference §1.10.49: awaiting a failed Deferred clears its
/// unhandled-error flag): an awaited failure is not logged.
#[test]
fn awaited_failure_not_logged() {
    install();
    let marker = "marker-awaited";
    let d = Deferred::<i32>::fail(Failure::msg(marker));
    let f = futures::executor::block_on(d).unwrap_err();
    assert_eq!(f.to_string(), marker);
    assert!(records(marker).is_empty());
}

/// Twisted: trial's failureResultOf consumes the result (reference §1.12.58): a failure
/// taken by `wait()` or `try_result()` is not logged.
#[test]
fn waited_or_taken_failure_not_logged() {
    install();
    let marker = "marker-waited";
    assert!(Deferred::<i32>::fail(Failure::msg(marker)).wait().is_err());
    let mut d = Deferred::<i32>::fail(Failure::msg(marker));
    assert!(d.try_result().unwrap().is_err());
    drop(d);
    assert!(records(marker).is_empty());
}

/// Twisted: DeferredTests.testCallbackErrors (raise form) + LogTests.test_errorLog: a
/// panic in a callback becomes a `Panicked` failure, does not unwind into `callback()`,
/// and is logged with its message when unhandled.
#[test]
fn panic_in_callback_becomes_logged_failure() {
    install();
    let marker = "marker-panic-in-callback";
    let (d, r) = Deferred::<()>::pending();
    let d = d.add_callback(move |_| -> Result<(), Failure> { panic!("{}", marker) });
    let fired = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.callback(())));
    assert!(matches!(fired, Ok(Ok(()))), "the panic did not unwind");
    drop(d);
    let got = records(marker);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].1.contains(&format!("panicked: {marker}")),
        "{}",
        got[0].1
    );
}

/// Twisted: none (the Panicked failure is an ordinary failure an errback can trap).
#[test]
fn panic_failure_can_be_trapped() {
    install();
    let marker = "marker-panic-trapped";
    let d = Deferred::succeed(())
        .add_callback(move |_| -> Result<(), Failure> { panic!("{}", marker) })
        .add_errback(|f| {
            assert_eq!(f.trap::<Panicked>()?.message(), "marker-panic-trapped");
            Ok(())
        });
    assert!(d.wait().is_ok());
    assert!(records(marker).is_empty());
}

/// Twisted: LogTests.test_errorLog, for a failure raised by a callback that ran at once on
/// a fired Deferred: logged once when the Deferred is dropped, naming the line where that
/// callback was added (the handle of a fired Deferred keeps no creation site of its own).
#[test]
fn failure_of_an_inline_callback_names_where_it_was_added() {
    install();
    let marker = "marker-inline-callback";
    let d = Deferred::succeed(1);
    let line = line!() + 1;
    let d = d.add_callback(move |_| -> Result<i32, Failure> { Err(Failure::msg(marker)) });
    // Handed on unhandled by later inline steps (a callback it skips).
    let d = d.add_callback(|n| Ok(n + 1));
    assert!(records(marker).is_empty(), "not logged before the drop");
    drop(d);
    let got = records(marker);
    assert_eq!(got.len(), 1, "{got:?}");
    let at = format!("{}:{line}:", file!());
    assert!(got[0].1.contains(&at), "names {at}: {}", got[0].1);
}
