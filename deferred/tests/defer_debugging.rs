//! Debugging switches backtrace capture for the whole process (Twisted's
//! `defer.setDebugging`), so these checks run as one test in their own binary: no other
//! test can see the switch.

use ropewalk_deferred::{is_debugging, set_debugging, Deferred, Failure};

/// Twisted: AlreadyCalledTests.testSwitchDebugging, and
/// DeferredTests.test_errorInCallbackCapturesVarsWhenDebugging (a backtrace instead of
/// captured locals): captured only while debugging is on; switching mid-life is safe.
#[test]
fn backtrace_only_while_debugging() {
    assert!(!is_debugging());
    let before = Failure::msg("before");
    assert!(before.backtrace().is_none());

    set_debugging(true);
    assert!(is_debugging());
    let during = Failure::msg("during");
    assert!(during.backtrace().is_some());
    assert!(format!("{during:?}").contains("backtrace:"));
    // A failure made inside a callback, while debugging.
    let f = Deferred::succeed(1)
        .add_callback(|_| -> Result<i32, Failure> { Err(Failure::msg("in callback")) })
        .wait()
        .unwrap_err();
    assert!(f.backtrace().is_some());
    // A failure made before the switch is unchanged.
    assert!(before.backtrace().is_none());

    set_debugging(false);
    assert!(!is_debugging());
    let after = Failure::msg("after");
    assert!(after.backtrace().is_none());
    assert_eq!(format!("{after:?}"), "Failure(after)");
    // One made while debugging keeps its backtrace.
    assert!(during.backtrace().is_some());
}
