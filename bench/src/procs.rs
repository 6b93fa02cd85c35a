//! Server processes for the network benchmarks: started from a command, ready when they
//! print `listening on IP:PORT`, stopped with SIGTERM; their CPU time read from `/proc`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process that printed `listening on IP:PORT`; stopped (SIGTERM, then SIGKILL
/// after 3 s) when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// The `IP:PORT` it listens on.
    pub addr: String,
    // Kept open so the server never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts `cmd` (with `--port 0` added) and waits for its `listening on` line.
    ///
    /// # Errors
    ///
    /// A message if it cannot start or prints something else first.
    pub fn start(name: &str, mut cmd: Command) -> Result<Server, String> {
        cmd.args(["--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let status = child.wait().map_err(|e| e.to_string())?;
            return Err(format!("{name} did not start ({status})"));
        };
        Ok(Server {
            addr: addr.to_string(),
            child,
            _stdout: out,
        })
    }

    /// Starts server `name`: `twisted` runs the Python script `twisted` (with the peer
    /// interpreter), anything else is an `--impl` of our server binary `server`.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn start_named(name: &str, server: &Path, twisted: &Path) -> Result<Server, String> {
        let cmd = match name {
            "twisted" => {
                let mut c = Command::new(crate::peer::python());
                c.arg(twisted);
                c
            }
            imp => {
                let mut c = Command::new(server);
                c.args(["--impl", imp]);
                c
            }
        };
        Server::start(name, cmd)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a child's pid; no memory is involved.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// utime + stime of a process (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_split(pid).map(|(user, sys)| user + sys)
}

/// The paths of `bins`, built next to the running driver (`target/release/`); `None`, after
/// a message naming the missing one and `script` (which builds them), if one is not there.
pub fn sibling_bins<const N: usize>(
    driver: &str,
    script: &str,
    bins: [&str; N],
) -> Option<[std::path::PathBuf; N]> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let paths = bins.map(|b| dir.join(b));
    for p in &paths {
        if !p.exists() {
            eprintln!(
                "{driver}: {} is missing: run `cargo build --release --bins` in bench/ (or \
                 ./{script})",
                p.display()
            );
            return None;
        }
    }
    Some(paths)
}

/// A server's memory for `n` idle connections: its VmRSS before they were opened and
/// while they are held, and the growth per connection.
#[derive(Debug, Clone, Copy)]
pub struct IdleMemory {
    /// VmRSS before the connections, KiB.
    pub before_kib: u64,
    /// VmRSS while they are held, KiB.
    pub after_kib: u64,
    /// (after − before) / n, in bytes.
    pub per_conn: f64,
}

impl IdleMemory {
    /// From the two VmRSS readings around `n` idle connections.
    pub fn new(before_kib: u64, after_kib: u64, n: usize) -> IdleMemory {
        IdleMemory {
            before_kib,
            after_kib,
            per_conn: (after_kib as f64 - before_kib as f64) * 1024.0 / n.max(1) as f64,
        }
    }
}

/// The table of memory per idle connection: a row for each server of `order` that has a
/// reading in `mem` (`n` connections each), with its growth per connection against
/// `peer`'s.
pub fn idle_memory_table(
    mem: &std::collections::BTreeMap<String, IdleMemory>,
    order: &[String],
    n: usize,
    peer: &str,
) -> crate::report::Table {
    use crate::report;
    let base = mem.get(peer).map(|m| m.per_conn);
    let mut t = report::Table::new([
        "server".to_string(),
        "idle connections".to_string(),
        "VmRSS before KiB".to_string(),
        "VmRSS after KiB".to_string(),
        "bytes per connection".to_string(),
        format!("vs {peer}"),
    ]);
    for name in order {
        let Some(x) = mem.get(name) else { continue };
        t.row([
            name.clone(),
            report::group(n as u64),
            report::group(x.before_kib),
            report::group(x.after_kib),
            report::group(x.per_conn.max(0.0).round() as u64),
            match base {
                Some(b) if b > 0.0 => report::ratio2(x.per_conn / b),
                _ => "-".into(),
            },
        ]);
    }
    t
}

/// VmRSS of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime and stime of a process (all its threads), in seconds: the time it ran its own
/// code and the time the kernel ran on its behalf.
pub fn cpu_split(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let user = f.get(11)?.parse::<u64>().ok()?;
    let sys = f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((user as f64 / hz, sys as f64 / hz))
}

/// The machine's `ListenOverflows` and `ListenDrops` counters (`TcpExt` in
/// `/proc/net/netstat`): handshakes the kernel dropped because a listening socket's accept
/// queue was full. A client whose handshake was dropped waits for the kernel's
/// retransmissions (1 s, 3 s, 7 s, ...) before the server ever sees it, so a delta across a
/// run tells a "hang" of the machine from one of the server. `None` off Linux.
pub fn listen_overflows() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let field = |want: &str| {
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == want)
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    Some((field("ListenOverflows")?, field("ListenDrops")?))
}

/// CPU seconds (user + system) used so far by this process's reaped children: read it
/// before and after running a child to completion, and the difference is that child's.
pub fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage struct.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return f64::NAN;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// Whether `perf stat` can count syscall tracepoints here.
pub fn perf_works() -> bool {
    Command::new("perf")
        .args(["stat", "-e", "raw_syscalls:sys_enter", "-x,", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A way to run one benchmark server on an address, until killed.
pub type ServeFn = fn(std::net::SocketAddr) -> Result<(), Box<dyn std::error::Error>>;

/// The `main` of a benchmark server binary (`echo_server`, `http_server`): parses
/// `--impl NAME --port P --host IP`, runs the implementation of that name (the first is
/// the default) and gives the exit code: 2 for a bad command line, 1 if the server fails.
pub fn serve_main(name: &str, usage: &str, impls: &[(&str, ServeFn)]) -> std::process::ExitCode {
    serve_main_with(name, usage, impls, &mut |_, _| Ok(false))
}

/// As [`serve_main`], with more `--flag VALUE` options: `extra(flag, value)` is called for
/// a flag `serve_main` does not know, with the flag's value; it returns `Ok(true)` if it
/// took the flag, `Ok(false)` if it does not know it either.
pub fn serve_main_with(
    name: &str,
    usage: &str,
    impls: &[(&str, ServeFn)],
    extra: &mut dyn FnMut(&str, String) -> Result<bool, String>,
) -> std::process::ExitCode {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::process::ExitCode;

    let mut imp = impls[0].0.to_string();
    let mut port = 0u16;
    let mut host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        let parsed: Result<(), String> = match a.as_str() {
            "--impl" => value().map(|v| imp = v),
            "--port" => value().and_then(|v| {
                port = v.parse().map_err(|e| format!("--port {v}: {e}"))?;
                Ok(())
            }),
            "--host" => value().and_then(|v| {
                host = v.parse().map_err(|e| format!("--host {v}: {e}"))?;
                Ok(())
            }),
            "-h" | "--help" => {
                println!("{usage}");
                return ExitCode::SUCCESS;
            }
            other => match value().and_then(|v| extra(other, v)) {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!("unknown argument {other}")),
                Err(e) => Err(e),
            },
        };
        if let Err(e) = parsed {
            eprintln!("{name}: {e}\n{usage}");
            return ExitCode::from(2);
        }
    }
    let Some(&(_, serve)) = impls.iter().find(|(n, _)| *n == imp) else {
        let names: Vec<&str> = impls.iter().map(|(n, _)| *n).collect();
        eprintln!("{name}: unknown --impl {imp} ({})", names.join(" or "));
        return ExitCode::from(2);
    };
    match serve(SocketAddr::new(host, port)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name} ({imp}): {e}");
            ExitCode::FAILURE
        }
    }
}
