//! The echo servers of the multicore benchmark: the same echo (with an optional CPU job
//! per message) in each multi-core design the article names, and tokio's.
//!
//! ```sh
//! multicore_server --impl own --threads 2 --work-rounds 0 --port 0
//! ```
//!
//! | `--impl` | design |
//! |---|---|
//! | `one` | one reactor, one thread (the job runs inline) |
//! | `own` | N reactors, each its own accept queue (`SO_REUSEPORT`): `ReactorGroup` + `GroupListener` |
//! | `shared` | N reactors sharing one accept queue (one socket, registered by each) |
//! | `dispatch-rr` | N reactors, each with its own queue fed by one of them, the dispatcher, round-robin |
//! | `dispatch-ll` | the same, the dispatcher sending each connection to the least-loaded reactor |
//! | `two-stage` | one reactor for I/O; each message's job runs on its worker pool (`defer_to_thread`, N threads), the answer is written back on the reactor |
//! | `threads` | thread per connection: blocking `std::net`, read, job, `write_all` |
//! | `tokio-mt` | tokio's multi-thread runtime with N workers: a task per connection |
//!
//! `--work-rounds R` is [`cpu_job`]'s rounds per message (0: plain echo). Each prints
//! `listening on IP:PORT` once it accepts connections and serves until killed
//! (SIGINT/SIGTERM stop the ropewalk ones cleanly).

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use ropewalk_bench::procs;
use ropewalk_bench::work::cpu_job;

use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::{
    AcceptQueue, Address, Dispatch, GroupListener, PoolConfig, Protocol, Reactor, ReactorGroup,
    TransportRef,
};

const USAGE: &str = "\
usage: multicore_server [--impl NAME] [--threads N] [--work-rounds R] [--port P] [--host IP]

  --impl NAME        one (default), own, shared, dispatch-rr, dispatch-ll, two-stage,
                     threads, tokio-mt
  --threads N        reactors / pool threads / tokio workers (default 2)
  --work-rounds R    rounds of the CPU job per message (default 0: plain echo)
  --port P           port to listen on; 0 (default) picks a free one
  --host IP          address to bind (default 127.0.0.1)
Prints `listening on IP:PORT` once ready, then serves until killed.";

static THREADS: AtomicUsize = AtomicUsize::new(2);
static ROUNDS: AtomicU32 = AtomicU32::new(0);

fn threads() -> usize {
    THREADS.load(Ordering::Relaxed).max(1)
}

fn rounds() -> u32 {
    ROUNDS.load(Ordering::Relaxed)
}

/// Runs the job on each chunk, then writes it back.
struct Echo {
    transport: Option<TransportRef>,
    rounds: u32,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: TransportRef) {
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        cpu_job(data, self.rounds);
        if let Some(t) = &self.transport {
            t.write(data);
        }
        Ok(())
    }
}

fn echo_factory(rounds: u32) -> impl Fn(&Address) -> Option<Echo> {
    move |_: &Address| {
        Some(Echo {
            transport: None,
            rounds,
        })
    }
}

fn run_one(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let reactor = Reactor::new()?;
    let _signals = reactor.install_signal_handlers()?;
    let port = reactor.listen_tcp(addr, echo_factory(rounds()))?;
    println!("listening on {}", port.local_addr());
    reactor.run()?;
    Ok(())
}

fn run_group(addr: SocketAddr, queue: AcceptQueue) -> Result<(), Box<dyn std::error::Error>> {
    let listener = GroupListener::bind(addr, queue)?;
    let local = listener.local_addr();
    let rounds = rounds();
    let group = ReactorGroup::builder()
        .threads(threads())
        .name("echo")
        .start(move |reactor, _| {
            listener.listen(reactor, echo_factory(rounds))?;
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

fn run_dispatch_rr(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    run_group(addr, AcceptQueue::Dispatcher(Dispatch::RoundRobin))
}

fn run_dispatch_ll(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    run_group(addr, AcceptQueue::Dispatcher(Dispatch::LeastLoaded))
}

/// Two-stage: the reactor reads; the job runs on the worker pool; the reactor writes the
/// answer. One job per connection at a time (what arrives meanwhile waits in `pending`),
/// so answers keep their order.
struct Staged {
    reactor: Reactor,
    rounds: u32,
    transport: Option<TransportRef>,
    state: Rc<RefCell<StageState>>,
}

#[derive(Default)]
struct StageState {
    busy: bool,
    pending: Vec<u8>,
}

/// Sends what is pending to the pool, unless a job of this connection is running.
fn submit(reactor: &Reactor, t: &TransportRef, state: &Rc<RefCell<StageState>>, rounds: u32) {
    let data = {
        let mut st = state.borrow_mut();
        if st.busy || st.pending.is_empty() {
            return;
        }
        st.busy = true;
        std::mem::take(&mut st.pending)
    };
    let (r, t, state) = (reactor.clone(), t.clone(), state.clone());
    reactor
        .defer_to_thread(move || {
            cpu_job(&data, rounds);
            Ok(data)
        })
        .add_callback(move |data| {
            t.write(&data);
            state.borrow_mut().busy = false;
            submit(&r, &t, &state, rounds);
            Ok(())
        });
}

impl Protocol for Staged {
    fn connection_made(&mut self, transport: TransportRef) {
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        self.state.borrow_mut().pending.extend_from_slice(data);
        if let Some(t) = &self.transport {
            submit(&self.reactor, t, &self.state, self.rounds);
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
    let (r, rounds) = (reactor.clone(), rounds());
    let port = reactor.listen_tcp(addr, move |_: &Address| {
        Some(Staged {
            reactor: r.clone(),
            rounds,
            transport: None,
            state: Rc::default(),
        })
    })?;
    println!("listening on {}", port.local_addr());
    reactor.run()?;
    Ok(())
}

fn run_threads(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let listener = std::net::TcpListener::bind(addr)?;
    println!("listening on {}", listener.local_addr()?);
    let rounds = rounds();
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || {
                let mut buf = [0u8; 1024];
                loop {
                    let n = match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    cpu_job(&buf[..n], rounds);
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            })?;
    }
    Ok(())
}

fn run_tokio_mt(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads())
        .enable_io()
        .build()?;
    let rounds = rounds();
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        println!("listening on {}", listener.local_addr()?);
        loop {
            let (mut socket, _) = listener.accept().await?;
            tokio::spawn(async move {
                let mut buf = vec![0; 1024];
                loop {
                    let n = match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    cpu_job(&buf[..n], rounds);
                    if socket.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

fn main() -> ExitCode {
    procs::serve_main_with(
        "multicore_server",
        USAGE,
        &[
            ("one", run_one),
            ("own", run_own),
            ("shared", run_shared),
            ("dispatch-rr", run_dispatch_rr),
            ("dispatch-ll", run_dispatch_ll),
            ("two-stage", run_two_stage),
            ("threads", run_threads),
            ("tokio-mt", run_tokio_mt),
        ],
        &mut |flag, value| {
            let n: u64 = value.parse().map_err(|e| format!("{flag} {value}: {e}"))?;
            match flag {
                "--threads" => THREADS.store(n as usize, Ordering::Relaxed),
                "--work-rounds" => ROUNDS.store(n as u32, Ordering::Relaxed),
                _ => return Ok(false),
            }
            Ok(true)
        },
    )
}
