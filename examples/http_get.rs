//! A script: fetch one URL with the HTTP client and print the response.
//!
//! ```sh
//! cargo run --example http_server -- --port 8080 &
//! cargo run --example http_get -- http://127.0.0.1:8080/
//! ```
//!
//! It prints the status line, the header fields, a blank line and the body, and exits
//! with 1 (and a message on stderr) if the request fails: a bad URL, a refused
//! connection, a timeout, a malformed response. No event loop to write: the client
//! returns a Deferred and `wait()` runs the reactor until it fires.

use std::io::Write;
use std::time::Duration;

use ropewalk::protocols::http::{Client, ClientConfig};
use ropewalk::reactor::Reactor;

fn main() {
    env_logger::init();
    let url = match std::env::args().nth(1) {
        Some(u) if u != "-h" && u != "--help" => u,
        _ => {
            eprintln!("usage: http_get URL   (http://host[:port]/path)");
            std::process::exit(2);
        }
    };
    if let Err(e) = get(&url) {
        eprintln!("http_get: {e}");
        std::process::exit(1);
    }
}

fn get(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let reactor = Reactor::new()?;
    let config = ClientConfig {
        timeout: Duration::from_secs(30),
        ..ClientConfig::default()
    };
    // A Failure displays its whole cause chain ("could not connect to …: connection refused").
    let resp = Client::with_config(&reactor, config)
        .get(url)
        .wait()
        .map_err(|f| f.to_string())?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} {} {}",
        resp.version().as_str(),
        resp.status(),
        resp.reason()
    )?;
    for (name, value) in resp.headers().iter() {
        writeln!(out, "{name}: {value}")?;
    }
    writeln!(out)?;
    out.write_all(resp.body())?;
    out.flush()?;
    Ok(())
}
