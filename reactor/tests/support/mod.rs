//! Helpers shared by the reactor's integration tests: a capturing logger, and a way to
//! bound a test that could hang.
#![allow(dead_code)]

use std::sync::mpsc;
use std::sync::{Mutex, Once};
use std::time::Duration;

static RECORDS: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        RECORDS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((record.level(), record.args().to_string()));
    }

    fn flush(&self) {}
}

/// Installs the capturing logger once per test binary.
pub fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::set_logger(&Capture).expect("no other logger in the tests");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// The records logged so far whose message contains `marker` (tests run in parallel
/// threads, so each one filters by a marker of its own).
pub fn logged(marker: &str) -> Vec<(log::Level, String)> {
    RECORDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(_, msg)| msg.contains(marker))
        .cloned()
        .collect()
}

/// Runs `f` on its own thread and fails the test if it does not finish within `limit`
/// (for the tests whose failure mode is a hang). A panic in `f` fails the test too.
pub fn bounded<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            worker.join().unwrap();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // `f` panicked: re-raise its panic here.
            std::panic::resume_unwind(worker.join().unwrap_err())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("did not finish within {limit:?} (hang)"),
    }
}

pub mod net;
pub mod tls;
