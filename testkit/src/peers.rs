//! Outside peers of the interop tests (curl, python3 and Twisted, openssl): present, or a
//! loud skip, or a clear failure when peers are required.
//!
//! A plain `cargo test` on a machine with only Rust passes, each interop test that could
//! not run saying so on stderr with the way to install its peer; `.ci/run` installs the
//! peers and sets `ROPEWALK_REQUIRE_PEERS=1`, under which a missing peer fails the test.
//!
//! # Examples
//!
//! ```
//! use ropewalk_testkit::peers::require;
//!
//! if !require("true", &["true"], "apt-get install -y coreutils") {
//!     return; // skipped, loudly
//! }
//! ```

use std::io::Write;
use std::process::{Command, Stdio};

/// Whether a missing peer fails the test (`ROPEWALK_REQUIRE_PEERS=1`, set by `.ci/run`)
/// instead of skipping it.
///
/// # Examples
///
/// ```
/// let _strict: bool = ropewalk_testkit::peers::peers_required();
/// ```
pub fn peers_required() -> bool {
    std::env::var("ROPEWALK_REQUIRE_PEERS").as_deref() == Ok("1")
}

/// Checks that `tool` is installed (`probe` runs and succeeds). When it is missing,
/// returns false after a loud notice, or panics with the way to install it when
/// [`peers_required`].
///
/// # Panics
///
/// When the tool is missing and [`peers_required`].
///
/// # Examples
///
/// ```
/// use ropewalk_testkit::peers::require;
/// assert!(require("sh", &["sh", "-c", "exit 0"], "apt-get install -y dash"));
/// ```
pub fn require(tool: &str, probe: &[&str], install: &str) -> bool {
    let ok = Command::new(probe[0])
        .args(&probe[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    if peers_required() {
        panic!(
            "{tool} is needed by the interop tests and ROPEWALK_REQUIRE_PEERS=1 is \
             set, but `{}` failed. Install it with: {install}  (or run `bash .ci/run`, \
             which installs it)",
            probe.join(" ")
        );
    }
    // Written to the stderr handle, not with `eprintln!`, which the test harness
    // captures and hides for a passing test: a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: {tool} is not installed; this interop test did not run. \
         Install it with: {install}  (ROPEWALK_REQUIRE_PEERS=1 makes this a failure)\n"
    );
    false
}
