//! What a TLS handshake negotiated, for the protocol running over it (re-exported as
//! `tls::TlsInfo`; here, outside `tls`, so that `protocol` can name it without an import
//! circle).

use rustls::pki_types::CertificateDer;
use rustls::{CipherSuite, ProtocolVersion};

/// What a finished TLS handshake negotiated, as [`Transport::tls_info`](crate::Transport::tls_info)
/// gives it: the ALPN protocol, the peer's certificates, the version and cipher suite,
/// (on a server) the name the client asked for, and whether the session was resumed. Twisted's `negotiatedProtocol` and
/// `getPeerCertificate`.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::testing::StringTransport;
/// use ropewalk_reactor::Transport;
///
/// // Plain TCP, and the test transport, negotiate nothing.
/// assert!(StringTransport::new().tls_info().is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The application protocol both ends agreed on by ALPN (`b"h2"`, `b"http/1.1"`), if
    /// both offered one.
    pub alpn: Option<Vec<u8>>,
    /// The peer's certificate chain, its own first, as sent (DER). Empty for a client that
    /// presented none (the server did not ask for one).
    pub peer_certificates: Vec<CertificateDer<'static>>,
    /// The TLS version in use (`TLSv1_3`, `TLSv1_2`).
    pub protocol_version: ProtocolVersion,
    /// The cipher suite in use.
    pub cipher_suite: CipherSuite,
    /// On a server, the name the client asked for by SNI, if it sent one; `None` on a
    /// client.
    pub server_name: Option<String>,
    /// The handshake resumed an earlier session (an abbreviated handshake: no certificate
    /// sent or verified again, no new key exchange on TLS 1.2) rather than making a full
    /// one. The builders' configurations resume by default: a server keeps 256 sessions in
    /// memory, and a client 256 servers' tickets, for every connection made with the same
    /// configuration.
    pub resumed: bool,
}

impl TlsInfo {
    /// What `conn` negotiated; `None` while its handshake is not finished.
    pub(crate) fn of(conn: &rustls::Connection) -> Option<TlsInfo> {
        if conn.is_handshaking() {
            return None;
        }
        let server_name = match conn {
            rustls::Connection::Server(s) => s.server_name().map(str::to_string),
            rustls::Connection::Client(_) => None,
        };
        Some(TlsInfo {
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            peer_certificates: conn
                .peer_certificates()
                .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
                .unwrap_or_default(),
            protocol_version: conn.protocol_version()?,
            cipher_suite: conn.negotiated_cipher_suite()?.suite(),
            server_name,
            resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        })
    }
}
