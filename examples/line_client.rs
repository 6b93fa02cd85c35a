//! A line client: connects, sends one line, prints the first line of the answer. Errors
//! are clean: one message on stderr and exit status 1 (bad arguments, refused, timed out,
//! closed before an answer).
//!
//! ```sh
//! cargo run --example kv_server -- --port 7200 &
//! cargo run --example line_client -- localhost:7200 'SET a 1'
//! ```
//!
//! The protocol hands its answer to `connect_for`'s Deferred through a `Finish`. Its
//! Twisted counterpart is `examples/twisted/line_client.py`.

use ropewalk::prelude::*;

/// The line to send, and where the answer goes.
struct Ask(String, Finish<String>);

impl LineHandler for Ask {
    fn connection_made(&mut self, ctl: &mut LineControl<'_>) {
        ctl.send_line(self.0.as_bytes());
    }

    fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
        self.1.succeed(String::from_utf8_lossy(line).into_owned());
        ctl.lose_connection();
        Ok(())
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);

fn main() {
    env_logger::init();
    if let Err(e) = ask(std::env::args().skip(1).collect()) {
        eprintln!("line_client: {e}");
        std::process::exit(1);
    }
}

fn ask(args: Vec<String>) -> Result<(), Failure> {
    let usage = || Failure::msg("usage: line_client HOST:PORT LINE");
    let [target, question]: [String; 2] = args.try_into().map_err(|_| usage())?;
    let reactor = Reactor::new()?;
    let make = |finish| LineReceiver::new(Ask(question, finish));
    println!("{}", reactor.connect_for(target, make, TIMEOUT).wait()?);
    Ok(())
}
