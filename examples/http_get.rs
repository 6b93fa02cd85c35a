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
//! It prints the status line, the header fields, a blank line and the body. A bad
//! argument (no URL, two URLs, an unknown option, a URL that is not `http://…` or
//! `https://…`) prints the usage and exits with 2; a failed request (a refused
//! connection, a timeout, a bad certificate, a malformed response) prints the reason on
//! stderr and exits with 1. No event loop to write: the client returns a Deferred and
//! `wait()` runs the reactor until it fires. `RUST_LOG=debug` shows what the reactor and
//! the client do.

use std::io::Write;
use std::time::Duration;

use ropewalk::protocols::http::{Client, ClientConfig, ClientError};
use ropewalk::reactor::tls::TlsClientBuilder;
use ropewalk::reactor::Reactor;

const USAGE: &str = "usage: http_get [--cacert FILE] URL   (http[s]://host[:port]/path)";

/// Why the program stops: a bad argument (exit 2, with the usage) or a failure (exit 1).
enum Stop {
    Usage(String),
    Failed(String),
}

/// The command line: the URL, and a file of CA certificates to trust as well.
struct Args {
    url: String,
    cacert: Option<String>,
}

fn parse_args() -> Result<Args, Stop> {
    let (mut url, mut cacert) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--cacert" => {
                let file = args.next();
                cacert = Some(file.ok_or_else(|| Stop::Usage("--cacert needs a PEM file".into()))?);
            }
            flag if flag.starts_with('-') => {
                return Err(Stop::Usage(format!("unknown option: {flag}")))
            }
            _ if url.is_some() => return Err(Stop::Usage(format!("one URL only, not {arg:?}"))),
            _ => url = Some(arg),
        }
    }
    let url = url.ok_or_else(|| Stop::Usage("no URL".into()))?;
    Ok(Args { url, cacert })
}

fn main() {
    env_logger::init();
    let result = parse_args().and_then(|args| get(&args));
    match result {
        Ok(()) => {}
        Err(Stop::Usage(e)) => {
            eprintln!("http_get: {e}\n{USAGE}");
            std::process::exit(2);
        }
        Err(Stop::Failed(e)) => {
            eprintln!("http_get: {e}");
            std::process::exit(1);
        }
    }
}

fn get(args: &Args) -> Result<(), Stop> {
    let failed = |e: &dyn std::fmt::Display| Stop::Failed(e.to_string());
    let reactor = Reactor::new().map_err(|e| failed(&e))?;
    let tls = match &args.cacert {
        Some(file) => Some(
            TlsClientBuilder::new()
                .add_root_pem_file(file)
                .map_err(|e| failed(&e))?
                .alpn(&[b"http/1.1"])
                .build()
                .map_err(|e| failed(&e))?,
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
        .get(&args.url)
        .wait()
        .map_err(|f| match f.downcast_ref::<ClientError>() {
            // The client checks the URL: a bad one is a bad argument.
            Some(ClientError::InvalidUrl { .. } | ClientError::UnsupportedScheme(_)) => {
                Stop::Usage(f.to_string())
            }
            _ => failed(&f),
        })?;
    print(&resp).map_err(|e| failed(&e))
}

fn print(resp: &ropewalk::protocols::http::ClientResponse) -> std::io::Result<()> {
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
    out.flush()
}
