//! A line-based chat server, usable with `nc` or `telnet`.
//!
//! ```sh
//! cargo run --release --example chat_server -- --port 7100
//! nc localhost 7100        # in two or more terminals
//! /nick alice              # choose a name
//! hello everyone           # sent to everybody else
//! /quit                    # leave
//! ```
//!
//! Each connection is a `LineReceiver` split on LF, so lines from `nc` (LF) and from
//! `telnet` (CRLF) both work; the server's own lines end with CRLF. The room is shared
//! state on the reactor thread, so no locks are needed.
//!
//! It prints `listening on IP:PORT` once it accepts connections; `RUST_LOG=debug` shows
//! what the reactor does; Ctrl-C (SIGINT) or SIGTERM stops it cleanly.

use std::cell::RefCell;
use std::rc::Rc;

use ropewalk::prelude::*;
use ropewalk::protocols::line::{LineControl, LineHandler, LineReceiver};
use ropewalk::reactor::{Address, Reactor, TransportRef};

/// Everybody connected: an id, a name and a way to write to them.
#[derive(Default)]
struct Room {
    members: Vec<(u64, String, TransportRef)>,
    next_id: u64,
}

impl Room {
    /// Sends `line` to everybody but `from`.
    fn broadcast(&self, from: u64, line: &str) {
        for (id, _, t) in &self.members {
            if *id != from {
                t.write(format!("{line}\r\n").as_bytes());
            }
        }
    }

    fn name(&self, id: u64) -> String {
        self.members
            .iter()
            .find(|(i, ..)| *i == id)
            .map(|(_, n, _)| n.clone())
            .unwrap_or_default()
    }
}

/// Sends one line to the member, ended by CRLF (which `nc` and `telnet` both show).
fn say(ctl: &LineControl<'_>, line: &str) {
    ctl.write(format!("{line}\r\n").as_bytes());
}

/// One member's connection.
struct Member {
    room: Rc<RefCell<Room>>,
    id: u64,
}

/// Longest name a member may choose.
const MAX_NICK: usize = 32;

impl LineHandler for Member {
    fn connection_made(&mut self, ctl: &mut LineControl<'_>) {
        let Some(t) = ctl.transport().cloned() else {
            return;
        };
        let mut room = self.room.borrow_mut();
        room.next_id += 1;
        self.id = room.next_id;
        let name = format!("guest{}", self.id);
        say(
            ctl,
            &format!("welcome, {name}; /nick NAME to rename, /quit to leave"),
        );
        room.broadcast(self.id, &format!("* {name} joined"));
        room.members.push((self.id, name, t));
    }

    fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
        let line = String::from_utf8_lossy(line);
        // Lines end with LF; a CR before it (telnet, CRLF clients) goes too.
        let line = line.trim_end();
        let mut room = self.room.borrow_mut();
        let me = room.name(self.id);
        if let Some(new) = line.strip_prefix("/nick ") {
            let new = new.trim();
            let valid = !new.is_empty()
                && new.len() <= MAX_NICK
                && new
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
            if !valid {
                say(ctl, "! a name is 1-32 letters, digits, '_' or '-'");
            } else if room.members.iter().any(|(_, n, _)| n == new) {
                say(ctl, "! that name is taken");
            } else {
                for m in room.members.iter_mut().filter(|(i, ..)| *i == self.id) {
                    m.1 = new.to_string();
                }
                room.broadcast(self.id, &format!("* {me} is now {new}"));
                say(ctl, &format!("you are now {new}"));
            }
        } else if line == "/quit" {
            say(ctl, "bye");
            ctl.lose_connection();
        } else if line.starts_with('/') {
            say(ctl, "! commands: /nick NAME, /quit");
        } else if !line.is_empty() {
            room.broadcast(self.id, &format!("<{me}> {line}"));
        }
        Ok(())
    }

    fn connection_lost(&mut self, _reason: Failure) {
        let mut room = self.room.borrow_mut();
        let me = room.name(self.id);
        room.members.retain(|(i, ..)| *i != self.id);
        room.broadcast(self.id, &format!("* {me} left"));
    }
}

const USAGE: &str = "usage: chat_server [--port P]   (default 7100; P = 0 picks a free port)";

fn port_arg() -> Result<u16, String> {
    let mut port = 7100;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => {
                let v = args.next().ok_or("--port needs a value")?;
                port = v.parse().map_err(|_| format!("bad port: {v}"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option: {other}")),
        }
    }
    Ok(port)
}

fn main() {
    env_logger::init();
    let port = match port_arg() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("chat_server: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = serve(port) {
        eprintln!("chat_server: {e}");
        std::process::exit(1);
    }
}

fn serve(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let reactor = Reactor::new()?;
    let _signals = reactor.install_signal_handlers()?;
    let room = Rc::new(RefCell::new(Room::default()));
    let factory = move |_: &Address| {
        let member = Member {
            room: room.clone(),
            id: 0,
        };
        // Split on LF, not the default CRLF: `nc` sends LF.
        Some(LineReceiver::new(member).with_delimiter(b"\n"))
    };
    let port = reactor.listen_tcp(([127, 0, 0, 1], port).into(), factory)?;
    println!("listening on {}", port.local_addr());
    reactor.run()?;
    Ok(())
}
