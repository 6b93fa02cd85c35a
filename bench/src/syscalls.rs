//! Counting a server's system calls with `perf stat` on the syscall tracepoints: the
//! arguments to give perf, the parsing of its CSV output, and the counts per operation
//! (round trip or request) that the echo and HTTP drivers report.

use std::collections::BTreeMap;
use std::path::Path;

/// The syscalls counted one by one; the rest are counted together as "other".
pub const PERF_SYSCALLS: &[&str] = &[
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_ctl",
    "recvfrom",
    "sendto",
    "read",
    "write",
    "readv",
    "writev",
    "recvmsg",
    "sendmsg",
    "timerfd_settime",
    "accept4",
    "close",
    "futex",
];

/// Failed calls (ret < 0: EAGAIN, mostly) counted too, as `NAME!fail`.
pub const PERF_FAILS: &[&str] = &["recvfrom", "read"];

/// System calls of one short run: calls by name (a `!fail` suffix counts failures), the
/// total, and the operations (round trips, requests) they served.
#[derive(Debug, Clone, Default)]
pub struct Syscalls {
    /// Calls by name.
    pub calls: BTreeMap<String, f64>,
    /// Every system call.
    pub total: f64,
    /// The operations served meanwhile.
    pub served: f64,
    /// What counted them (`perf`, `strace`).
    pub tool: &'static str,
}

impl Syscalls {
    /// Calls of `name` per operation.
    pub fn per_op(&self, name: &str) -> f64 {
        self.calls.get(name).copied().unwrap_or(0.0) / self.served
    }

    /// All calls per operation.
    pub fn total_per_op(&self) -> f64 {
        self.total / self.served
    }

    /// `epoll_wait`s (any variant) per operation.
    pub fn waits_per_op(&self) -> f64 {
        self.per_op("epoll_wait") + self.per_op("epoll_pwait") + self.per_op("epoll_pwait2")
    }
}

/// The headers of a "where the syscalls go" table after its key columns: the total per
/// `op` (`"rt"`, `"req"`), `epoll_wait`, each of `calls` (a `NAME!fail` entry, the
/// failed calls of the one before it, is headed `  EAGAIN`), the rest, and `op`s per wait.
pub fn breakdown_headers(op: &str, calls: &[&str]) -> Vec<String> {
    let mut h = vec![format!("syscalls/{op}"), "epoll_wait".to_string()];
    h.extend(calls.iter().map(|c| {
        if c.ends_with("!fail") {
            "  EAGAIN".to_string()
        } else {
            c.to_string()
        }
    }));
    h.push("other".into());
    h.push(format!("{op} per wait"));
    h
}

/// The cells of `s` under [`breakdown_headers`] for the same `calls`.
pub fn breakdown_row(s: &Syscalls, calls: &[&str]) -> Vec<String> {
    let listed = s.waits_per_op()
        + calls
            .iter()
            .filter(|c| !c.ends_with("!fail"))
            .map(|c| s.per_op(c))
            .sum::<f64>();
    let mut row = vec![
        crate::report::num(s.total_per_op(), 3),
        crate::report::num(s.waits_per_op(), 3),
    ];
    row.extend(calls.iter().map(|c| crate::report::num(s.per_op(c), 3)));
    row.push(crate::report::num((s.total_per_op() - listed).max(0.0), 3));
    row.push(crate::report::num(1.0 / s.waits_per_op(), 1));
    row
}

/// `perf stat` arguments that count the syscalls of process `pid` into `out` (CSV).
pub fn perf_args(pid: u32, out: &Path) -> Vec<String> {
    let mut a = vec![
        "stat".to_string(),
        "-x,".into(),
        "-o".into(),
        out.display().to_string(),
        "-p".into(),
        pid.to_string(),
        "-e".into(),
        "raw_syscalls:sys_enter".into(),
    ];
    for s in PERF_SYSCALLS {
        a.push("-e".into());
        a.push(format!("syscalls:sys_enter_{s}"));
    }
    for s in PERF_FAILS {
        a.push("-e".into());
        a.push(format!("syscalls:sys_exit_{s}"));
        a.push("--filter".into());
        a.push("ret < 0".into());
    }
    a
}

/// Reads what [`perf_args`] made perf write (`served` is left for the caller).
pub fn parse_perf(text: &str) -> Syscalls {
    let mut s = Syscalls {
        tool: "perf",
        ..Syscalls::default()
    };
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 3 {
            continue;
        }
        let Ok(v) = f[0].parse::<f64>() else { continue };
        if f[2] == "raw_syscalls:sys_enter" {
            s.total = v;
        } else if let Some(n) = f[2].strip_prefix("syscalls:sys_enter_") {
            s.calls.insert(n.to_string(), v);
        } else if let Some(n) = f[2].strip_prefix("syscalls:sys_exit_") {
            s.calls.insert(format!("{n}!fail"), v);
        }
    }
    s
}
