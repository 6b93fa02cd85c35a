//! Driving the echo load generator (`echo_load`) from a benchmark driver: start it
//! against a server, read its JSON lines, and measure one throughput run with the
//! server's CPU time over the measured window. Used by `echo` and `multicore`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use crate::peer::{self, Record, Value};
use crate::procs::{cpu_split, signal, Server};

/// A running `echo_load`, read line by line, killed if it outlives its deadline.
#[derive(Debug)]
pub struct Load {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Load {
    /// Starts the load generator at `load` against `addr` with `args`; it is killed if it
    /// still runs after `deadline`.
    ///
    /// # Errors
    ///
    /// A message if it cannot start.
    pub fn start(
        load: &Path,
        addr: &str,
        args: &[String],
        deadline: Duration,
    ) -> Result<Load, String> {
        let mut child = Command::new(load)
            .args(["--addr", addr])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", load.display()))?;
        let pid = child.id();
        // The watchdog: nothing here may hang longer than `deadline`.
        std::thread::spawn(move || {
            std::thread::sleep(deadline);
            if Path::new(&format!("/proc/{pid}")).exists() {
                eprintln!("the load generator ran past {deadline:?}: killing it");
                signal(pid, libc::SIGKILL);
            }
        });
        Ok(Load {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().expect("piped")),
            child,
        })
    }

    /// The next JSON line's record and its kind.
    ///
    /// # Errors
    ///
    /// A message if the generator stopped or reported an error.
    pub fn next_record(&mut self) -> Result<(String, Record), String> {
        loop {
            let mut line = String::new();
            match self.stdout.read_line(&mut line) {
                Ok(0) | Err(_) => return Err("the load generator stopped early".into()),
                Ok(_) => {}
            }
            if let Some(rec) = peer::parse_object(&line) {
                let kind = match rec.get("kind") {
                    Some(Value::Str(k)) => k.clone(),
                    _ => continue,
                };
                if kind == "error" {
                    return Err(format!("load generator: {}", str_of(&rec, "error")));
                }
                return Ok((kind, rec));
            }
        }
    }

    /// The next record, which must be of `kind`.
    ///
    /// # Errors
    ///
    /// As [`next_record`](Self::next_record), or if the record is of another kind.
    pub fn expect(&mut self, kind: &str) -> Result<Record, String> {
        let (k, rec) = self.next_record()?;
        if k == kind {
            Ok(rec)
        } else {
            Err(format!("expected {kind} from the load generator, got {k}"))
        }
    }

    /// Sends the `--wait-go` line.
    pub fn go(&mut self) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = s.write_all(b"go\n");
            let _ = s.flush();
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// A string field of a record (empty if missing).
pub fn str_of(rec: &Record, key: &str) -> String {
    rec.get(key).map_or_else(String::new, ToString::to_string)
}

/// A number field of a record (NaN if missing).
pub fn num_of(rec: &Record, key: &str) -> f64 {
    match rec.get(key) {
        Some(Value::Num(n)) => *n,
        _ => f64::NAN,
    }
}

/// One throughput measurement.
#[derive(Debug, Clone, Default)]
pub struct Throughput {
    /// Round trips per second (those that ended in the measured window).
    pub rps: f64,
    /// Median round-trip latency, µs.
    pub p50_us: f64,
    /// 99th-percentile round-trip latency, µs.
    pub p99_us: f64,
    /// Server CPU (user + system) per round trip over the measured window, µs.
    pub cpu_us_per_rt: f64,
    /// The part of it in user space, µs (the rest is the kernel's, on the server's behalf).
    pub user_us_per_rt: f64,
    /// The load generator's CPU per round trip, µs.
    pub client_cpu_us_per_rt: f64,
}

impl Throughput {
    /// Every figure NaN: a run that did not happen.
    pub fn missing() -> Throughput {
        Throughput {
            rps: f64::NAN,
            p50_us: f64::NAN,
            p99_us: f64::NAN,
            cpu_us_per_rt: f64::NAN,
            user_us_per_rt: f64::NAN,
            client_cpu_us_per_rt: f64::NAN,
        }
    }
}

/// One throughput run: `conns` connections of `echo_load` (at `load`) against `server`,
/// `warmup` of load, then `duration` measured; the server's CPU time is read from `/proc`
/// when the measured window starts and ends.
///
/// # Errors
///
/// A message if the load generator fails or the server's CPU time cannot be read.
pub fn throughput(
    load: &Path,
    server: &Server,
    conns: usize,
    duration: Duration,
    warmup: Duration,
) -> Result<Throughput, String> {
    let load_args = vec![
        "--connections".to_string(),
        conns.to_string(),
        "--duration-ms".into(),
        duration.as_millis().to_string(),
        "--warmup-ms".into(),
        warmup.as_millis().to_string(),
        "--wait-go".into(),
    ];
    let deadline = duration + warmup + Duration::from_secs(60);
    let mut gen = Load::start(load, &server.addr, &load_args, deadline)?;
    gen.expect("connected")?;
    gen.go();
    gen.expect("start")?;
    let (u0, s0) = cpu_split(server.pid()).ok_or("cannot read the server's CPU time")?;
    let rec = gen.expect("result")?;
    let (u1, s1) = cpu_split(server.pid()).ok_or("cannot read the server's CPU time")?;
    // Every round trip served between the two readings, the last in-flight ones included.
    let rts = num_of(&rec, "round_trips_total");
    Ok(Throughput {
        rps: num_of(&rec, "rps"),
        p50_us: num_of(&rec, "p50_us"),
        p99_us: num_of(&rec, "p99_us"),
        cpu_us_per_rt: (u1 + s1 - u0 - s0) * 1e6 / rts,
        user_us_per_rt: (u1 - u0) * 1e6 / rts,
        client_cpu_us_per_rt: num_of(&rec, "client_cpu_s") * 1e6 / rts,
    })
}
