//! A script: fetch one URL with the HTTP client and print the response.
//!
//! ```sh
//! cargo run --example http_server -- --port 8080 &
//! cargo run --example http_get -- http://127.0.0.1:8080/
//! cargo run --example http_get -- https://example.com/
//! cargo run --example http_get -- --cacert ca.pem https://localhost:8443/
//! ```
//!
//! `https://` servers are verified against the `webpki-roots` set, or with `--cacert FILE`
//! (curl's flag) against the CA certificates in that PEM file as well.
//!
//! It prints the status line, the header fields, a blank line and the body, and exits
//! with 1 (and a message on stderr) if the request fails: a bad URL, a refused
//! connection, a timeout, a malformed response. No event loop to write: the client
//! returns a Deferred and `wait()` runs the reactor until it fires.

use std::io::Write;
use std::time::Duration;

use ropewalk::protocols::http::{Client, ClientConfig};
use ropewalk::reactor::tls::TlsClientBuilder;
use ropewalk::reactor::Reactor;

fn main() {
    env_logger::init();
    let usage = || {
        eprintln!("usage: http_get [--cacert FILE] URL   (http[s]://host[:port]/path)");
        std::process::exit(2);
    };
    let mut args = std::env::args().skip(1);
    let (mut cacert, mut url) = (None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cacert" => match args.next() {
                Some(f) => cacert = Some(f),
                None => usage(),
            },
            "-h" | "--help" => usage(),
            _ if url.is_none() => url = Some(arg),
            _ => usage(),
        }
    }
    let Some(url) = url else { return usage() };
    if let Err(e) = get(&url, cacert.as_deref()) {
        eprintln!("http_get: {e}");
        std::process::exit(1);
    }
}

fn get(url: &str, cacert: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
    let reactor = Reactor::new()?;
    let tls = match cacert {
        Some(file) => Some(
            TlsClientBuilder::new()
                .add_root_pem_file(file)?
                .alpn(&[b"http/1.1"])
                .build()?,
        ),
        None => None,
    };
    let config = ClientConfig {
        timeout: Duration::from_secs(30),
        tls,
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
