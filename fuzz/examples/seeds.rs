//! Writes the seed corpora, `corpus/TARGET/NAME`, from the inputs the tests use: the
//! malformed-request table, well-formed requests and responses, chunked bodies, framed
//! streams. Each seed starts with the steering bytes its target reads (see
//! `fuzz_targets/split.rs`). Run by `run.sh` (`cargo run --example seeds`, from `fuzz/`);
//! the corpora are not committed.

use std::fs;
use std::path::Path;

use ropewalk_testkit::chaos::Rng;
use ropewalk_testkit::malformed::{over_limits, Limits, MALFORMED, SMUGGLED};

/// Cuts: byte at a time, small chunks, larger chunks.
const CUTS: [[u8; 4]; 3] = [[0, 0, 0, 0], [0x19, 0, 0, 0], [0xf9, 0x01, 0, 0]];

fn write(target: &str, name: &str, steer: &[u8], payload: &[u8]) {
    let dir = Path::new("corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus directory");
    let mut bytes = steer.to_vec();
    bytes.extend_from_slice(payload);
    let name: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    fs::write(dir.join(name), bytes).expect("seed file");
}

fn http_server() {
    let good: [(&str, &[u8]); 8] = [
        ("get", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("head", b"HEAD /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("post", b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"),
        (
            "chunked",
            b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nT: 1\r\n\r\n",
        ),
        (
            "pipelined",
            b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /close HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        ("http10", b"GET / HTTP/1.0\r\n\r\n"),
        (
            "expect",
            b"PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
        ),
        ("304", b"GET /304 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    ];
    for (i, (name, req)) in good.iter().enumerate() {
        write("http_server", name, &CUTS[i % 3], req);
    }
    let rows = MALFORMED.iter().cloned().chain(over_limits(&Limits::SMALL));
    for (i, row) in rows.enumerate().take(40) {
        let mut req = row.request.to_vec();
        req.extend_from_slice(SMUGGLED);
        write("http_server", row.name, &CUTS[i % 3], &req);
    }
}

fn http_client_response() {
    let responses: [(&str, u8, &[u8]); 9] = [
        (
            "length",
            0,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        ),
        (
            "chunked",
            0,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        ),
        (
            "until_close",
            0,
            b"HTTP/1.0 200 OK\r\n\r\nbody until the close",
        ),
        ("until_close_reset", 2, b"HTTP/1.1 200 OK\r\n\r\ncut"),
        (
            "no_content",
            0,
            b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
        ),
        (
            "continue",
            0,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
        ),
        ("head", 1, b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"),
        (
            "leftover",
            0,
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n\r\n",
        ),
        (
            "conflict",
            0,
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ),
    ];
    for (i, (name, flags, resp)) in responses.iter().enumerate() {
        let mut steer = CUTS[i % 3].to_vec();
        steer.push(*flags);
        write("http_client_response", name, &steer, resp);
    }
}

fn chunked() {
    let bodies: [(&str, &[u8]); 8] = [
        ("plain", b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
        ("ext", b"5;a=b;c=\"d e\"\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
        ("upper", b"A\r\n0123456789\r\n0\r\n\r\n"),
        ("bare_lf", b"5\nhello\r\n0\r\n\r\n"),
        ("space", b"a \r\n0123456789\r\n0\r\n\r\n"),
        ("sign", b"+5\r\nhello\r\n0\r\n\r\n"),
        ("huge", b"11111111111111111\r\n"),
        ("no_crlf", b"5\r\nhelloXX0\r\n\r\n"),
    ];
    for (i, (name, body)) in bodies.iter().enumerate() {
        let mut steer = CUTS[i % 3].to_vec();
        steer.push(if i % 2 == 0 { 0x80 } else { 8 });
        write("chunked", name, &steer, body);
    }
}

fn receivers() {
    // (kind + 6 * delimiter, max, stream)
    let streams: [(&str, u8, u8, &[u8]); 10] = [
        (
            "line",
            0,
            20,
            b"one\r\nR3abcR2\r\nxy\r\nP\r\nafter\r\nC\r\nlost\r\n",
        ),
        ("line_lf", 6, 8, b"a\nb\nlonger than eight\n"),
        ("line_aa", 12, 10, b"xaaayaaP\naaRR3aaaaaaa"),
        ("line_only", 1, 16, b"one\r\ntwo\r\nE\r\nthree\r\n"),
        ("line_only_long", 7, 4, b"abcd\nabcde\n"),
        ("int8", 2, 40, b"\x03abc\x01C\x02zz"),
        ("int16", 3, 40, b"\x00\x02hi\x00\x01E"),
        ("int32", 4, 40, b"\x00\x00\x00\x04ubar\x00\x00\x00\x40"),
        ("netstring", 5, 20, b"5:hello,0:,1:C,"),
        ("netstring_bad", 5, 20, b"3:abc,01:x,"),
    ];
    for (i, (name, kind, max, stream)) in streams.iter().enumerate() {
        let mut steer = CUTS[i % 3].to_vec();
        steer.extend_from_slice(&[*kind, *max]);
        write("receivers", name, &steer, stream);
    }
}

fn deferred_program() {
    let mut rng = Rng(0x5eed);
    for i in 0..24 {
        let len = 8 + rng.below(120);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        write("deferred_program", &format!("program_{i}"), &[], &bytes);
    }
}

fn main() {
    http_server();
    http_client_response();
    chunked();
    receivers();
    deferred_program();
}
