//! The servers of the architecture experiment: one request/response protocol (16-byte
//! requests that carry their job, see `ropewalk_bench::jobs`) served by each multi-core
//! design of the article, and by tokio's.
//!
//! ```sh
//! architecture_server --impl shared --threads 2 --rounds-per-us 9.5 --port 0
//! ```
//!
//! | `--impl` | design | where a request's job runs |
//! |---|---|---|
//! | `one` | one reactor | inline, on the reactor |
//! | `own` | N reactors, each its own accept queue (`AcceptQueue::PerReactor`, `SO_REUSEPORT`) | inline, on the reactor that accepted the connection |
//! | `shared` | N reactors on one accept queue (`AcceptQueue::Shared`) | inline, on the reactor that accepted the connection |
//! | `dispatcher`, `dispatcher-ll` | N reactors, one of which accepts and hands each connection to a reactor's queue (`AcceptQueue::Dispatcher`, round-robin or least-loaded) | inline, on the reactor the connection was handed to |
//! | `two-stage` | one reactor for the I/O, an N-thread worker pool (`defer_to_thread`) for the jobs | on the pool, one job per connection at a time (replies in order) |
//! | `threads` | a thread per connection, blocking `std::net` | on the connection's thread |
//! | `pool` | a fixed pool of N blocking threads on one `epoll` set (`EPOLLONESHOT`): a free thread takes the next readable connection, reads one request, runs it, answers, re-arms the connection | on whichever thread took the request |
//! | `tokio-mt` | tokio's multi-thread runtime, N workers, a task per connection | inline, on the task's worker |
//!
//! A job spins [`ropewalk_bench::work::cpu_job`] (`--rounds-per-us` rounds per µs, which
//! the driver calibrates once so that every design gets the same work) or sleeps. The
//! reply is the request, stamped with the index of the worker that ran it. Each server
//! prints `listening on IP:PORT` once it accepts connections and serves until killed.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ropewalk_bench::jobs::{run_job, WIRE_LEN};
use ropewalk_bench::procs;

use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::{
    AcceptQueue, Address, Dispatch, GroupListener, PoolConfig, Protocol, Reactor, ReactorGroup,
    TransportRef,
};

const USAGE: &str = "\
usage: architecture_server [--impl NAME] [--threads N] [--rounds-per-us R] [--port P] [--host IP]

  --impl NAME          one (default), own, shared, dispatcher, dispatcher-ll, two-stage,
                       threads, pool, tokio-mt
  --threads N          reactors / pool threads / tokio workers (default 2)
  --rounds-per-us R    cpu_job rounds per µs of a spin job (default: timed at start)
  --port P             port to listen on; 0 (default) picks a free one
  --host IP            address to bind (default 127.0.0.1)
Prints `listening on IP:PORT` once ready, then serves until killed.";

static THREADS: AtomicUsize = AtomicUsize::new(2);
/// Rounds per µs, as f64 bits (0: not set).
static RPU: AtomicU64 = AtomicU64::new(0);

fn threads() -> usize {
    THREADS.load(Ordering::Relaxed).max(1)
}

/// Rounds of `cpu_job` per µs: `--rounds-per-us`, or timed here the first time.
fn rounds_per_us() -> f64 {
    let r = f64::from_bits(RPU.load(Ordering::Relaxed));
    if r > 0.0 {
        return r;
    }
    let r = f64::from(ropewalk_bench::work::rounds_for(1000.0)) / 1000.0;
    RPU.store(r.to_bits(), Ordering::Relaxed);
    r
}

/// This thread's worker index: the order in which threads first ran a job.
fn worker_index() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    thread_local! {
        static INDEX: u16 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|i| *i)
}

/// Splits `data` (after what `partial` holds) into whole requests; keeps the rest.
fn frames(partial: &mut Vec<u8>, data: &[u8], mut each: impl FnMut(&[u8; WIRE_LEN])) {
    let joined;
    let input: &[u8] = if partial.is_empty() {
        data
    } else {
        partial.extend_from_slice(data);
        joined = std::mem::take(partial);
        &joined
    };
    let mut chunks = input.chunks_exact(WIRE_LEN);
    for c in &mut chunks {
        each(c.try_into().expect("16 bytes"));
    }
    partial.extend_from_slice(chunks.remainder());
}

/// Runs each request inline and writes its reply at once.
struct Inline {
    transport: Option<TransportRef>,
    partial: Vec<u8>,
    worker: u16,
    rpu: f64,
}

impl Protocol for Inline {
    fn connection_made(&mut self, transport: TransportRef) {
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        let (t, worker, rpu) = (self.transport.as_ref(), self.worker, self.rpu);
        frames(&mut self.partial, data, |req| {
            let reply = run_job(req, rpu, worker);
            if let Some(t) = t {
                t.write(&reply);
            }
        });
        Ok(())
    }
}

fn inline_factory(worker: u16) -> impl Fn(&Address) -> Option<Inline> {
    let rpu = rounds_per_us();
    move |_: &Address| {
        Some(Inline {
            transport: None,
            partial: Vec::new(),
            worker,
            rpu,
        })
    }
}

fn run_one(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let reactor = Reactor::new()?;
    let _signals = reactor.install_signal_handlers()?;
    let port = reactor.listen_tcp(addr, inline_factory(0))?;
    println!("listening on {}", port.local_addr());
    reactor.run()?;
    Ok(())
}

fn run_group(addr: SocketAddr, queue: AcceptQueue) -> Result<(), Box<dyn std::error::Error>> {
    let listener = GroupListener::bind(addr, queue)?;
    let local = listener.local_addr();
    let group = ReactorGroup::builder()
        .threads(threads())
        .name("arch")
        .start(move |reactor, index| {
            listener.listen(reactor, inline_factory(index as u16))?;
            Ok(())
        })?;
    let _signals = group.install_signal_handlers()?;
    println!("listening on {local}");
    group.join()?;
    Ok(())
}

fn run_own(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    run_group(addr, AcceptQueue::PerReactor)
}

fn run_shared(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    run_group(addr, AcceptQueue::Shared)
}

fn run_dispatcher(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    run_group(addr, AcceptQueue::Dispatcher(Dispatch::RoundRobin))
}

fn run_dispatcher_ll(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    run_group(addr, AcceptQueue::Dispatcher(Dispatch::LeastLoaded))
}

/// Two-stage: the reactor reads and writes; each job runs on the worker pool. One job per
/// connection at a time (the others wait in `pending`), so replies keep their order.
struct Staged {
    reactor: Reactor,
    transport: Option<TransportRef>,
    partial: Vec<u8>,
    state: Rc<RefCell<StageState>>,
}

#[derive(Default)]
struct StageState {
    busy: bool,
    pending: VecDeque<[u8; WIRE_LEN]>,
}

/// Sends the next pending job to the pool, unless one of this connection's runs.
fn submit(reactor: &Reactor, t: &TransportRef, state: &Rc<RefCell<StageState>>) {
    let req = {
        let mut st = state.borrow_mut();
        if st.busy {
            return;
        }
        let Some(req) = st.pending.pop_front() else {
            return;
        };
        st.busy = true;
        req
    };
    let rpu = rounds_per_us();
    let (r, t, state) = (reactor.clone(), t.clone(), state.clone());
    reactor
        .defer_to_thread(move || Ok(run_job(&req, rpu, worker_index())))
        .add_callback(move |reply| {
            t.write(&reply);
            state.borrow_mut().busy = false;
            submit(&r, &t, &state);
            Ok(())
        });
}

impl Protocol for Staged {
    fn connection_made(&mut self, transport: TransportRef) {
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        let state = self.state.clone();
        frames(&mut self.partial, data, |req| {
            state.borrow_mut().pending.push_back(*req)
        });
        if let Some(t) = &self.transport {
            submit(&self.reactor, t, &self.state);
        }
        Ok(())
    }
}

fn run_two_stage(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let reactor = Reactor::new()?;
    reactor.configure_pool(PoolConfig {
        max_threads: threads(),
        ..PoolConfig::default()
    });
    let _signals = reactor.install_signal_handlers()?;
    let r = reactor.clone();
    let port = reactor.listen_tcp(addr, move |_: &Address| {
        Some(Staged {
            reactor: r.clone(),
            transport: None,
            partial: Vec::new(),
            state: Rc::default(),
        })
    })?;
    println!("listening on {}", port.local_addr());
    reactor.run()?;
    Ok(())
}

fn run_threads(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr)?;
    println!("listening on {}", listener.local_addr()?);
    let rpu = rounds_per_us();
    for (n, stream) in listener.incoming().enumerate() {
        let Ok(mut s) = stream else { continue };
        let _ = s.set_nodelay(true);
        std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || {
                let mut req = [0u8; WIRE_LEN];
                while s.read_exact(&mut req).is_ok() {
                    let reply = run_job(&req, rpu, n as u16);
                    if s.write_all(&reply).is_err() {
                        return;
                    }
                }
            })?;
    }
    Ok(())
}

/// `epoll_ctl` on `ep` for `fd`, one-shot readable, with `fd` as the event's data.
fn arm(ep: i32, op: i32, fd: i32, token: u64) -> std::io::Result<()> {
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLONESHOT) as u32,
        u64: token,
    };
    // SAFETY: a valid epoll descriptor and a pointer to a live event.
    if unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn run_pool(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    use std::collections::HashMap;
    use std::os::fd::AsRawFd;

    const LISTENER: u64 = u64::MAX;
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    // SAFETY: epoll_create1 with a valid flag.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    arm(ep, libc::EPOLL_CTL_ADD, listener.as_raw_fd(), LISTENER)?;
    println!("listening on {}", listener.local_addr()?);
    let listener = Arc::new(listener);
    let conns: Arc<Mutex<HashMap<i32, Arc<TcpStream>>>> = Arc::default();
    let rpu = rounds_per_us();
    let workers: Vec<_> = (0..threads())
        .map(|index| {
            let (listener, conns) = (listener.clone(), conns.clone());
            std::thread::spawn(move || loop {
                let mut ev = libc::epoll_event { events: 0, u64: 0 };
                // SAFETY: one event into a live struct.
                let n = unsafe { libc::epoll_wait(ep, &mut ev, 1, -1) };
                if n <= 0 {
                    continue;
                }
                if ev.u64 == LISTENER {
                    while let Ok((s, _)) = listener.accept() {
                        let fd = s.as_raw_fd();
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_nodelay(true);
                        conns.lock().expect("conns").insert(fd, Arc::new(s));
                        let _ = arm(ep, libc::EPOLL_CTL_ADD, fd, fd as u64);
                    }
                    let _ = arm(ep, libc::EPOLL_CTL_MOD, listener.as_raw_fd(), LISTENER);
                    continue;
                }
                let fd = ev.u64 as i32;
                let Some(s) = conns.lock().expect("conns").get(&fd).cloned() else {
                    continue;
                };
                let mut req = [0u8; WIRE_LEN];
                let served = (&*s).read_exact(&mut req).is_ok() && {
                    let reply = run_job(&req, rpu, index as u16);
                    (&*s).write_all(&reply).is_ok()
                };
                if served {
                    let _ = arm(ep, libc::EPOLL_CTL_MOD, fd, fd as u64);
                } else {
                    conns.lock().expect("conns").remove(&fd);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

fn run_tokio_mt(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads())
        .enable_io()
        .build()?;
    let rpu = rounds_per_us();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("listening on {}", listener.local_addr()?);
        loop {
            let (mut socket, _) = listener.accept().await?;
            let _ = socket.set_nodelay(true);
            tokio::spawn(async move {
                let mut req = [0u8; WIRE_LEN];
                while socket.read_exact(&mut req).await.is_ok() {
                    let reply = run_job(&req, rpu, worker_index());
                    if socket.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

fn main() -> ExitCode {
    procs::serve_main_with(
        "architecture_server",
        USAGE,
        &[
            ("one", run_one as procs::ServeFn),
            ("own", run_own),
            ("shared", run_shared),
            ("dispatcher", run_dispatcher),
            ("dispatcher-ll", run_dispatcher_ll),
            ("two-stage", run_two_stage),
            ("threads", run_threads),
            ("pool", run_pool),
            ("tokio-mt", run_tokio_mt),
        ],
        &mut |flag, value| {
            match flag {
                "--threads" => {
                    let n: usize = value.parse().map_err(|e| format!("{flag} {value}: {e}"))?;
                    THREADS.store(n, Ordering::Relaxed);
                }
                "--rounds-per-us" => {
                    let r: f64 = value.parse().map_err(|e| format!("{flag} {value}: {e}"))?;
                    RPU.store(r.to_bits(), Ordering::Relaxed);
                }
                _ => return Ok(false),
            }
            Ok(true)
        },
    )
}
