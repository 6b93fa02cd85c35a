//! The load generator of the echo benchmark, the same for every server: N connections,
//! each a 64-byte ping-pong (send 64 bytes, wait for the 64 back, repeat).
//!
//! ```sh
//! echo_load --addr 127.0.0.1:PORT --connections 64 --duration-ms 3000
//! echo_load --addr 127.0.0.1:PORT --connections 10000 --idle   # memory per idle connection
//! ```
//!
//! It runs on a tokio `current_thread` runtime (one core: the server gets the other),
//! one task per connection. It connects at most `--connect-parallel` connections at a
//! time, and each new connection makes one round trip before it counts as connected, so
//! the server has accepted every connection before the load starts.
//!
//! It talks to its driver (`echo`) in JSON lines on stdout:
//!
//! - `{"kind": "connected", "connections": N}`: all connected (with `--wait-go`, it then
//!   waits for a line on stdin before sending load);
//! - `{"kind": "start"}`: the warm-up is over; round trips are counted from now;
//! - `{"kind": "result", "round_trips": …, "round_trips_total": …, "seconds": …, "rps": …,
//!   "p50_us": …, …}`: the load has stopped. `round_trips` (and `rps`, and the latencies)
//!   are those that ended within the measured `seconds`; `round_trips_total` adds the last
//!   round trip of each connection, in flight when the time was up, so it counts all the
//!   server served between `start` and `result`. With `--wait-go` the connections then
//!   stay open until a line arrives on stdin (or it closes), so closing them is not
//!   counted either;
//! - with `--idle`, `{"kind": "idle_ready", "connections": N}`, then it keeps the
//!   connections open, idle, until stdin closes (or a line arrives).

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const USAGE: &str = "\
usage: echo_load --addr IP:PORT [options]

  --connections N        connections (default 64)
  --size B               bytes per ping (default 64)
  --duration-ms MS       measured time (default 3000)
  --warmup-ms MS         load before counting starts (default 500)
  --connect-parallel K   connects in flight at once (default 32)
  --wait-go              after connecting, wait for a line on stdin before the load;
                         after the result, wait for another before closing
  --idle                 connect, print idle_ready, hold the connections until stdin closes
Prints JSON lines (connected, start, result / idle_ready).";

struct Args {
    addr: SocketAddr,
    connections: usize,
    size: usize,
    duration: Duration,
    warmup: Duration,
    parallel: usize,
    wait_go: bool,
    idle: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut addr = None;
    let mut a = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        connections: 64,
        size: 64,
        duration: Duration::from_millis(3000),
        warmup: Duration::from_millis(500),
        parallel: 32,
        wait_go: false,
        idle: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or_else(|| format!("{name} needs a value"))?;
            v.parse().map_err(|e| format!("{name} {v}: {e}"))
        };
        match arg.as_str() {
            "--addr" => {
                let v = it.next().ok_or("--addr needs a value")?;
                addr = Some(v.parse().map_err(|e| format!("--addr {v}: {e}"))?);
            }
            "--connections" => a.connections = num(&arg)? as usize,
            "--size" => a.size = num(&arg)? as usize,
            "--duration-ms" => a.duration = Duration::from_millis(num(&arg)?),
            "--warmup-ms" => a.warmup = Duration::from_millis(num(&arg)?),
            "--connect-parallel" => a.parallel = (num(&arg)? as usize).max(1),
            "--wait-go" => a.wait_go = true,
            "--idle" => a.idle = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    a.addr = addr.ok_or("--addr is required")?;
    if a.size == 0 {
        return Err("--size must be at least 1".into());
    }
    Ok(a)
}

/// One round trip: send `ping`, read as many bytes back.
async fn round_trip(s: &mut TcpStream, ping: &[u8], buf: &mut [u8]) -> std::io::Result<()> {
    s.write_all(ping).await?;
    s.read_exact(buf).await?;
    Ok(())
}

/// Connects `n` connections, `parallel` at a time, each making one round trip.
async fn connect_all(args: &Args) -> std::io::Result<Vec<TcpStream>> {
    let ping = vec![b'x'; args.size];
    let mut streams = Vec::with_capacity(args.connections);
    let mut pending = tokio::task::JoinSet::new();
    let mut started = 0;
    while streams.len() < args.connections {
        while started < args.connections && pending.len() < args.parallel {
            let (addr, ping) = (args.addr, ping.clone());
            pending.spawn(async move {
                let mut s = TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                let mut buf = vec![0; ping.len()];
                round_trip(&mut s, &ping, &mut buf).await?;
                Ok::<_, std::io::Error>(s)
            });
            started += 1;
        }
        match pending.join_next().await {
            Some(r) => streams.push(r.map_err(std::io::Error::other)??),
            None => break,
        }
    }
    Ok(streams)
}

/// The phases every connection task watches.
const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// Ping-pongs until [`STOP`]. Returns the stream (kept open until the driver is done, so
/// that closing it is not counted), the latencies (ns) of the round trips that ended while
/// [`MEASURE`] was on, and the number of round trips that ended after it (the last one,
/// in flight when the load stopped).
async fn ping_pong(
    mut s: TcpStream,
    size: usize,
    phase: Arc<AtomicU8>,
) -> std::io::Result<(TcpStream, Vec<u32>, u64)> {
    let ping = vec![b'x'; size];
    let mut buf = vec![0; size];
    let mut lat = Vec::new();
    loop {
        let t0 = Instant::now();
        round_trip(&mut s, &ping, &mut buf).await?;
        match phase.load(Ordering::Relaxed) {
            MEASURE => lat.push(t0.elapsed().as_nanos().min(u32::MAX as u128) as u32),
            STOP => return Ok((s, lat, 1)),
            _ => {}
        }
    }
}

/// This process's CPU time (user + system), in clock ticks.
fn own_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn wait_stdin_line() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

async fn run(args: Args) -> std::io::Result<()> {
    let streams = connect_all(&args).await?;
    if args.idle {
        println!(
            "{{\"kind\": \"idle_ready\", \"connections\": {}}}",
            streams.len()
        );
        wait_stdin_line();
        drop(streams);
        return Ok(());
    }
    println!(
        "{{\"kind\": \"connected\", \"connections\": {}}}",
        streams.len()
    );
    if args.wait_go {
        wait_stdin_line();
    }
    // Without a warm-up, every round trip counts, the first ones included.
    let first = if args.warmup.is_zero() {
        MEASURE
    } else {
        WARMUP
    };
    let phase = Arc::new(AtomicU8::new(first));
    let mut tasks = tokio::task::JoinSet::new();
    for s in streams {
        tasks.spawn(ping_pong(s, args.size, phase.clone()));
    }
    if !args.warmup.is_zero() {
        tokio::time::sleep(args.warmup).await;
        phase.store(MEASURE, Ordering::Relaxed);
    }
    let cpu0 = own_cpu_ticks();
    let t0 = Instant::now();
    println!("{{\"kind\": \"start\"}}");
    tokio::time::sleep(args.duration).await;
    phase.store(STOP, Ordering::Relaxed);
    let seconds = t0.elapsed().as_secs_f64();
    let cpu1 = own_cpu_ticks();
    let mut lat = Vec::new();
    let mut tail = 0;
    let mut open = Vec::with_capacity(args.connections);
    while let Some(r) = tasks.join_next().await {
        let (s, l, t) = r.map_err(std::io::Error::other)??;
        lat.extend(l);
        tail += t;
        open.push(s);
    }
    lat.sort_unstable();
    let n = lat.len() as f64;
    // Clock ticks are 10 ms (USER_HZ 100 on Linux).
    let client_cpu_s = match (cpu0, cpu1) {
        (Some(a), Some(b)) => (b - a) as f64 / 100.0,
        _ => f64::NAN,
    };
    println!(
        "{{\"kind\": \"result\", \"connections\": {}, \"round_trips\": {}, \
         \"round_trips_total\": {}, \"seconds\": {:.4}, \
         \"rps\": {:.1}, \"p50_us\": {:.1}, \"p90_us\": {:.1}, \"p99_us\": {:.1}, \
         \"p999_us\": {:.1}, \"max_us\": {:.1}, \"client_cpu_s\": {:.3}}}",
        args.connections,
        lat.len(),
        lat.len() as u64 + tail,
        seconds,
        n / seconds,
        percentile(&lat, 0.50),
        percentile(&lat, 0.90),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        percentile(&lat, 1.0),
        client_cpu_s,
    );
    if args.wait_go {
        // The driver stops counting before the connections close.
        wait_stdin_line();
    }
    drop(open);
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("echo_load: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("echo_load: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!(
                "{{\"kind\": \"error\", \"error\": \"{}\"}}",
                e.to_string().replace('"', "'")
            );
            eprintln!("echo_load: {e}");
            ExitCode::FAILURE
        }
    }
}
