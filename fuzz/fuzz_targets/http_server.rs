//! The HTTP server on a string transport, fed arbitrary bytes whole and in arbitrary
//! chunks: what it writes and whether it closes must not depend on the cut, and nothing
//! panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ropewalk_protocols::http::{HttpServer, Request, Response, ServerConfig};
use ropewalk_reactor::testing::StringTransport;
use ropewalk_reactor::{ManualClock, Protocol};
use ropewalk_testkit::malformed::Limits;

#[path = "split.rs"]
mod split;

/// What the connection did: the bytes written (the `Date` values blanked: they read the
/// wall clock), whether it closes, aborted, and whether `data_received` failed.
#[derive(Debug, PartialEq)]
struct Seen {
    written: Vec<u8>,
    disconnecting: bool,
    aborted: bool,
    failed: bool,
}

fn handler(req: Request) -> Result<Response, ropewalk_deferred::Failure> {
    // Everything the server parsed goes back in the body, so a cut that changes the
    // parse changes the bytes written.
    let mut body = format!("{} {} {:?}\n", req.method(), req.target(), req.version());
    for (name, value) in req.headers().iter() {
        body.push_str(&format!("{name:?}: {value:?}\n"));
    }
    let mut body = body.into_bytes();
    body.extend_from_slice(req.body());
    let status = match req.path() {
        "/close" => return Ok(Response::bytes(body).with_header("Connection", "close")),
        "/204" => 204,
        "/304" => 304,
        _ => 200,
    };
    Ok(Response::bytes(body).with_status(status))
}

fn serve(chunks: &[&[u8]]) -> Seen {
    let clock = ManualClock::new();
    // The limits of the malformed-request table's small rows (the seeds).
    let limits = Limits::SMALL;
    let config = ServerConfig {
        max_header_bytes: limits.max_header_bytes,
        max_headers: limits.max_headers,
        max_uri: limits.max_uri,
        max_body: limits.max_body,
        max_pipelined: 4,
        server_name: None,
        ..ServerConfig::default()
    };
    let server = HttpServer::with_config(&clock, handler, config);
    let mut conn = server.connection();
    let t = StringTransport::connect(&mut conn);
    let mut failed = false;
    for chunk in chunks {
        // A real transport stops reading once the connection is closing.
        if t.is_disconnecting() || t.was_aborted() {
            break;
        }
        if conn.data_received(chunk).is_err() {
            failed = true;
            break;
        }
    }
    let seen = Seen {
        written: blank_dates(t.value()),
        disconnecting: t.is_disconnecting(),
        aborted: t.was_aborted(),
        failed,
    };
    // The end of the connection, as a transport always reports it: its timers and state
    // go (without it, each run would keep them).
    conn.connection_lost(ropewalk_deferred::Failure::msg("gone"));
    seen
}

fn blank_dates(mut out: Vec<u8>) -> Vec<u8> {
    const DATE: &[u8] = b"\r\nDate: ";
    let mut i = 0;
    while let Some(at) = out[i..].windows(DATE.len()).position(|w| w == DATE) {
        let start = i + at + DATE.len();
        let end = (start + 29).min(out.len());
        out[start..end].fill(b'#');
        i = end;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (ctl, input) = split::steer(data, 4);
    let seed = u32::from_le_bytes([ctl[0], ctl[1], ctl[2], ctl[3]]);
    let whole = serve(&[input]);
    let split = serve(&split::cut(input, seed));
    assert_eq!(
        whole,
        split,
        "the answer depends on the cut; input {:?}",
        String::from_utf8_lossy(input)
    );
});
