//! The client kinds run against the `echo_server` example: ping-pong (single and burst),
//! half-close, UDP datagrams and abrupt closes. Each loops until the context says stop.

use std::io::{Read, Write};
use std::net::{Shutdown, UdpSocket};
use std::time::{Duration, Instant};

use crate::context::{is_timeout, set_reset_on_close, Ctx};
use crate::requests::Rng;
use crate::OP_BOUND;

pub(crate) fn echo_pingpong(ctx: &Ctx, rng: &mut Rng, burst: bool) {
    let kind: &'static str = if burst { "pipeline" } else { "keepalive" };
    while !ctx.stopped() {
        let Some(s) = ctx.connect_or_fail(kind, OP_BOUND) else {
            continue;
        };
        let mut s = s;
        for _ in 0..rng.range(1, 200) {
            if ctx.stopped() {
                break;
            }
            let t = Instant::now();
            let (msg, n) = if burst {
                let parts: Vec<Vec<u8>> = (0..16).map(|_| rng.bytes_in(1, 2048)).collect();
                (parts.concat(), 16)
            } else {
                // Sizes from 1 byte to 64 KiB, small ones more often.
                let max = [16, 1024, 16 * 1024, 64 * 1024][rng.below(4)];
                (rng.bytes_in(1, max), 1)
            };
            if let Err(e) = s.write_all(&msg) {
                ctx.stats.fail(kind, "write", e.to_string());
                break;
            }
            let mut back = vec![0u8; msg.len()];
            match s.read_exact(&mut back) {
                Ok(()) if back == msg => ctx.stats.ok(kind, t.elapsed(), n),
                Ok(()) => {
                    let at = back.iter().zip(&msg).position(|(a, b)| a != b).unwrap_or(0);
                    ctx.stats.fail(
                        kind,
                        "wrong echo",
                        format!("{} bytes, first difference at {at}", msg.len()),
                    );
                    break;
                }
                Err(e) if is_timeout(&e) => {
                    ctx.stats.fail(
                        kind,
                        "hang",
                        format!("{} bytes, {:?}", msg.len(), t.elapsed()),
                    );
                    break;
                }
                Err(e) => {
                    ctx.stats.fail(kind, "echo cut", e.to_string());
                    break;
                }
            }
        }
    }
}

pub(crate) fn echo_halfclose(ctx: &Ctx, rng: &mut Rng) {
    const KIND: &str = "halfclose";
    while !ctx.stopped() {
        let t = Instant::now();
        let Some(mut s) = ctx.connect_or_fail(KIND, OP_BOUND) else {
            continue;
        };
        let msg = rng.bytes_in(0, 64 * 1024);
        let result = s
            .write_all(&msg)
            .and_then(|()| s.shutdown(Shutdown::Write))
            .and_then(|()| {
                let mut back = Vec::new();
                s.read_to_end(&mut back).map(|_| back)
            });
        match result {
            Ok(back) if back == msg => ctx.stats.ok(KIND, t.elapsed(), 1),
            Ok(back) => ctx.stats.fail(
                KIND,
                "wrong echo after half-close",
                format!("sent {}, got {}", msg.len(), back.len()),
            ),
            Err(e) if is_timeout(&e) => {
                ctx.stats.fail(KIND, "hang", format!("{} bytes", msg.len()))
            }
            Err(e) => ctx.stats.fail(KIND, "error", e.to_string()),
        }
    }
}

pub(crate) fn echo_udp(ctx: &Ctx, rng: &mut Rng) {
    const KIND: &str = "udp";
    let sock = match UdpSocket::bind("127.0.0.1:0").and_then(|s| {
        s.connect(ctx.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        Ok(s)
    }) {
        Ok(s) => s,
        Err(e) => {
            ctx.stats.fail(KIND, "socket", e.to_string());
            return;
        }
    };
    let mut seq = 0u64;
    let mut buf = vec![0u8; 65536];
    while !ctx.stopped() {
        seq += 1;
        let mut msg = seq.to_be_bytes().to_vec();
        msg.extend(rng.bytes_in(0, 1400));
        let t = Instant::now();
        if let Err(e) = sock.send(&msg) {
            ctx.stats.fail(KIND, "send", e.to_string());
            continue;
        }
        // Skip late echoes of earlier datagrams.
        loop {
            match sock.recv(&mut buf) {
                Ok(n) if n >= 8 && buf[..8] != msg[..8] => continue,
                Ok(n) if buf[..n] == msg[..] => {
                    ctx.stats.ok(KIND, t.elapsed(), 1);
                    break;
                }
                Ok(n) => {
                    ctx.stats.fail(
                        KIND,
                        "wrong datagram",
                        format!("sent {}, got {n}", msg.len()),
                    );
                    break;
                }
                Err(_) => {
                    // Loopback drops a datagram only when a buffer is full: noted, and
                    // checked against a tolerance at the end.
                    ctx.stats.note("udp: datagram lost (1 s)".into());
                    break;
                }
            }
        }
    }
}

pub(crate) fn echo_abrupt(ctx: &Ctx, rng: &mut Rng) {
    const KIND: &str = "abrupt";
    while !ctx.stopped() {
        let t = Instant::now();
        let Some(mut s) = ctx.connect_or_fail(KIND, OP_BOUND) else {
            continue;
        };
        let msg = rng.bytes_in(1, 256 * 1024);
        match rng.below(3) {
            // Connect and close at once.
            0 => {}
            // Send, read part of the echo, reset.
            1 => {
                let sent = msg.len().min(32 * 1024);
                let _ = s.write_all(&msg[..sent]);
                let mut back = vec![0u8; rng.range(0, sent.min(1024))];
                let _ = s.read_exact(&mut back);
            }
            // Send much more than is read, reset while the echo is being written.
            _ => {
                let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                let _ = s.write_all(&msg);
            }
        }
        if rng.chance(70) {
            set_reset_on_close(&s);
        }
        drop(s);
        ctx.stats.ok(KIND, t.elapsed(), 1);
    }
}
