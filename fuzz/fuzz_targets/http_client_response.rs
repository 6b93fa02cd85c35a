//! The client's response reading, fed arbitrary bytes whole and in arbitrary chunks,
//! then the end of the stream: the response (or the error) and the bytes left after a
//! response must not depend on the cut, and nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ropewalk_protocols::http::fuzzing::ResponseReader;
use ropewalk_protocols::http::ClientConfig;

#[path = "split.rs"]
mod split;

fn read(chunks: &[&[u8]], head_only: bool, clean: bool) -> (Result<String, String>, Vec<u8>) {
    let config = ClientConfig {
        max_head_bytes: 1024,
        max_headers: 16,
        max_body: 512,
        ..ClientConfig::default()
    };
    let mut reader = ResponseReader::new(head_only, config);
    let mut rest = Vec::new();
    let mut taking = true;
    for chunk in chunks {
        if taking {
            taking = reader.feed(chunk);
        } else {
            rest.extend_from_slice(chunk);
        }
    }
    let mut leftover = reader.leftover().to_vec();
    leftover.extend_from_slice(&rest);
    let outcome = reader.finish(clean).map(|r| {
        format!(
            "{} {:?} {:?} {:?} {:?}",
            r.status(),
            r.reason(),
            r.version(),
            r.headers().iter().collect::<Vec<_>>(),
            r.body()
        )
    });
    // After a failure the connection is aborted: what was left unread does not matter.
    if outcome.is_err() {
        leftover.clear();
    }
    (outcome, leftover)
}

fuzz_target!(|data: &[u8]| {
    let (ctl, input) = split::steer(data, 5);
    let seed = u32::from_le_bytes([ctl[0], ctl[1], ctl[2], ctl[3]]);
    let (head_only, clean) = (ctl[4] & 1 != 0, ctl[4] & 2 == 0);
    let whole = read(&[input], head_only, clean);
    let split = read(&split::cut(input, seed), head_only, clean);
    assert_eq!(
        whole,
        split,
        "the response depends on the cut; input {:?}",
        String::from_utf8_lossy(input)
    );
});
