//! `Failure`: Twisted's `FailureTests` (test/test_failure.py) where they apply.
//!
//! Debugging (backtraces) is process-global, so its tests live in their own binary,
//! defer_debugging.rs; nothing here switches it on, so failures here have no backtrace.
//!
//! Not ported, one line each:
//! - `test_ConstructionFails`, `test_failureConstructionFindsOriginalFailure`,
//!   `test_failureValueFromFoundFailure`: Rust has no "current exception".
//! - `test_failAndTrap`'s subclass match (`RuntimeError` traps `NotImplementedError`): Rust
//!   errors have no subclasses; `trap` matches the exact type (and `find` the cause chain).
//! - `test_printDetailedTraceback*`, `test_printBriefTraceback`, `test_printTraceback`,
//!   `test_invalidFormatFramesDetail`, `GetTracebackTests.*`: no frames; `Debug` shows the
//!   backtrace when debugging (defer_debugging.rs).
//! - `test_cleanFailureRemovesTracebackInPython3`, `test_getTracebackObject*`,
//!   `test_failurePickling*`, `test_RaiseExceptionWithTB`, `ExtendedGeneratorTests.*`:
//!   Python object machinery with no Rust counterpart.

use std::error::Error;
use std::fmt;

use ropewalk_deferred::{Cancelled, Deferred, Failure, FirstError, Panicked, Timeout};

#[derive(Debug)]
struct Outer(Inner);

#[derive(Debug, PartialEq)]
struct Inner(&'static str);

impl fmt::Display for Outer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request failed")
    }
}

impl Error for Outer {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

impl fmt::Display for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection refused by {}", self.0)
    }
}

impl Error for Inner {}

/// Twisted: FailureTests.test_failAndTrap (exact type; see the note above)
#[test]
fn trap_returns_the_matching_error() {
    let f = Failure::new(Inner("x"));
    assert_eq!(f.trap::<Inner>().unwrap(), &Inner("x"));
}

/// Twisted: FailureTests.test_trapRaisesWrappedException (a failed trap hands on the
/// original failure, the same object)
#[test]
fn trap_mismatch_hands_on_the_same_failure() {
    let f = Failure::new(Inner("x"));
    let back = f.trap::<Cancelled>().unwrap_err();
    assert!(back.ptr_eq(&f));
    assert!(back.is::<Inner>());
}

/// Twisted: FailureTests.test_failureValueFromFailure (a copy shares the value)
#[test]
fn clone_shares_the_error() {
    let f = Failure::new(Inner("v"));
    let g = f.clone();
    assert!(g.ptr_eq(&f));
    assert!(std::ptr::eq(
        f.downcast_ref::<Inner>().unwrap(),
        g.downcast_ref::<Inner>().unwrap()
    ));
}

/// Twisted: Failure.check (reference §1.13.61): `is` answers for the outermost error only.
#[test]
fn is_checks_the_outermost_type() {
    let f = Failure::new(Outer(Inner("h")));
    assert!(f.is::<Outer>());
    assert!(!f.is::<Inner>());
    assert!(f.downcast_ref::<Inner>().is_none());
    assert!(f.downcast_ref::<Outer>().is_some());
}

/// Twisted: none (Failure.check has no cause chain in Python): `find` walks `source()`.
#[test]
fn find_searches_the_cause_chain() {
    let f = Failure::new(Outer(Inner("h")));
    assert_eq!(f.find::<Inner>(), Some(&Inner("h")));
    assert!(f.find::<Outer>().is_some());
    assert!(f.find::<Timeout>().is_none());
    let nested = Failure::new(FirstError::new(1, Failure::new(Cancelled)));
    assert!(nested.find::<Cancelled>().is_some());
    assert_eq!(nested.chain().count(), 2);
}

/// Twisted: FailureTests.test_repr and getErrorMessage (reference §1.13.63); `Display`
/// prints the cause chain, `a: b`.
#[test]
fn display_and_debug() {
    let f = Failure::new(Outer(Inner("h")));
    assert_eq!(f.to_string(), "request failed: connection refused by h");
    assert_eq!(f.error().to_string(), "request failed");
    let d = format!("{:?}", Failure::msg("z"));
    assert_eq!(d, "Failure(z)", "no backtrace when debugging is off");
}

/// Twisted: FailureTests.test_tracebackFromExceptionInPython3's cost side (reference
/// §1.13.64): no backtrace is captured while debugging is off (the default).
#[test]
fn no_backtrace_without_debugging() {
    assert!(!ropewalk_deferred::is_debugging());
    assert!(Failure::msg("m").backtrace().is_none());
    assert!(Failure::new(Inner("i")).backtrace().is_none());
}

/// Twisted: none (Rust conversion): any error converts with `?`, and back into a boxed
/// error keeping its `source()` chain.
#[test]
fn question_mark_and_boxed_error_roundtrip() {
    fn parse(s: &str) -> Result<u8, Failure> {
        Ok(s.parse::<u8>()?)
    }
    assert!(parse("x").unwrap_err().is::<std::num::ParseIntError>());
    let boxed: Box<dyn Error + Send + Sync> = Failure::new(Outer(Inner("b"))).into();
    assert_eq!(boxed.to_string(), "request failed");
    assert_eq!(
        boxed.source().unwrap().to_string(),
        "connection refused by b"
    );
}

/// Twisted: none (Rust-specific): `Failure` is `Send + Sync`, so it may cross threads.
#[test]
fn failure_crosses_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Failure>();
    let f = std::thread::spawn(|| Failure::msg("from a worker"))
        .join()
        .unwrap();
    assert_eq!(f.to_string(), "from a worker");
}

/// Twisted: a raised exception in a callback becomes a Failure (reference §1.1.8); here a
/// panic becomes `Panicked`, for `&str`, `String` and other payloads.
#[test]
fn panicked_keeps_the_message() {
    let d = Deferred::succeed(1).add_callback(|n| -> Result<i32, Failure> { panic!("n was {n}") });
    let f = d.wait().unwrap_err();
    assert!(f.is_panic());
    assert_eq!(f.downcast_ref::<Panicked>().unwrap().message(), "n was 1");
    assert_eq!(f.to_string(), "panicked: n was 1");
    let other = std::panic::catch_unwind(|| std::panic::panic_any(17u8)).unwrap_err();
    assert_eq!(
        Panicked::from_payload(other).message(),
        "non-string panic payload"
    );
}
