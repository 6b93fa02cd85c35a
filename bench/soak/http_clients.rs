//! The client kinds run against the `http_server` example: keep-alive, pipelined,
//! malformed (the shared malformed-request table), mutated, slowloris, abrupt and
//! non-reading clients. Each loops until the context says stop.

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use ropewalk_testkit::malformed::{over_limits, Limits, MalformedRequest, MALFORMED, SMUGGLED};

use crate::context::{is_timeout, set_reset_on_close, Ctx};
use crate::options::ServerKind;
use crate::requests::{check, http_request, mutate, Files, Req, Rng};
use crate::response::{show, HttpConn, ReadErr};
use crate::{MARGIN, OP_BOUND, REQUEST_TIMEOUT};

pub(crate) fn http_keepalive(ctx: &Ctx, rng: &mut Rng, files: &Files) {
    const KIND: &str = "keepalive";
    while !ctx.stopped() {
        let Some(s) = ctx.connect_or_fail(KIND, OP_BOUND + MARGIN) else {
            continue;
        };
        let mut c = HttpConn::new(s);
        for _ in 0..rng.range(1, 200) {
            if ctx.stopped() {
                break;
            }
            let req = http_request(rng, ctx, files, false);
            let t = Instant::now();
            if let Err(e) = c.s.write_all(&req.bytes) {
                ctx.stats.fail(KIND, "write", format!("{}: {e}", req.label));
                break;
            }
            match c.response(req.head_only) {
                Ok(resp) => match check(&req, &resp) {
                    Ok(()) if resp.closes() => {
                        ctx.stats
                            .fail(KIND, "closed a keep-alive connection", req.label.into());
                        break;
                    }
                    Ok(()) => ctx.stats.ok(KIND, t.elapsed(), 1),
                    Err(e) => {
                        ctx.stats.fail(KIND, "wrong answer", e);
                        break;
                    }
                },
                Err(ReadErr::Timeout(n)) => {
                    ctx.stats.fail(
                        KIND,
                        "hang",
                        format!("{}: {n} bytes in {:?}", req.label, t.elapsed()),
                    );
                    break;
                }
                Err(e) => {
                    ctx.stats
                        .fail(KIND, "bad response", format!("{}: {e}", req.label));
                    break;
                }
            }
        }
    }
}

pub(crate) fn http_pipeline(ctx: &Ctx, rng: &mut Rng, files: &Files) {
    const KIND: &str = "pipeline";
    while !ctx.stopped() {
        let Some(s) = ctx.connect_or_fail(KIND, OP_BOUND + MARGIN) else {
            continue;
        };
        let mut c = HttpConn::new(s);
        'conn: for _ in 0..rng.range(1, 50) {
            if ctx.stopped() {
                break;
            }
            let reqs: Vec<Req> = (0..16)
                .map(|_| http_request(rng, ctx, files, true))
                .collect();
            let burst: Vec<u8> = reqs.iter().flat_map(|r| r.bytes.iter().copied()).collect();
            let t = Instant::now();
            if let Err(e) = c.s.write_all(&burst) {
                ctx.stats.fail(KIND, "write", e.to_string());
                break;
            }
            for (i, req) in reqs.iter().enumerate() {
                match c.response(req.head_only) {
                    Ok(resp) => {
                        if let Err(e) = check(req, &resp) {
                            ctx.stats.fail(
                                KIND,
                                "wrong or out-of-order answer",
                                format!("#{i}: {e}"),
                            );
                            break 'conn;
                        }
                    }
                    Err(e) => {
                        let what = if matches!(e, ReadErr::Timeout(_)) {
                            "hang"
                        } else {
                            "missing response"
                        };
                        ctx.stats
                            .fail(KIND, what, format!("#{i} of 16 ({}): {e}", req.label));
                        break 'conn;
                    }
                }
            }
            ctx.stats.ok(KIND, t.elapsed(), 16);
        }
    }
}

pub(crate) fn http_malformed(ctx: &Ctx, rng: &mut Rng) {
    const KIND: &str = "malformed";
    // The rows of the protocols test, past the server's default limits here.
    let rows: Vec<MalformedRequest> = MALFORMED
        .iter()
        .cloned()
        .chain(over_limits(&Limits::DEFAULT))
        .collect();
    while !ctx.stopped() {
        let row = &rows[rng.below(rows.len())];
        let (name, request, status) = (row.name, &row.request[..], row.status);
        let t = Instant::now();
        let Some(s) = ctx.connect_or_fail(KIND, OP_BOUND) else {
            continue;
        };
        let mut c = HttpConn::new(s);
        // Sometimes behind a valid request on the same connection.
        let first = rng.chance(30);
        let mut input = Vec::new();
        if first {
            input.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        }
        input.extend_from_slice(request);
        input.extend_from_slice(SMUGGLED);
        // The server may close before it read all of a big request: a reset is fine.
        let _ = c.s.write_all(&input);
        let result = (|| -> Result<(), (&'static str, String)> {
            if first {
                let r = c
                    .response(false)
                    .map_err(|e| ("bad response", format!("{name}: first request: {e}")))?;
                if r.status != 200 {
                    return Err((
                        "wrong answer",
                        format!("{name}: first request got {}", r.status),
                    ));
                }
            }
            let r = c.response(false).map_err(|e| match e {
                ReadErr::Timeout(_) => ("hang", format!("{name}: {e}")),
                _ => ("bad response", format!("{name}: {e}")),
            })?;
            if r.status != status {
                return Err((
                    "wrong status",
                    format!("{name}: {} (want {status})", r.status),
                ));
            }
            if !r.closes() {
                return Err(("no Connection: close", name.to_string()));
            }
            c.expect_close()
                .map_err(|e| ("not closed (smuggling?)", format!("{name}: {e}")))
        })();
        match result {
            Ok(()) => ctx.stats.ok(KIND, t.elapsed(), 1 + u64::from(first)),
            Err((what, detail)) => ctx.stats.fail(KIND, what, detail),
        }
    }
}

pub(crate) fn http_mutated(ctx: &Ctx, rng: &mut Rng) {
    const KIND: &str = "mutated";
    // /delay waits at most 10 s (the example's limit) whatever the mutation.
    let bound = Duration::from_secs(10) + OP_BOUND;
    let bases: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n",
        b"GET /delay?ms=5 HTTP/1.1\r\nHost: soak\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: soak\r\nAccept: */*\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\nHost: soak\r\n\r\n",
    ];
    while !ctx.stopped() {
        let mut input = bases[rng.below(bases.len())].to_vec();
        mutate(rng, &mut input);
        let t = Instant::now();
        let Some(s) = ctx.connect_or_fail(KIND, bound) else {
            continue;
        };
        let mut c = HttpConn::new(s);
        let _ = c.s.write_all(&input);
        // No more requests: the server answers what it read, then closes.
        let _ = c.s.shutdown(Shutdown::Write);
        let mut answers = 0;
        let outcome = loop {
            // No HEAD in the inputs: a HEAD made by a mutation that the server rejects gets
            // a body, one it accepts none, and the reader cannot tell them apart.
            match c.response(false) {
                Ok(_) => answers += 1,
                Err(ReadErr::Closed) => break Ok(()),
                Err(ReadErr::Timeout(n)) => {
                    break Err((
                        "hang",
                        format!(
                            "{n} bytes after {:?}; input {:?}",
                            t.elapsed(),
                            show(&input)
                        ),
                    ))
                }
                // A reset after the server rejected a request it had not read whole.
                Err(ReadErr::Cut(e)) if c.buf.is_empty() && answers > 0 => {
                    let _ = e;
                    break Ok(());
                }
                Err(e) => {
                    break Err(("malformed answer", format!("{e}; input {:?}", show(&input))))
                }
            }
        };
        match outcome {
            Ok(()) => ctx.stats.ok(KIND, t.elapsed(), answers),
            Err((what, detail)) => ctx.stats.fail(KIND, what, detail),
        }
    }
}

pub(crate) fn http_slowloris(ctx: &Ctx, rng: &mut Rng) {
    const KIND: &str = "slowloris";
    let bound = REQUEST_TIMEOUT + MARGIN;
    // Spread the starts.
    ctx.nap(Duration::from_millis(rng.range(0, 3000) as u64));
    while !ctx.stopped() {
        // Only start what can end before the load does.
        if Instant::now() + bound > ctx.load_end {
            ctx.nap(Duration::from_secs(3600));
            break;
        }
        let Some(s) = ctx.connect_or_fail(KIND, ctx.opts.slow_interval + MARGIN) else {
            continue;
        };
        let mut c = HttpConn::new(s);
        let head = b"GET / HTTP/1.1\r\nHost: soak\r\nX-Slow: ";
        let t = Instant::now();
        let mut sent = 0usize;
        let mut closed_at = None;
        // One byte per interval, until the server answers or closes.
        while t.elapsed() < bound {
            let byte = if sent < head.len() { head[sent] } else { b'a' };
            if c.s.write_all(&[byte]).is_err() {
                closed_at = Some(t.elapsed());
                break;
            }
            sent += 1;
            let _ = c.s.set_read_timeout(Some(ctx.opts.slow_interval));
            match c.fill() {
                Ok(_) => {
                    closed_at = Some(t.elapsed());
                    break;
                }
                Err(e) if is_timeout(&e) => {}
                Err(_) => {
                    closed_at = Some(t.elapsed());
                    break;
                }
            }
        }
        let Some(at) = closed_at else {
            ctx.stats.fail(
                KIND,
                "hang",
                format!("still open after {bound:?} ({sent} bytes sent)"),
            );
            continue;
        };
        if at + Duration::from_secs(1) < REQUEST_TIMEOUT {
            ctx.stats.fail(
                KIND,
                "closed before the request timeout",
                format!("after {at:?}"),
            );
            continue;
        }
        let _ = c.s.set_read_timeout(Some(MARGIN));
        if c.buf.is_empty() {
            ctx.stats
                .fail(KIND, "closed without a 408", format!("after {at:?}"));
            continue;
        }
        match c.response(false) {
            Ok(r) if r.status == 408 && r.closes() => match c.expect_close() {
                Ok(()) => ctx.stats.ok(KIND, t.elapsed(), 1),
                Err(e) => ctx.stats.fail(KIND, "not closed after 408", e),
            },
            Ok(r) => ctx.stats.fail(
                KIND,
                "wrong answer",
                format!("status {} after {at:?}", r.status),
            ),
            Err(e) => ctx.stats.fail(KIND, "bad response", e.to_string()),
        }
    }
}

pub(crate) fn http_abrupt(ctx: &Ctx, rng: &mut Rng, files: &Files) {
    const KIND: &str = "abrupt";
    while !ctx.stopped() {
        let t = Instant::now();
        let Some(s) = ctx.connect_or_fail(KIND, OP_BOUND) else {
            continue;
        };
        let mut c = HttpConn::new(s);
        let variant = rng.below(5);
        let result: Result<(), (&str, String)> = match variant {
            // Half a request, then close (or reset).
            0 => {
                let req = http_request(rng, ctx, files, false).bytes;
                let cut = rng.below(req.len());
                let _ = c.s.write_all(&req[..cut]);
                if rng.chance(50) {
                    set_reset_on_close(&c.s);
                }
                Ok(())
            }
            // Reset in the middle of a big response.
            1 => {
                let _ =
                    c.s.write_all(b"GET /static/big.bin HTTP/1.1\r\nHost: soak\r\n\r\n");
                let want = rng.range(1, 512 * 1024);
                while c.buf.len() < want {
                    match c.fill() {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                set_reset_on_close(&c.s);
                Ok(())
            }
            // Requests whose answers are pending (timer, worker thread), then reset.
            2 => {
                let _ = c.s.write_all(
                    b"GET /delay?ms=200 HTTP/1.1\r\nHost: soak\r\n\r\nGET /thread?ms=20 HTTP/1.1\r\nHost: soak\r\n\r\n",
                );
                std::thread::sleep(Duration::from_millis(rng.range(0, 30) as u64));
                set_reset_on_close(&c.s);
                Ok(())
            }
            // Half-close after the request: the answer, then the close.
            3 => {
                let req = http_request(rng, ctx, files, false);
                let _ = c.s.write_all(&req.bytes);
                let _ = c.s.shutdown(Shutdown::Write);
                match c.response(req.head_only) {
                    Ok(r) => check(&req, &r)
                        .map_err(|e| ("wrong answer after half-close", e))
                        .and_then(|()| {
                            c.expect_close()
                                .map_err(|e| ("not closed after half-close", e))
                        }),
                    Err(e) => Err(("no answer after half-close", format!("{}: {e}", req.label))),
                }
            }
            // Pipelined, reset after reading part of the answers.
            _ => {
                let mut burst = Vec::new();
                for _ in 0..16 {
                    burst.extend_from_slice(&http_request(rng, ctx, files, true).bytes);
                }
                let _ = c.s.write_all(&burst);
                let want = rng.below(2048);
                while c.buf.len() < want {
                    match c.fill() {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                set_reset_on_close(&c.s);
                Ok(())
            }
        };
        drop(c);
        match result {
            Ok(()) => ctx.stats.ok(KIND, t.elapsed(), 1),
            Err((what, detail)) => ctx.stats.fail(KIND, what, detail),
        }
    }
}

/// Sends requests (or echo bytes) and never reads; holds the connection a while, then
/// closes it. The server's memory must stay bounded meanwhile (the sampler checks).
pub(crate) fn nonreader(ctx: &Ctx, rng: &mut Rng) {
    const KIND: &str = "nonreader";
    while !ctx.stopped() {
        let t = Instant::now();
        let Some(s) = ctx.connect_or_fail(KIND, Duration::from_secs(1)) else {
            continue;
        };
        let chunk: Vec<u8> = match ctx.opts.server {
            ServerKind::Http => {
                let one: &[u8] = if rng.chance(20) {
                    b"GET /static/big.bin HTTP/1.1\r\nHost: soak\r\n\r\n"
                } else {
                    b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n"
                };
                one.repeat(64 * 1024 / one.len())
            }
            ServerKind::Echo => rng.bytes(64 * 1024),
        };
        let mut sent = 0usize;
        let mut blocked = false;
        let mut broken = false;
        while sent < ctx.opts.nonreader_bytes && !ctx.stopped() {
            match (&s).write(&chunk) {
                Ok(0) => break,
                Ok(n) if n < chunk.len() => {
                    // A short write: the server stopped reading. Finish it, or time out.
                    sent += n;
                    match (&s).write_all(&chunk[n..]) {
                        Ok(()) => sent += chunk.len() - n,
                        Err(e) if is_timeout(&e) => {
                            blocked = true;
                            break;
                        }
                        Err(_) => {
                            broken = true;
                            break;
                        }
                    }
                }
                Ok(n) => sent += n,
                Err(e) if is_timeout(&e) => {
                    blocked = true;
                    break;
                }
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        // A partial request was left behind: the server may answer it with a 408 later.
        ctx.stats.note(format!(
            "nonreader: {}",
            if blocked {
                "server stopped reading"
            } else if broken {
                "server closed"
            } else {
                "sent the whole amount"
            }
        ));
        ctx.nap(Duration::from_secs(rng.range(1, 4) as u64));
        if rng.chance(50) {
            set_reset_on_close(&s);
        }
        drop(s);
        ctx.stats
            .ok(KIND, t.elapsed(), (sent / chunk.len().max(1)) as u64);
    }
}
