//! A script: fetch URLs (two, say) concurrently, gather the responses, give up after ten
//! seconds, and block on the result with `wait()`: no event loop to write.
//!
//! ```sh
//! cargo run --example http_server -- --port 8080 &
//! cargo run --example fetch_two -- http://127.0.0.1:8080/ http://127.0.0.1:8080/missing
//! ```
//!
//! It prints one line per URL (status and body size), or the first failure (a refused
//! connection, a bad URL, the timeout) on stderr and exits with 1. No URL, no output. Its Twisted
//! counterpart is `examples/twisted/fetch_two.py`.

use ropewalk::prelude::*;
use ropewalk::protocols::http::Client;

fn main() -> Result<(), Failure> {
    env_logger::init();
    let urls: Vec<String> = std::env::args().skip(1).collect();
    let reactor = Reactor::new()?;
    let all = gather_results_consuming_errors(urls.iter().map(|u| Client::new(&reactor).get(u)));
    let responses = all.add_timeout(Duration::from_secs(10), &reactor).wait()?;
    for (url, resp) in urls.iter().zip(responses) {
        println!("{url}: {} ({} bytes)", resp.status(), resp.body().len());
    }
    Ok(())
}
