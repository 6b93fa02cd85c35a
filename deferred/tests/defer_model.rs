//! Randomised differential test: thousands of generated programs over a handful of
//! Deferreds run on the real engine and on a small model of Twisted's `_runCallbacks`,
//! and must agree on every step (the model and the program generator are in
//! `ropewalk_testkit::defer_model`, shared with the `deferred_program` fuzz target).
//!
//! No Twisted test has this shape: it is the net under the engine's fast paths (results
//! carried in the handle, steps run inline, chains recycled), each of which must behave
//! exactly as the plain chain does. A failing seed prints the program that broke.

use std::panic;

use ropewalk_deferred::Panicked;
use ropewalk_testkit::chaos::Rng;
use ropewalk_testkit::defer_model::run_program;

#[test]
fn generated_programs_agree_with_the_model() {
    // Callbacks panic on purpose: keep the default hook's message out of the output.
    panic::set_hook(Box::new(|_| {}));
    let seeds: u64 = std::env::var("DEFER_MODEL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let mut failures = Vec::new();
    for seed in 0..seeds {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let result = panic::catch_unwind(move || run_program(&mut rng))
            .unwrap_or_else(|p| Err(Panicked::from_payload(p).to_string()));
        if let Err(e) = result {
            failures.push(format!("seed {seed}: {e}"));
            if failures.len() == 3 {
                break;
            }
        }
    }
    let _ = panic::take_hook();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
