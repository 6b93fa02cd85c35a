//! The PROXY protocol header (HAProxy's, versions 1 and 2): what a load balancer sends
//! first on each connection to say who the client is. [`parse_proxy_header`] reads one
//! from the start of a connection's bytes; it does no I/O.
//!
//! Version 1 is one text line (`PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n`, at
//! most 107 bytes); version 2 a binary block after a 12-byte signature, whose TLVs are
//! skipped. `UNKNOWN` (v1), `LOCAL` (v2) and v2 families other than TCP over IPv4 or
//! IPv6 mean "use the connection's own addresses" ([`ProxyHeader::Local`]).
//!
//! [`ProxyProtocol`] wraps a listener's factory: it reads the header before the protocol
//! sees a byte, and the protocol's transport reports the client as its peer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use ropewalk_deferred::{Deferred, Failure};
use ropewalk_reactor::tls::{StartTls, TlsInfo};
use ropewalk_reactor::{
    Address, Clock, DelayedCall, Factory, ListeningPort, Producer, Protocol, Transport,
    TransportRef,
};

/// The version 2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 line, CRLF included.
const V1_MAX: usize = 107;

/// What a PROXY header says.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::proxy_header::{parse_proxy_header, ProxyHeader, Parsed};
///
/// let got = parse_proxy_header(b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\nGET /");
/// let Ok(Parsed::Done(ProxyHeader::Proxied { source, .. }, len)) = got else { panic!() };
/// assert_eq!(source, "192.0.2.1:56324".parse().unwrap());
/// assert_eq!(len, 45);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The connection was relayed for a client: its address, and the address it
    /// connected to.
    Proxied {
        /// The client.
        source: SocketAddr,
        /// The address the client connected to (the balancer's).
        destination: SocketAddr,
    },
    /// No client address (a health check, or an unknown family): keep the connection's
    /// own addresses.
    Local,
}

/// The outcome of [`parse_proxy_header`] on the bytes so far.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::proxy_header::{parse_proxy_header, Parsed};
/// assert_eq!(parse_proxy_header(b"PROXY TCP4 1.2"), Ok(Parsed::Incomplete));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A header, and how many bytes it took: the connection's data starts after them.
    Done(ProxyHeader, usize),
    /// More bytes are needed.
    Incomplete,
}

/// A malformed PROXY header: the connection should be closed.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::proxy_header::{parse_proxy_header, ProxyHeaderError};
/// assert_eq!(parse_proxy_header(b"GET / HTTP/1.1\r\n"), Err(ProxyHeaderError::Signature));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The bytes start with neither signature.
    #[error("no PROXY protocol signature")]
    Signature,
    /// A version 1 line that is too long or malformed.
    #[error("malformed PROXY v1 header: {0}")]
    V1(&'static str),
    /// A version 2 block that is malformed.
    #[error("malformed PROXY v2 header: {0}")]
    V2(&'static str),
}

/// Parses a PROXY header (version 1 or 2) at the start of `buf`.
///
/// # Errors
///
/// [`ProxyHeaderError`] as soon as the bytes cannot be a valid header.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::proxy_header::{parse_proxy_header, Parsed, ProxyHeader};
///
/// assert_eq!(
///     parse_proxy_header(b"PROXY UNKNOWN\r\n"),
///     Ok(Parsed::Done(ProxyHeader::Local, 15))
/// );
/// ```
pub fn parse_proxy_header(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        if n < V2_SIGNATURE.len() {
            return Ok(Parsed::Incomplete);
        }
        return parse_v2(buf);
    }
    let n = buf.len().min(6);
    if buf[..n] == b"PROXY "[..n] {
        if n < 6 {
            return Ok(Parsed::Incomplete);
        }
        return parse_v1(buf);
    }
    Err(ProxyHeaderError::Signature)
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= V1_MAX {
            return Err(ProxyHeaderError::V1("no CRLF within 107 bytes"));
        }
        if window.contains(&b'\n') {
            return Err(ProxyHeaderError::V1("a bare LF"));
        }
        return Ok(Parsed::Incomplete);
    };
    let line = std::str::from_utf8(&buf[6..end]).map_err(|_| ProxyHeaderError::V1("not ASCII"))?;
    let parts: Vec<&str> = line.split(' ').collect();
    let header = match parts.as_slice() {
        ["UNKNOWN", ..] => ProxyHeader::Local,
        [family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let ip = |s: &str| -> Result<IpAddr, ProxyHeaderError> {
                let ip: IpAddr = s.parse().map_err(|_| ProxyHeaderError::V1("bad address"))?;
                match (*family, ip) {
                    ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
                    _ => Err(ProxyHeaderError::V1("address of the wrong family")),
                }
            };
            let port = |s: &str| -> Result<u16, ProxyHeaderError> {
                // Decimal, no sign, no leading zero (the spec's form).
                if s.is_empty()
                    || (s.len() > 1 && s.starts_with('0'))
                    || !s.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(ProxyHeaderError::V1("bad port"));
                }
                s.parse().map_err(|_| ProxyHeaderError::V1("bad port"))
            };
            ProxyHeader::Proxied {
                source: SocketAddr::new(ip(src)?, port(sport)?),
                destination: SocketAddr::new(ip(dst)?, port(dport)?),
            }
        }
        _ => {
            return Err(ProxyHeaderError::V1(
                "expected TCP4, TCP6 or UNKNOWN and four fields",
            ))
        }
    };
    Ok(Parsed::Done(header, end + 2))
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    if buf.len() < 16 {
        return Ok(Parsed::Incomplete);
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(ProxyHeaderError::V2("version is not 2"));
    }
    let family = buf[13];
    let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    let total = 16 + len;
    if buf.len() < total {
        return Ok(Parsed::Incomplete);
    }
    let body = &buf[16..total];
    let header = match ver_cmd & 0x0f {
        0 => ProxyHeader::Local,
        1 => match family {
            // TCP over IPv4: two addresses, two ports (12 bytes), then TLVs (skipped).
            0x11 => {
                let a = body
                    .get(..12)
                    .ok_or(ProxyHeaderError::V2("IPv4 block too short"))?;
                let ip = |i: usize| IpAddr::V4(Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]));
                let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
                ProxyHeader::Proxied {
                    source: SocketAddr::new(ip(0), port(8)),
                    destination: SocketAddr::new(ip(4), port(10)),
                }
            }
            // TCP over IPv6: 36 bytes.
            0x21 => {
                let a = body
                    .get(..36)
                    .ok_or(ProxyHeaderError::V2("IPv6 block too short"))?;
                let ip = |i: usize| {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(&a[i..i + 16]);
                    IpAddr::V6(Ipv6Addr::from(o))
                };
                let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
                ProxyHeader::Proxied {
                    source: SocketAddr::new(ip(0), port(32)),
                    destination: SocketAddr::new(ip(16), port(34)),
                }
            }
            // UNSPEC, UDP, Unix sockets: the connection's own addresses.
            _ => ProxyHeader::Local,
        },
        _ => return Err(ProxyHeaderError::V2("unknown command")),
    };
    Ok(Parsed::Done(header, total))
}

/// A [`Factory`] that reads a PROXY header (v1 or v2) on each connection before the
/// protocol of `inner` sees a byte: the protocol is built for the client's address, and
/// its transport's [`peer_addr`](ropewalk_reactor::Transport::peer_addr) is the client's
/// (for an HTTP server, the access log and `Request::peer` show the real client). A
/// malformed header, or none within `timeout`, closes the connection. Opt-in per
/// listener: wrap the factory of the listeners behind the balancer only, since anyone
/// who can connect can claim any address.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ropewalk_protocols::http::{HttpServer, Request, Response};
/// use ropewalk_protocols::proxy_header::ProxyProtocol;
///
/// let reactor = ropewalk_reactor::Reactor::new()?;
/// let server = HttpServer::new(&reactor, |req: Request| {
///     Ok(Response::text(format!("you are {}", req.peer())))
/// });
/// let factory = ProxyProtocol::new(&reactor, server, Duration::from_secs(5));
/// let options = ropewalk_reactor::ListenOptions::default();
/// let port = reactor.listen_tcp_factory("127.0.0.1:0".parse().unwrap(), factory, &options)?;
/// # drop(port);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ProxyProtocol<F: Factory> {
    inner: Rc<F>,
    clock: Rc<dyn Clock>,
    timeout: Duration,
}

impl<F: Factory> ProxyProtocol<F> {
    /// Wraps `inner`; a connection whose header has not arrived `timeout` after it was
    /// made is aborted (`clock` runs the timer: the reactor, or a `ManualClock`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_protocols::{proxy_header::ProxyProtocol, Echo};
    ///
    /// let clock = ropewalk_reactor::ManualClock::new();
    /// let _f = ProxyProtocol::new(&clock, Echo::factory(), Duration::from_secs(5));
    /// ```
    pub fn new(
        clock: &(impl Clock + Clone + 'static),
        inner: F,
        timeout: Duration,
    ) -> ProxyProtocol<F> {
        ProxyProtocol {
            inner: Rc::new(inner),
            clock: Rc::new(clock.clone()),
            timeout,
        }
    }
}

impl<F: Factory> Factory for ProxyProtocol<F> {
    type Protocol = ProxyConn<F>;

    fn build_protocol(&self, _peer: &Address) -> Option<ProxyConn<F>> {
        Some(ProxyConn {
            factory: self.inner.clone(),
            clock: self.clock.clone(),
            timeout: self.timeout,
            transport: None,
            buf: Vec::new(),
            timer: None,
            inner: None,
        })
    }

    fn start_factory(&self) {
        self.inner.start_factory();
    }

    fn stop_factory(&self) {
        self.inner.stop_factory();
    }

    fn port_listening(&self, port: &ListeningPort) {
        self.inner.port_listening(port);
    }
}

impl<F: Factory> std::fmt::Debug for ProxyProtocol<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyProtocol")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// One connection of a [`ProxyProtocol`]: the header being read, then the inner
/// protocol.
pub struct ProxyConn<F: Factory> {
    factory: Rc<F>,
    clock: Rc<dyn Clock>,
    timeout: Duration,
    transport: Option<TransportRef>,
    buf: Vec<u8>,
    timer: Option<DelayedCall>,
    inner: Option<F::Protocol>,
}

impl<F: Factory> ProxyConn<F> {
    fn cancel_timer(&mut self) {
        if let Some(t) = self.timer.take() {
            let _ = t.cancel();
        }
    }
}

impl<F: Factory> Protocol for ProxyConn<F> {
    fn connection_made(&mut self, transport: TransportRef) {
        let t = transport.clone();
        self.timer = Some(self.clock.call_later_boxed(
            self.timeout,
            Box::new(move || {
                log::info!("no PROXY header from {} in time: closing", t.peer_addr());
                t.abort_connection();
            }),
        ));
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        if let Some(inner) = self.inner.as_mut() {
            return inner.data_received(data);
        }
        let Some(transport) = self.transport.clone() else {
            return Ok(());
        };
        self.buf.extend_from_slice(data);
        let (header, used) = match parse_proxy_header(&self.buf) {
            Ok(Parsed::Incomplete) => return Ok(()),
            Ok(Parsed::Done(header, used)) => (header, used),
            Err(e) => {
                log::info!("{e} from {}: closing", transport.peer_addr());
                self.cancel_timer();
                self.buf = Vec::new();
                transport.abort_connection();
                return Ok(());
            }
        };
        self.cancel_timer();
        let peer = match header {
            ProxyHeader::Proxied { source, .. } => Address::Inet(source),
            ProxyHeader::Local => transport.peer_addr(),
        };
        let Some(mut inner) = self.factory.build_protocol(&peer) else {
            transport.lose_connection();
            return Ok(());
        };
        inner.connection_made(Rc::new(Proxied { transport, peer }));
        let rest = self.buf.split_off(used);
        self.buf = Vec::new();
        let inner = self.inner.insert(inner);
        if rest.is_empty() {
            Ok(())
        } else {
            inner.data_received(&rest)
        }
    }

    fn eof_received(&mut self) -> bool {
        match self.inner.as_mut() {
            Some(inner) => inner.eof_received(),
            None => false,
        }
    }

    fn connection_lost(&mut self, reason: Failure) {
        self.cancel_timer();
        self.transport = None;
        if let Some(inner) = self.inner.as_mut() {
            inner.connection_lost(reason);
        }
    }
}

impl<F: Factory> std::fmt::Debug for ProxyConn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConn")
            .field("header_read", &self.inner.is_some())
            .finish()
    }
}

/// The transport a proxied protocol sees: the connection's, with the client's address.
struct Proxied {
    transport: TransportRef,
    peer: Address,
}

impl Transport for Proxied {
    fn write(&self, data: &[u8]) {
        self.transport.write(data);
    }
    fn write_vectored(&self, bufs: &[&[u8]]) {
        self.transport.write_vectored(bufs);
    }
    fn send_file(&self, file: Rc<std::fs::File>, offset: u64, len: u64) {
        // The connection's own: `sendfile(2)`, or TLS's chunks, as it drains.
        self.transport.send_file(file, offset, len);
    }
    fn lose_connection(&self) {
        self.transport.lose_connection();
    }
    fn abort_connection(&self) {
        self.transport.abort_connection();
    }
    fn half_close(&self) {
        self.transport.half_close();
    }
    fn peer_addr(&self) -> Address {
        self.peer.clone()
    }
    fn local_addr(&self) -> Address {
        self.transport.local_addr()
    }
    fn set_nodelay(&self, on: bool) -> std::io::Result<()> {
        self.transport.set_nodelay(on)
    }
    fn set_keepalive(&self, idle: Option<Duration>) -> std::io::Result<()> {
        self.transport.set_keepalive(idle)
    }
    fn pause_reading(&self) {
        self.transport.pause_reading();
    }
    fn resume_reading(&self) {
        self.transport.resume_reading();
    }
    fn register_producer(&self, producer: Rc<dyn Producer>, streaming: bool) {
        self.transport.register_producer(producer, streaming);
    }
    fn unregister_producer(&self) {
        self.transport.unregister_producer();
    }
    fn write_buffer_len(&self) -> usize {
        self.transport.write_buffer_len()
    }
    fn is_closing(&self) -> bool {
        self.transport.is_closing()
    }
    fn start_tls(&self, tls: StartTls) -> Deferred<()> {
        self.transport.start_tls(tls)
    }
    fn tls_info(&self) -> Option<TlsInfo> {
        self.transport.tls_info()
    }
    fn write_more(&self, data: &[u8]) {
        self.transport.write_more(data);
    }
    fn splice_to(&self, to: &TransportRef) -> std::io::Result<()> {
        self.transport.splice_to(to)
    }
    fn splice_sink(&self) -> Option<ropewalk_reactor::SpliceSink> {
        self.transport.splice_sink()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records which of its methods a wrapper passed on; the rest go to a
    /// `StringTransport`.
    struct Spy {
        inner: Rc<ropewalk_reactor::testing::StringTransport>,
        files: std::cell::Cell<usize>,
        starts: std::cell::Cell<usize>,
    }

    impl Transport for Spy {
        fn write(&self, data: &[u8]) {
            self.inner.write(data);
        }
        fn send_file(&self, _file: Rc<std::fs::File>, _offset: u64, _len: u64) {
            self.files.set(self.files.get() + 1);
        }
        fn start_tls(&self, _tls: StartTls) -> Deferred<()> {
            self.starts.set(self.starts.get() + 1);
            Deferred::succeed(())
        }
        fn lose_connection(&self) {
            self.inner.lose_connection();
        }
        fn abort_connection(&self) {
            self.inner.abort_connection();
        }
        fn half_close(&self) {
            self.inner.half_close();
        }
        fn peer_addr(&self) -> Address {
            self.inner.peer_addr()
        }
        fn local_addr(&self) -> Address {
            self.inner.local_addr()
        }
        fn set_nodelay(&self, on: bool) -> std::io::Result<()> {
            self.inner.set_nodelay(on)
        }
        fn set_keepalive(&self, idle: Option<Duration>) -> std::io::Result<()> {
            self.inner.set_keepalive(idle)
        }
        fn pause_reading(&self) {
            self.inner.pause_reading();
        }
        fn resume_reading(&self) {
            self.inner.resume_reading();
        }
        fn register_producer(&self, producer: Rc<dyn Producer>, streaming: bool) {
            self.inner.register_producer(producer, streaming);
        }
        fn unregister_producer(&self) {
            self.inner.unregister_producer();
        }
        fn write_buffer_len(&self) -> usize {
            self.inner.write_buffer_len()
        }
        fn is_closing(&self) -> bool {
            self.inner.is_closing()
        }
    }

    /// Keeps the transport it is given.
    struct Keep(Rc<std::cell::RefCell<Option<TransportRef>>>);

    impl Protocol for Keep {
        fn connection_made(&mut self, t: TransportRef) {
            *self.0.borrow_mut() = Some(t);
        }
        fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> {
            Ok(())
        }
    }

    /// The proxied protocol's `send_file` and `start_tls` reach the connection's own
    /// (its `send_file` sends as the socket drains; the default read the whole region
    /// into memory at once, and `start_tls` was refused).
    #[test]
    fn the_proxied_transport_passes_send_file_and_start_tls_on() {
        let clock = ropewalk_reactor::ManualClock::new();
        let kept = Rc::new(std::cell::RefCell::new(None));
        let k = kept.clone();
        let factory = ProxyProtocol::new(
            &clock,
            move |_: &Address| Some(Keep(k.clone())),
            Duration::from_secs(5),
        );
        let mut conn = factory.build_protocol(&Address::Test).unwrap();
        let spy = Rc::new(Spy {
            inner: ropewalk_reactor::testing::StringTransport::new(),
            files: std::cell::Cell::new(0),
            starts: std::cell::Cell::new(0),
        });
        conn.connection_made(spy.clone());
        conn.data_received(b"PROXY UNKNOWN\r\n").unwrap();
        let t = kept.borrow().clone().expect("the inner protocol was made");
        let path = std::env::temp_dir().join(format!("ropewalk-proxied-{}", std::process::id()));
        std::fs::write(&path, b"0123456789").unwrap();
        let file = Rc::new(std::fs::File::open(&path).unwrap());
        let _ = std::fs::remove_file(&path);
        t.send_file(file, 2, 5);
        assert_eq!(spy.files.get(), 1, "send_file passed on");
        assert!(spy.inner.value().is_empty(), "not read and written instead");
        let config = ropewalk_reactor::tls::TlsClientBuilder::new()
            .build()
            .unwrap();
        t.start_tls(StartTls::client(config, "example.com"))
            .wait()
            .unwrap();
        assert_eq!(spy.starts.get(), 1, "start_tls passed on");
        assert_eq!(t.tls_info(), None);
    }

    fn v2(cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | cmd);
        out.push(family);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn proxied(src: &str, dst: &str) -> ProxyHeader {
        ProxyHeader::Proxied {
            source: src.parse().unwrap(),
            destination: dst.parse().unwrap(),
        }
    }

    #[test]
    fn table() {
        let v4 = [192, 0, 2, 1, 198, 51, 100, 1, 0xdc, 0x04, 0x01, 0xbb];
        let mut v4_tlv = v4.to_vec();
        v4_tlv.extend_from_slice(&[0x04, 0x00, 0x03, b'a', b'b', b'c']); // a NOOP TLV
        let mut v6 = Vec::new();
        v6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[0x30, 0x39, 0x00, 0x50]);
        let cases: Vec<(&str, Vec<u8>, Result<Parsed, ProxyHeaderError>)> = vec![
            (
                "v1 TCP4",
                b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\nGET".to_vec(),
                Ok(Parsed::Done(
                    proxied("192.0.2.1:56324", "198.51.100.1:443"),
                    45,
                )),
            ),
            (
                "v1 TCP6",
                b"PROXY TCP6 2001:db8::1 2001:db8::2 12345 80\r\n".to_vec(),
                Ok(Parsed::Done(
                    proxied("[2001:db8::1]:12345", "[2001:db8::2]:80"),
                    45,
                )),
            ),
            (
                "v1 UNKNOWN",
                b"PROXY UNKNOWN\r\n".to_vec(),
                Ok(Parsed::Done(ProxyHeader::Local, 15)),
            ),
            (
                "v1 UNKNOWN with addresses",
                b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n".to_vec(),
                Ok(Parsed::Done(ProxyHeader::Local, 35)),
            ),
            (
                "v1 truncated",
                b"PROXY TCP4 192.0.2.1 198.5".to_vec(),
                Ok(Parsed::Incomplete),
            ),
            ("v1 prefix", b"PROX".to_vec(), Ok(Parsed::Incomplete)),
            (
                "v1 family mismatch",
                b"PROXY TCP4 2001:db8::1 2001:db8::2 1 2\r\n".to_vec(),
                Err(ProxyHeaderError::V1("address of the wrong family")),
            ),
            (
                "v1 bad port",
                b"PROXY TCP4 192.0.2.1 198.51.100.1 65536 443\r\n".to_vec(),
                Err(ProxyHeaderError::V1("bad port")),
            ),
            (
                "v1 leading zero port",
                b"PROXY TCP4 192.0.2.1 198.51.100.1 0443 443\r\n".to_vec(),
                Err(ProxyHeaderError::V1("bad port")),
            ),
            (
                "v1 too few fields",
                b"PROXY TCP4 192.0.2.1 198.51.100.1 443\r\n".to_vec(),
                Err(ProxyHeaderError::V1(
                    "expected TCP4, TCP6 or UNKNOWN and four fields",
                )),
            ),
            (
                "v1 no CRLF in 107 bytes",
                [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 120]].concat(),
                Err(ProxyHeaderError::V1("no CRLF within 107 bytes")),
            ),
            (
                "v1 bare LF",
                b"PROXY UNKNOWN\n".to_vec(),
                Err(ProxyHeaderError::V1("a bare LF")),
            ),
            (
                "v2 PROXY TCP4",
                v2(1, 0x11, &v4),
                Ok(Parsed::Done(
                    proxied("192.0.2.1:56324", "198.51.100.1:443"),
                    28,
                )),
            ),
            (
                "v2 PROXY TCP4 with a TLV skipped",
                [v2(1, 0x11, &v4_tlv), b"GET".to_vec()].concat(),
                Ok(Parsed::Done(
                    proxied("192.0.2.1:56324", "198.51.100.1:443"),
                    34,
                )),
            ),
            (
                "v2 PROXY TCP6",
                v2(1, 0x21, &v6),
                Ok(Parsed::Done(
                    proxied("[2001:db8::1]:12345", "[2001:db8::2]:80"),
                    52,
                )),
            ),
            (
                "v2 LOCAL",
                v2(0, 0x00, &[]),
                Ok(Parsed::Done(ProxyHeader::Local, 16)),
            ),
            (
                "v2 PROXY UNSPEC",
                v2(1, 0x00, &[]),
                Ok(Parsed::Done(ProxyHeader::Local, 16)),
            ),
            (
                "v2 truncated signature",
                V2_SIGNATURE[..7].to_vec(),
                Ok(Parsed::Incomplete),
            ),
            (
                "v2 truncated body",
                v2(1, 0x11, &v4)[..20].to_vec(),
                Ok(Parsed::Incomplete),
            ),
            (
                "v2 short IPv4 block",
                v2(1, 0x11, &v4[..8]),
                Err(ProxyHeaderError::V2("IPv4 block too short")),
            ),
            (
                "v2 bad version",
                {
                    let mut b = v2(1, 0x11, &v4);
                    b[12] = 0x11;
                    b
                },
                Err(ProxyHeaderError::V2("version is not 2")),
            ),
            (
                "v2 bad command",
                v2(2, 0x11, &v4),
                Err(ProxyHeaderError::V2("unknown command")),
            ),
            (
                "wrong signature",
                b"GET / HTTP/1.1\r\n".to_vec(),
                Err(ProxyHeaderError::Signature),
            ),
            (
                "wrong v2 signature",
                b"\r\n\r\n\0\r\nQUIX\n".to_vec(),
                Err(ProxyHeaderError::Signature),
            ),
            ("empty", Vec::new(), Ok(Parsed::Incomplete)),
        ];
        for (name, input, want) in cases {
            assert_eq!(parse_proxy_header(&input), want, "{name}");
        }
    }

    /// Byte by byte, every prefix of a valid header is Incomplete, never an error.
    #[test]
    fn every_prefix_is_incomplete() {
        let v4 = [192, 0, 2, 1, 198, 51, 100, 1, 0xdc, 0x04, 0x01, 0xbb];
        for header in [
            b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n".to_vec(),
            v2(1, 0x11, &v4),
        ] {
            for i in 0..header.len() {
                assert_eq!(
                    parse_proxy_header(&header[..i]),
                    Ok(Parsed::Incomplete),
                    "{i}"
                );
            }
        }
    }
}
