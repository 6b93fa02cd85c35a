//! What can go wrong with TLS: a handshake or a record ([`TlsError`]), and a configuration
//! ([`TlsConfigError`]). Apart from `tls/` so that the transport interface
//! (`protocol.rs`) can name it without importing the TLS transports.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use rustls::{AlertDescription, CertificateError};

/// Why a TLS handshake or connection failed; carried in a [`Failure`] on the errback path
/// of [`Reactor::connect_tls`](crate::Reactor::connect_tls), or to
/// [`Protocol::connection_lost`](crate::Protocol::connection_lost) when a record fails
/// after the handshake.
///
/// The variants name what a user can act on: the peer's certificate (its issuer, its
/// names, its dates), the peer refusing ours, no version/cipher/ALPN protocol in common, a
/// peer that is slow, gone, or does not speak TLS at all.
///
/// [`Failure`]: ropewalk_deferred::Failure
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::tls::TlsError;
///
/// let f = Failure::new(TlsError::HandshakeTimeout(Duration::from_secs(10)));
/// assert!(matches!(f.downcast_ref(), Some(TlsError::HandshakeTimeout(_))));
/// assert_eq!(f.downcast_ref::<TlsError>().unwrap().to_string(), "TLS handshake timed out after 10s");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The peer's certificate does not chain to a trusted root (self-signed, or signed by
    /// a CA this end does not know: add it with
    /// [`TlsClientBuilder::add_root_pem_file`](crate::tls::TlsClientBuilder::add_root_pem_file)).
    #[error("certificate not trusted: unknown issuer")]
    UnknownIssuer,
    /// The peer's certificate is not valid for the name asked for.
    #[error("certificate does not match the server name")]
    NameMismatch,
    /// The peer's certificate has expired (or is not valid yet).
    #[error("certificate expired or not yet valid")]
    Expired,
    /// The peer's certificate is refused for another reason (bad encoding, revoked, a bad
    /// signature...).
    #[error("certificate refused: {0:?}")]
    BadCertificate(CertificateError),
    /// The peer refused this end's certificate (it sent this alert).
    #[error("the peer refused our certificate ({0:?})")]
    CertificateRejectedByPeer(AlertDescription),
    /// No protocol version, cipher suite or ALPN protocol in common with the peer.
    #[error("no protocol in common with the peer")]
    NoCommonProtocol(#[source] rustls::Error),
    /// The handshake did not finish in time (see
    /// [`TlsOptions::handshake_timeout`](crate::tls::TlsOptions::handshake_timeout)).
    #[error("TLS handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
    /// The peer closed (or reset) the connection before the handshake finished.
    #[error("peer closed the connection during the TLS handshake")]
    PeerClosed(#[source] Option<io::Error>),
    /// The peer sent something that is not a TLS record, or a corrupt one (a plain-text
    /// client on a TLS port, garbage, a tampered record).
    #[error("bad TLS record: the peer does not speak TLS, or sent a corrupt record")]
    BadRecord(#[source] rustls::Error),
    /// The server name given to connect is neither a DNS name nor an IP address.
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    /// `start_tls` on a connection that cannot switch: one not made through a
    /// [`StartTlsFactory`](crate::tls::StartTlsFactory).
    #[error("this connection cannot start TLS (make it through a StartTlsFactory)")]
    StartTlsUnsupported,
    /// `start_tls` on a connection already switched to TLS.
    #[error("TLS already started on this connection")]
    AlreadyStarted,
    /// Another TLS failure.
    #[error("TLS failure")]
    Protocol(#[source] rustls::Error),
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> TlsError {
        use rustls::Error as E;
        match e {
            E::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer => TlsError::UnknownIssuer,
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => TlsError::NameMismatch,
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => TlsError::Expired,
                other => TlsError::BadCertificate(other),
            },
            E::AlertReceived(
                a @ (AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateUnknown
                | AlertDescription::CertificateRevoked
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateRequired),
            ) => TlsError::CertificateRejectedByPeer(a),
            e @ (E::PeerIncompatible(_)
            | E::NoApplicationProtocol
            | E::AlertReceived(
                AlertDescription::ProtocolVersion
                | AlertDescription::NoApplicationProtocol
                | AlertDescription::InsufficientSecurity
                | AlertDescription::HandshakeFailure,
            )) => TlsError::NoCommonProtocol(e),
            e @ (E::InvalidMessage(_) | E::PeerSentOversizedRecord | E::DecryptError) => {
                TlsError::BadRecord(e)
            }
            e => TlsError::Protocol(e),
        }
    }
}

/// Why a TLS configuration could not be built (a PEM file missing or empty, a key that
/// does not match its certificate...).
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::tls::{TlsConfigError, TlsServerBuilder};
///
/// let e = TlsServerBuilder::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem")
///     .unwrap_err();
/// assert!(matches!(e, TlsConfigError::Read { .. }));
/// assert!(e.to_string().contains("/nonexistent/cert.pem"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// PEM text that could not be parsed, in `what` (a file name, or "certificate" /
    /// "private key" for bytes given directly).
    #[error("bad PEM in {what}: {message}")]
    Pem {
        /// Where.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// No certificate was found in `0`.
    #[error("no certificate found in {0}")]
    NoCertificate(String),
    /// No private key was found in `0`.
    #[error("no private key found in {0}")]
    NoPrivateKey(String),
    /// rustls refused the configuration (a key that does not match the certificate, an
    /// unsupported key type, a root certificate it cannot parse...).
    #[error("invalid TLS configuration")]
    Rustls(#[source] rustls::Error),
}
