//! Pattern 1 — event handlers: events go on the reactor's queue and are dispatched to
//! handlers; objects carry their own listeners.
//!
//! ```sh
//! cargo run --example pattern_event_queue
//! ```
//!
//! It takes no arguments. `RUST_LOG=debug` shows what the reactor does.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use ropewalk::reactor::{Emitter, Reactor};

/// The events of a tiny thermostat.
#[derive(Debug, Clone)]
enum Event {
    Reading(f32),
    Alarm(&'static str),
}

/// An object with listeners of its own: it emits when its state changes.
struct Thermostat {
    target: f32,
    changed: Emitter<f32>,
}

impl Thermostat {
    fn set_target(&mut self, t: f32) {
        self.target = t;
        self.changed.emit(&t);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    if let Some(arg) = std::env::args().nth(1) {
        let usage =
            "usage: pattern_event_queue   (no arguments; RUST_LOG=debug shows the reactor's work)";
        if arg == "-h" || arg == "--help" {
            println!("{usage}");
            return Ok(());
        }
        eprintln!("pattern_event_queue: unexpected argument {arg:?}\n{usage}");
        std::process::exit(2);
    }
    let reactor = Reactor::new()?;
    let log = Rc::new(RefCell::new(Vec::<String>::new()));

    // A queue of events, each dispatched to every handler on a later turn.
    let events: Emitter<Event> = Emitter::new();
    let l = log.clone();
    events.on(move |e| l.borrow_mut().push(format!("display shows {e:?}")));
    let l = log.clone();
    events.on(move |e| match e {
        Event::Reading(t) if *t > 30.0 => l.borrow_mut().push("fan switched on".to_string()),
        Event::Alarm(what) => l.borrow_mut().push(format!("siren: {what}")),
        Event::Reading(_) => {}
    });

    // Object-level listeners.
    let mut thermostat = Thermostat {
        target: 20.0,
        changed: Emitter::new(),
    };
    let l = log.clone();
    thermostat
        .changed
        .on(move |t| l.borrow_mut().push(format!("thermostat target is now {t}")));

    // Events are posted now and handled when the reactor runs them.
    events.post(&reactor, Event::Reading(21.5));
    events.post(&reactor, Event::Reading(31.0));
    let (ev, r) = (events.clone(), reactor.clone());
    reactor.call_later(Duration::from_millis(10), move || {
        ev.post(&r, Event::Alarm("door open"));
    });
    thermostat.set_target(22.0); // listeners run at once
    println!("before the reactor runs: {:?}", log.borrow());

    let r = reactor.clone();
    reactor.call_later(Duration::from_millis(20), move || r.stop().unwrap());
    reactor.run()?;
    for line in log.borrow().iter() {
        println!("{line}");
    }
    println!("target {}", thermostat.target);
    Ok(())
}
