//! A response reader without a connection: the bytes a connection would hand to its
//! exchange go through the same [`Exchange::parse`], and the end of the stream through
//! the same rule as a lost connection. Only for the fuzz targets (feature `fuzzing`).

use std::rc::Rc;

use super::exchange::{Exchange, Parsed, ReadingResponse};
use super::pool::outcome_at_close;
use super::{ClientConfig, ClientResponse};

/// Reads one response from bytes fed in any chunks, as the client's connection does.
pub struct ResponseReader {
    exchange: Exchange,
    outcome: Option<Result<ClientResponse, String>>,
}

impl std::fmt::Debug for ResponseReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseReader")
            .field("done", &self.outcome.is_some())
            .finish()
    }
}

impl ResponseReader {
    /// A reader for the response to a `HEAD` request (`head_only`) or to another one.
    pub fn new(head_only: bool, config: ClientConfig) -> ResponseReader {
        ResponseReader {
            exchange: Exchange {
                request: Rc::from(&b""[..]),
                head_only,
                idempotent: true,
                retried: false,
                reused: false,
                key: "fuzz:80".into(),
                target: ropewalk_reactor::Target::Name("fuzz:80".into()),
                tls_name: None,
                config: Rc::new(config),
                conn: None,
                resolver: None,
                buf: Vec::new(),
                reading: ReadingResponse::Head,
            },
            outcome: None,
        }
    }

    /// Feeds bytes read; `false` once the response is complete or failed (the
    /// connection takes no more bytes for it).
    pub fn feed(&mut self, data: &[u8]) -> bool {
        if self.outcome.is_some() {
            return false;
        }
        self.exchange.buf.extend_from_slice(data);
        match self.exchange.parse() {
            Parsed::More => true,
            Parsed::Complete(r) => {
                self.outcome = Some(Ok(r));
                false
            }
            Parsed::Failed(e) => {
                self.outcome = Some(Err(e.to_string()));
                false
            }
        }
    }

    /// Bytes read after the complete response (the connection is then not reused).
    pub fn leftover(&self) -> &[u8] {
        &self.exchange.buf
    }

    /// The connection ended (cleanly or not) and the outcome is final: the response,
    /// or why there is none.
    pub fn finish(mut self, clean: bool) -> Result<ClientResponse, String> {
        if let Some(outcome) = self.outcome.take() {
            return outcome;
        }
        let reading = std::mem::replace(&mut self.exchange.reading, ReadingResponse::Done);
        match outcome_at_close(reading, self.exchange.buf.is_empty(), clean, &"eof") {
            Some(outcome) => outcome,
            None => Err("no outcome".into()),
        }
    }
}
