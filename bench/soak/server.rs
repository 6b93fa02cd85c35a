//! The server under test as a process: starting it and finding its port, sampling its
//! RSS, descriptors and CPU from `/proc`, and the final check that it still answers.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ropewalk_bench::procs;

use crate::options::ServerKind;
use crate::response::{show, HttpConn};
use crate::OP_BOUND;

pub(crate) struct ServerProc {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    // Kept open so the server never writes into a closed pipe.
    pub(crate) _stdout: std::io::BufReader<std::process::ChildStdout>,
}

pub(crate) fn start_server(
    bin: &PathBuf,
    args: &[String],
    log: &PathBuf,
) -> Result<ServerProc, String> {
    use std::io::BufRead;
    let log = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut child = Command::new(bin)
        .args(["--port", "0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let mut out = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    let _ = out.read_line(&mut line);
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok());
    let Some(addr) = addr else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "{} printed {line:?}, not `listening on IP:PORT`",
            bin.display()
        ));
    };
    Ok(ServerProc {
        child,
        addr,
        _stdout: out,
    })
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) t: f64,
    pub(crate) rss_kib: u64,
    pub(crate) fds: usize,
    pub(crate) sockets: usize,
    pub(crate) cpu_user: f64,
    pub(crate) cpu_sys: f64,
}

pub(crate) fn sample(pid: u32, start: Instant) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    let mut fds = 0;
    let mut sockets = 0;
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        fds += 1;
        if std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:")) {
            sockets += 1;
        }
    }
    let (cpu_user, cpu_sys) = procs::cpu_split(pid)?;
    Some(Sample {
        t: start.elapsed().as_secs_f64(),
        rss_kib,
        fds,
        sockets,
        cpu_user,
        cpu_sys,
    })
}

/// What the server's descriptors point to, counted by kind (`socket`, `anon_inode:[…]`,
/// a path's directory…).
pub(crate) fn fd_kinds(pid: u32) -> String {
    let mut kinds = BTreeMap::<String, usize>::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in dir.flatten() {
            let target = std::fs::read_link(e.path())
                .map(|l| l.to_string_lossy().to_string())
                .unwrap_or_else(|_| "?".into());
            let kind = match target.split_once(':') {
                Some((k, rest)) if !target.starts_with('/') && !k.starts_with("anon_inode") => {
                    let _ = rest;
                    k.to_string()
                }
                _ => target,
            };
            *kinds.entry(kind).or_default() += 1;
        }
    }
    kinds
        .iter()
        .map(|(k, n)| format!("{n}× {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A final request, on a new connection: the server still answers.
pub(crate) fn final_check(addr: SocketAddr, server: ServerKind) -> Result<(), String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(OP_BOUND))
        .map_err(|e| e.to_string())?;
    match server {
        ServerKind::Http => {
            let mut c = HttpConn::new(s);
            c.s.write_all(b"GET / HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
                .map_err(|e| e.to_string())?;
            let r = c.response(false).map_err(|e| e.to_string())?;
            if r.status != 200 || r.body != b"Hello, World!\n" {
                return Err(format!("status {}, body {:?}", r.status, show(&r.body)));
            }
            c.expect_close()
        }
        ServerKind::Echo => {
            let mut s = s;
            s.write_all(b"still there?").map_err(|e| e.to_string())?;
            let mut back = [0u8; 12];
            s.read_exact(&mut back).map_err(|e| e.to_string())?;
            if &back != b"still there?" {
                return Err(format!("echo {:?}", String::from_utf8_lossy(&back)));
            }
            Ok(())
        }
    }
}

pub(crate) fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

pub(crate) fn mean(xs: &[Sample]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.iter().map(|s| s.rss_kib as f64).sum::<f64>() / xs.len() as f64
}
