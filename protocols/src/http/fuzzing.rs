//! Internals opened to the fuzz targets in `fuzz/` (feature `fuzzing`, never on by
//! default): not part of the API, may change at any time.

pub use super::client::probe::ResponseReader;

/// The chunked body decoder the server and the client use.
#[derive(Debug)]
pub struct ChunkedDecoder(super::wire::chunked::ChunkedDecoder);

impl ChunkedDecoder {
    /// A decoder for bodies of at most `max_body` bytes.
    pub fn new(max_body: u64) -> ChunkedDecoder {
        ChunkedDecoder(super::wire::chunked::ChunkedDecoder::new(max_body))
    }

    /// Decodes from `buf` into `out`; how many bytes of `buf` were used, or the status
    /// the framing error gets (400, 413, 431).
    pub fn decode(&mut self, buf: &[u8], out: &mut Vec<u8>) -> Result<usize, u16> {
        self.0.decode(buf, out)
    }

    /// The last chunk and the trailers were read.
    pub fn is_done(&self) -> bool {
        self.0.is_done()
    }
}
