//! A failure dropped unhandled reaches stderr when no `log` logger takes errors, as
//! Twisted prints "Unhandled error in Deferred" with no setup; with a logger it goes
//! through `log` only.
//!
//! Each case runs this test binary again as a child process (the logger is global to a
//! process, and stderr must be read from outside), selected by an environment variable.

use std::process::Command;

use ropewalk_deferred::{Deferred, Failure};

const CHILD: &str = "ROPEWALK_UNHANDLED_CHILD";

struct Quiet;

impl log::Log for Quiet {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, _: &log::Record<'_>) {}
    fn flush(&self) {}
}

/// Runs `test` of this binary in a child with `CHILD=mode`; returns its stderr.
fn child_stderr(test: &str, mode: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, mode)
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    String::from_utf8(out.stderr).unwrap()
}

/// In a child: drops a failed Deferred, after installing a logger if asked.
fn drop_a_failure(mode: &str) {
    if mode == "logger" {
        log::set_logger(&Quiet).unwrap();
        log::set_max_level(log::LevelFilter::Error);
    }
    let d = Deferred::<u32>::fail(Failure::msg("marker-7f3a lost the answer"));
    drop(d);
}

#[test]
fn unhandled_failure_goes_to_stderr_without_a_logger() {
    if let Ok(mode) = std::env::var(CHILD) {
        return drop_a_failure(&mode);
    }
    let err = child_stderr("unhandled_failure_goes_to_stderr_without_a_logger", "none");
    let line = err
        .lines()
        .find(|l| l.contains("marker-7f3a"))
        .unwrap_or_else(|| panic!("not on stderr: {err:?}"));
    assert!(
        line.starts_with("Unhandled error in Deferred (created at "),
        "{line}"
    );
    assert!(
        line.contains("defer_unhandled_stderr.rs"),
        "names the creation site: {line}"
    );
    assert!(err.contains("install one, e.g. env_logger"), "{err}");
}

#[test]
fn unhandled_failure_goes_to_the_logger_only_when_one_is_installed() {
    if let Ok(mode) = std::env::var(CHILD) {
        return drop_a_failure(&mode);
    }
    let err = child_stderr(
        "unhandled_failure_goes_to_the_logger_only_when_one_is_installed",
        "logger",
    );
    assert!(
        !err.contains("marker-7f3a"),
        "printed besides the logger: {err:?}"
    );
}
