//! TCP echo on N reactors, one per thread: the multi-core design of ropewalk.
//!
//! ```sh
//! cargo run --release --example multicore_echo -- --port 7000 --threads 4 --mode own
//! cargo run --release --example multicore_echo -- --port 7000 --threads 4 --mode shared
//! cargo run --release --example multicore_echo -- --port 7000 --threads 4 --mode dispatcher
//! cargo run --release --example echo_client -- --port 7000 hello
//! ```
//!
//! - `--mode own`: each reactor listens on its own `SO_REUSEPORT` socket on the port, and
//!   the kernel spreads the connections over them.
//! - `--mode shared`: one listening socket, registered by every reactor; all accept from
//!   its one queue (on Linux, `EPOLLEXCLUSIVE` wakes one idle reactor per connection;
//!   elsewhere every idle reactor wakes and one wins).
//! - `--mode dispatcher` (or `dispatcher:least-loaded`): one reactor accepts and hands
//!   each connection to a reactor's own queue, in turn (or to the one with the fewest
//!   live connections).
//!
//! Each thread builds its own factory and counts its own connections (an `Rc<Cell>`: no
//! lock, nothing shared). On SIGINT/SIGTERM every reactor stops, says on stderr how many
//! connections it served, and the program exits. `RUST_LOG=debug` shows what each reactor
//! does.

use std::cell::Cell;
use std::rc::Rc;

use ropewalk::protocols::Echo;
use ropewalk::reactor::{AcceptQueue, Address, GroupListener, Phase, ReactorGroup, SystemEvent};

const USAGE: &str = "\
usage: multicore_echo [--port P] [--threads N]
                      [--mode own|shared|dispatcher[:round-robin|:least-loaded]]

  --port P      port on 127.0.0.1 (default 7000; 0 picks a free one)
  --threads N   reactors, one thread each (default: one per CPU)
  --mode M      own: an accept queue per reactor (SO_REUSEPORT, the default);
                shared: one accept queue for all;
                dispatcher: one reactor accepts and hands each connection to a
                reactor's own queue, round-robin (the default policy) or
                least-loaded";

struct Args {
    port: u16,
    threads: usize,
    mode: AcceptQueue,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        port: 7000,
        threads: 0,
        mode: AcceptQueue::PerReactor,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => {
                let v = value()?;
                a.port = v.parse().map_err(|_| format!("bad port: {v}"))?;
            }
            "--threads" => {
                let v = value()?;
                a.threads = match v.parse() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("bad thread count: {v} (at least 1)")),
                };
            }
            "--mode" => a.mode = value()?.parse().map_err(|e| format!("{e}"))?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option: {other}")),
        }
    }
    Ok(a)
}

fn main() {
    env_logger::init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("multicore_echo: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = serve(args) {
        eprintln!("multicore_echo: {e}");
        std::process::exit(1);
    }
}

fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let listener = GroupListener::bind(([127, 0, 0, 1], args.port).into(), args.mode)?;
    let addr = listener.local_addr();
    let group = ReactorGroup::builder()
        .threads(args.threads)
        .name("echo")
        .start(move |reactor, index| {
            // This thread's own state: built here, never shared with another reactor.
            let served = Rc::new(Cell::new(0u64));
            let count = served.clone();
            listener.listen(reactor, move |_: &Address| {
                count.set(count.get() + 1);
                Some(Echo::new())
            })?;
            reactor.add_system_event_trigger(Phase::After, SystemEvent::Shutdown, move || {
                eprintln!("reactor {index}: served {} connections", served.get());
                Ok(())
            });
            Ok(())
        })?;
    let _signals = group.install_signal_handlers()?;
    println!("listening on {addr}");
    log::info!("{} reactors, {} accept queue", group.threads(), args.mode);
    group.join()?;
    Ok(())
}
