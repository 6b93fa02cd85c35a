//! The malformed-request table: every rejection rule of the server, one row each, with
//! the status it must get. Each request is sent with a valid `GET /smuggled` behind it
//! in the same read, and every row must give exactly one response, with its status and
//! `Connection: close`, the connection closed, and no handler call at all — so nothing
//! behind a rejected request is ever read as a second request (no smuggling). The table
//! is run twice: in one read, and one byte per read.
//!
//! The rows are the shared table of `ropewalk-testkit` (the soak in `bench/` sends the same
//! ones). They run with small limits ([`config`]) so that the 431/414/413 rows stay short;
//! the default limits are covered in `http_parsing.rs`, which also has the accepted
//! neighbours of these rows (what is *not* rejected).

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::{echo, Conn};
use ropewalk_protocols::http::{Request, ServerConfig};
use ropewalk_testkit::malformed::{over_limits, Limits, MalformedRequest, MALFORMED, SMUGGLED};

/// The limits the table runs with.
fn config() -> ServerConfig {
    let Limits {
        max_header_bytes,
        max_headers,
        max_uri,
        max_body,
    } = Limits::SMALL;
    ServerConfig {
        max_header_bytes,
        max_headers,
        max_uri,
        max_body,
        ..ServerConfig::default()
    }
}

/// Every row: the shared table, and the rows past [`config`]'s limits.
fn cases() -> Vec<MalformedRequest> {
    MALFORMED
        .iter()
        .cloned()
        .chain(over_limits(&Limits::SMALL))
        .collect()
}

/// Feeds `request` + [`SMUGGLED`] (in one read, or a byte per read) and checks the row;
/// returns what went wrong.
fn check(name: &str, request: &[u8], status: u16, bytewise: bool) -> Result<(), String> {
    let seen = Rc::new(RefCell::new(Vec::<String>::new()));
    let s = seen.clone();
    let mut c = Conn::with_config(
        move |req: Request| {
            s.borrow_mut().push(req.target().to_string());
            echo(req)
        },
        config(),
    );
    let mut input = request.to_vec();
    input.extend_from_slice(SMUGGLED);
    if bytewise {
        c.send_bytewise(&input);
    } else {
        c.send(&input);
    }
    let how = if bytewise {
        "a byte per read"
    } else {
        "one read"
    };
    let fail =
        |what: String, c: &Conn| Err(format!("{name} ({how}): {what}; wrote {:?}", c.output()));
    let all = c.responses();
    if all.len() != 1 {
        return fail(format!("{} responses, not one", all.len()), &c);
    }
    let resp = &all[0];
    if resp.status != status {
        return fail(format!("status {}, not {status}", resp.status), &c);
    }
    if resp.header("connection") != Some("close") {
        return fail("no Connection: close".into(), &c);
    }
    if !c.closed() {
        return fail("the connection was left open".into(), &c);
    }
    if !seen.borrow().is_empty() {
        return fail(format!("the handler saw {:?}", seen.borrow()), &c);
    }
    // Whatever the client sends next is never read either.
    c.send(SMUGGLED);
    if c.responses().len() != 1 || !seen.borrow().is_empty() {
        return fail("read a request after closing".into(), &c);
    }
    Ok(())
}

/// Runs every row, and reports every row that fails (not only the first).
fn check_all(bytewise: bool) {
    let cases = cases();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check(c.name, &c.request, c.status, bytewise).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_table_has_every_rule() {
    let cases = cases();
    assert!(cases.len() >= 40, "only {} rows", cases.len());
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "two rows share a name");
    for status in [400, 413, 414, 417, 431, 501, 505] {
        assert!(
            cases.iter().any(|c| c.status == status),
            "no row for {status}"
        );
    }
}

/// The request behind each row is itself valid: were it read, it would be answered.
#[test]
fn the_smuggled_request_alone_is_answered() {
    let mut c = Conn::with_config(echo, config());
    c.send(SMUGGLED);
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "GET /smuggled 0:"));
    assert!(!c.closed());
}

#[test]
fn every_row_in_one_read() {
    check_all(false);
}

#[test]
fn every_row_a_byte_per_read() {
    check_all(true);
}
