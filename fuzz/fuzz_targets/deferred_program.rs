//! Deferred programs made from the fuzzer's bytes, run on the engine and on the model of
//! Twisted's `_runCallbacks` (`ropewalk_testkit::defer_model`, the oracle of
//! ropewalk-deferred's `defer_model` test): they must agree on every step.
#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use ropewalk_testkit::defer_model::{run_program, ByteChoices};

static HOOK: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    // The programs' callbacks panic on purpose ("boom") and the engine catches it; only
    // another panic is a finding (libFuzzer's hook would abort on every one).
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            if info.payload().downcast_ref::<&str>() == Some(&"boom") {
                return;
            }
            eprintln!("{info}");
            std::process::abort();
        }));
    });
    if let Err(e) = run_program(&mut ByteChoices::new(data)) {
        eprintln!("{e}");
        std::process::abort();
    }
});
