//! A key-value line server: `SET k v` answers `OK`; `GET k` answers the value (or
//! `NOT FOUND`) 10 ms later, from a Deferred fired by a timer. With its socket-free test
//! on a `StringTransport` and a `ManualClock` (`cargo test --example kv_server`; `cargo test`
//! runs it as part of `tests/examples.rs`).
//!
//! ```sh
//! cargo run --example kv_server -- --port 7200
//! printf 'SET a 1\r\nGET a\r\n' | nc -q1 127.0.0.1 7200
//! ```
//!
//! Its Twisted counterpart is `examples/twisted/kv_server.py`; the guide
//! (`ropewalk::guide`) compares their lengths.

use std::{cell::RefCell, collections::HashMap, rc::Rc};

use ropewalk::prelude::*;

/// The store, shared by every connection, and the clock the answers wait on.
#[derive(Clone)]
struct Kv(Rc<RefCell<HashMap<Vec<u8>, Vec<u8>>>>, Rc<dyn Clock>);

impl LineHandler for Kv {
    fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
        match line.splitn(3, |&b| b == b' ').collect::<Vec<_>>()[..] {
            [b"SET", k, v] => {
                self.0.borrow_mut().insert(k.to_vec(), v.to_vec());
                ctl.send_line(b"OK");
            }
            [b"GET", k] => {
                let (value, out) = (self.0.borrow().get(k).cloned(), ctl.sender());
                defer_later(&*self.1, Duration::from_millis(10), || Ok(value))
                    .add_callback(move |v| out.send_line(v.as_deref().unwrap_or(b"NOT FOUND")));
            }
            _ => ctl.send_line(b"ERR"),
        }
        Ok(())
    }
}

fn factory(clock: Rc<dyn Clock>) -> impl Fn(&Address) -> Option<LineReceiver<Kv>> {
    let kv = Kv(Rc::default(), clock);
    move |_| Some(LineReceiver::new(kv.clone()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let port: u16 = match &std::env::args().skip(1).collect::<Vec<_>>()[..] {
        [] => 7200,
        [flag, p] if flag == "--port" => p.parse().map_err(|_| format!("bad port: {p}"))?,
        _ => return Err("usage: kv_server [--port P]".into()),
    };
    let reactor = Reactor::new()?;
    let _signals = reactor.install_signal_handlers()?;
    let clock = Rc::new(reactor.clone());
    let port = reactor.listen_tcp(([127, 0, 0, 1], port).into(), factory(clock))?;
    println!("listening on {}", port.local_addr());
    Ok(reactor.run()?)
}

#[test]
fn get_answers_when_the_timer_fires() {
    let clock = ManualClock::new();
    let mut p = factory(Rc::new(clock.clone()))(&Address::Test).unwrap();
    let t = ropewalk::reactor::testing::StringTransport::connect(&mut p);
    p.data_received(b"SET a 1\r\nGET a\r\nGET b\r\n").unwrap();
    assert_eq!(t.value(), b"OK\r\n");
    clock.advance(Duration::from_millis(10));
    assert_eq!(t.value(), b"OK\r\n1\r\nNOT FOUND\r\n");
}
