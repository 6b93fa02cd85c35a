//! Building rustls configurations with secure defaults: [`TlsClientBuilder`] and
//! [`TlsServerBuilder`].
//!
//! Both use rustls's `ring` provider and TLS 1.3 and 1.2 only, with the key exchange
//! groups in the order X25519, P-256, P-384. A client verifies the
//! server's certificate and name against the Mozilla root set of `webpki-roots` (built in:
//! the same answer on every platform and in every container, with nothing to install),
//! plus any CA added with [`TlsClientBuilder::add_root_pem_file`]; it sends SNI, and
//! resumes sessions with rustls's in-memory cache (256 servers). A server keeps a session
//! cache of 256 entries for resumption. Verification is turned off only by the loudly named
//! [`TlsClientBuilder::dangerous_accept_any_certificate_for_tests`].

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::tls_error::TlsConfigError;

/// The crypto provider of every configuration built here: *ring*, which builds with a C
/// compiler alone (aws-lc-rs needs cmake). rustls 0.23.48 deprecates it for lacking the
/// post-quantum key exchange (X25519MLKEM768) that aws-lc-rs offers; classical X25519,
/// P-256 and P-384 remain.
///
/// Its key exchange groups are reordered X25519, P-256, P-384, the order of browsers and
/// of aws-lc-rs: ring lists P-384 first, whose arithmetic it does not optimise, and a
/// full handshake then costs the server 9× the instructions it costs with X25519 (12.2 M
/// against 1.3 M under callgrind, 94% of them in the P-384 ECDHE). A peer that offers only
/// P-384 still gets it.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = vec![X25519, SECP256R1, SECP384R1];
    Arc::new(provider)
}

/// TLS 1.3 and 1.2: nothing older.
const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn pem_error(what: &str, e: rustls::pki_types::pem::Error) -> TlsConfigError {
    match e {
        rustls::pki_types::pem::Error::Io(source) => TlsConfigError::Read {
            path: what.into(),
            source,
        },
        other => TlsConfigError::Pem {
            what: what.to_string(),
            message: format!("{other:?}"),
        },
    }
}

/// Every certificate in a PEM file.
fn certs_from_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let what = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| TlsConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    certs_from_pem(&bytes, &what)
}

fn certs_from_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(what, e))?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate(what.to_string()));
    }
    Ok(certs)
}

fn key_from_pem(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            TlsConfigError::NoPrivateKey(what.to_string())
        }
        other => pem_error(what, other),
    })
}

/// Builds the configuration of TLS clients: verification on, `webpki-roots`, TLS 1.2+1.3,
/// SNI, session resumption, key exchange X25519 first (then P-256, P-384).
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::tls::TlsClientBuilder;
///
/// let config = TlsClientBuilder::new().alpn(&[b"http/1.1"]).build()?;
/// assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
/// assert!(config.enable_sni);
/// # Ok::<(), ropewalk_reactor::tls::TlsConfigError>(())
/// ```
pub struct TlsClientBuilder {
    roots: RootCertStore,
    alpn: Vec<Vec<u8>>,
    verify: bool,
    /// The certificate chain and key presented to servers that ask for one.
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl fmt::Debug for TlsClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClientBuilder")
            .field("roots", &self.roots.len())
            .field("alpn", &self.alpn)
            .field("verify", &self.verify)
            .field("identity", &self.identity.as_ref().map(|(c, _)| c.len()))
            .finish()
    }
}

impl Default for TlsClientBuilder {
    fn default() -> Self {
        TlsClientBuilder::new()
    }
}

impl TlsClientBuilder {
    /// Verification on, trusting the Mozilla roots of `webpki-roots`; no ALPN.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = ropewalk_reactor::tls::TlsClientBuilder::new().build().unwrap();
    /// assert!(config.alpn_protocols.is_empty());
    /// ```
    pub fn new() -> TlsClientBuilder {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        TlsClientBuilder {
            roots,
            alpn: Vec::new(),
            verify: true,
            identity: None,
        }
    }

    /// Trusts no built-in root: only those added (a private CA).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::tls::TlsClientBuilder;
    /// // With no root at all, building fails: nothing could be verified.
    /// assert!(TlsClientBuilder::new().without_default_roots().build().is_err());
    /// ```
    pub fn without_default_roots(mut self) -> TlsClientBuilder {
        self.roots = RootCertStore::empty();
        self
    }

    /// Also trusts every CA certificate in the PEM file at `path` (curl's `--cacert`).
    ///
    /// # Errors
    ///
    /// [`TlsConfigError`] if the file cannot be read, holds no certificate or a bad one.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::tls::TlsClientBuilder;
    /// let e = TlsClientBuilder::new().add_root_pem_file("/nonexistent/ca.pem").unwrap_err();
    /// assert!(e.to_string().contains("/nonexistent/ca.pem"));
    /// ```
    pub fn add_root_pem_file(self, path: impl AsRef<Path>) -> Result<Self, TlsConfigError> {
        let certs = certs_from_file(path.as_ref())?;
        self.add_roots(certs)
    }

    /// Also trusts every CA certificate in `pem` (PEM text).
    ///
    /// # Errors
    ///
    /// [`TlsConfigError`] if it holds no certificate or a bad one.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::tls::{TlsClientBuilder, TlsConfigError};
    /// let e = TlsClientBuilder::new().add_root_pem(b"not pem").unwrap_err();
    /// assert!(matches!(e, TlsConfigError::NoCertificate(_)));
    /// ```
    pub fn add_root_pem(self, pem: &[u8]) -> Result<Self, TlsConfigError> {
        let certs = certs_from_pem(pem, "CA certificate")?;
        self.add_roots(certs)
    }

    fn add_roots(mut self, certs: Vec<CertificateDer<'static>>) -> Result<Self, TlsConfigError> {
        for cert in certs {
            self.roots.add(cert).map_err(TlsConfigError::Rustls)?;
        }
        Ok(self)
    }

    /// Presents this certificate chain (leaf first, PEM) and private key (PEM) to a
    /// server that asks for a client certificate (mutual TLS).
    ///
    /// # Errors
    ///
    /// [`TlsConfigError`] if either holds nothing usable.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::tls::{TlsClientBuilder, TlsConfigError};
    /// let e = TlsClientBuilder::new().client_certificate(b"", b"").unwrap_err();
    /// assert!(matches!(e, TlsConfigError::NoCertificate(_)));
    /// ```
    pub fn client_certificate(mut self, cert: &[u8], key: &[u8]) -> Result<Self, TlsConfigError> {
        self.identity = Some((
            certs_from_pem(cert, "client certificate")?,
            key_from_pem(key, "client private key")?,
        ));
        Ok(self)
    }

    /// Offers these ALPN protocols, in order of preference (`b"h2"`, `b"http/1.1"`...).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = ropewalk_reactor::tls::TlsClientBuilder::new().alpn(&[b"imap"]);
    /// assert_eq!(b.build().unwrap().alpn_protocols, vec![b"imap".to_vec()]);
    /// ```
    pub fn alpn(mut self, protocols: &[&[u8]]) -> TlsClientBuilder {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Accepts **any** certificate for **any** name: a man in the middle reads and changes
    /// everything. For tests against a throw-away certificate only; a real client adds the
    /// test CA with [`add_root_pem_file`](Self::add_root_pem_file) instead. The peer's
    /// handshake signatures are still checked.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = ropewalk_reactor::tls::TlsClientBuilder::new()
    ///     .dangerous_accept_any_certificate_for_tests();
    /// assert!(b.build().is_ok());
    /// ```
    pub fn dangerous_accept_any_certificate_for_tests(mut self) -> TlsClientBuilder {
        log::warn!("TLS certificate verification is OFF: for tests only");
        self.verify = false;
        self
    }

    /// The configuration, to share among connections.
    ///
    /// # Errors
    ///
    /// [`TlsConfigError::Rustls`] if verification is on and no root is trusted.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = ropewalk_reactor::tls::TlsClientBuilder::new().build()?;
    /// # let _ = config;
    /// # Ok::<(), ropewalk_reactor::tls::TlsConfigError>(())
    /// ```
    pub fn build(self) -> Result<Arc<ClientConfig>, TlsConfigError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(VERSIONS)
            .map_err(TlsConfigError::Rustls)?;
        let builder = if self.verify {
            if self.roots.is_empty() {
                return Err(TlsConfigError::Rustls(rustls::Error::General(
                    "no trusted root certificate".into(),
                )));
            }
            builder.with_root_certificates(self.roots)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        };
        let mut config = match self.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(TlsConfigError::Rustls)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn;
        Ok(Arc::new(config))
    }
}

/// The verifier of [`TlsClientBuilder::dangerous_accept_any_certificate_for_tests`]: any
/// certificate, any name; signatures still checked.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Builds the configuration of a TLS server from its certificate chain and private key
/// (PEM): TLS 1.2+1.3, no client certificates unless
/// [required](TlsServerBuilder::require_client_certificates), a session cache for resumption.
/// Key exchange prefers X25519, then P-256, then P-384.
///
/// # Examples
///
/// ```no_run
/// use ropewalk_reactor::tls::TlsServerBuilder;
///
/// let config = TlsServerBuilder::from_pem_files("cert.pem", "key.pem")?
///     .alpn(&[b"http/1.1"])
///     .build()?;
/// # Ok::<(), ropewalk_reactor::tls::TlsConfigError>(())
/// ```
pub struct TlsServerBuilder {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: Vec<Vec<u8>>,
    /// The CAs a client certificate must come from, when one is required.
    client_roots: Option<RootCertStore>,
}

impl fmt::Debug for TlsServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("TlsServerBuilder")
            .field("chain", &self.chain.len())
            .field("alpn", &self.alpn)
            .field("client_roots", &self.client_roots.as_ref().map(|r| r.len()))
            .finish_non_exhaustive()
    }
}

impl TlsServerBuilder {
    /// The certificate chain (leaf first) from `cert` and the private key (PKCS#8, PKCS#1
    /// or SEC1) from `key`, both PEM files.
    ///
    /// # Errors
    ///
    /// [`TlsConfigError`] naming the file that cannot be read or holds nothing usable.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::tls::TlsServerBuilder;
    /// assert!(TlsServerBuilder::from_pem_files("/nonexistent/c.pem", "/nonexistent/k.pem").is_err());
    /// ```
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<TlsServerBuilder, TlsConfigError> {
        let chain = certs_from_file(cert.as_ref())?;
        let key = key.as_ref();
        let bytes = std::fs::read(key).map_err(|source| TlsConfigError::Read {
            path: key.to_path_buf(),
            source,
        })?;
        let key = key_from_pem(&bytes, &key.display().to_string())?;
        Ok(TlsServerBuilder {
            chain,
            key,
            alpn: Vec::new(),
            client_roots: None,
        })
    }

    /// As [`from_pem_files`](Self::from_pem_files), from PEM text.
    ///
    /// # Errors
    ///
    /// [`TlsConfigError`] if either holds nothing usable.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::tls::{TlsConfigError, TlsServerBuilder};
    /// let e = TlsServerBuilder::from_pem(b"", b"").unwrap_err();
    /// assert!(matches!(e, TlsConfigError::NoCertificate(_)));
    /// ```
    pub fn from_pem(cert: &[u8], key: &[u8]) -> Result<TlsServerBuilder, TlsConfigError> {
        Ok(TlsServerBuilder {
            chain: certs_from_pem(cert, "certificate")?,
            key: key_from_pem(key, "private key")?,
            alpn: Vec::new(),
            client_roots: None,
        })
    }

    /// Accepts these ALPN protocols, in order of preference; a client that offers ALPN
    /// and none of them is refused ([`TlsError::NoCommonProtocol`](super::TlsError)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use ropewalk_reactor::tls::TlsServerBuilder;
    /// let b = TlsServerBuilder::from_pem_files("cert.pem", "key.pem")?.alpn(&[b"http/1.1"]);
    /// # Ok::<(), ropewalk_reactor::tls::TlsConfigError>(())
    /// ```
    pub fn alpn(mut self, protocols: &[&[u8]]) -> TlsServerBuilder {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Requires every client to present a certificate issued by a CA in `ca_pem` (PEM;
    /// mutual TLS): a client without one, or with another CA's, is refused during the
    /// handshake, and its protocol is never made. The client's chain is then in
    /// [`TlsInfo::peer_certificates`](super::TlsInfo).
    ///
    /// # Errors
    ///
    /// [`TlsConfigError`] if `ca_pem` holds no certificate or a bad one.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use ropewalk_reactor::tls::TlsServerBuilder;
    /// let config = TlsServerBuilder::from_pem_files("cert.pem", "key.pem")?
    ///     .require_client_certificates(&std::fs::read("clients-ca.pem").unwrap())?
    ///     .build()?;
    /// # Ok::<(), ropewalk_reactor::tls::TlsConfigError>(())
    /// ```
    pub fn require_client_certificates(mut self, ca_pem: &[u8]) -> Result<Self, TlsConfigError> {
        let mut roots = self
            .client_roots
            .take()
            .unwrap_or_else(RootCertStore::empty);
        for cert in certs_from_pem(ca_pem, "client CA certificate")? {
            roots.add(cert).map_err(TlsConfigError::Rustls)?;
        }
        self.client_roots = Some(roots);
        Ok(self)
    }

    /// The configuration, to share among connections.
    ///
    /// # Errors
    ///
    /// [`TlsConfigError::Rustls`] if the key does not match the certificate or is of an
    /// unsupported type.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use ropewalk_reactor::tls::TlsServerBuilder;
    /// let config = TlsServerBuilder::from_pem_files("cert.pem", "key.pem")?.build()?;
    /// # Ok::<(), ropewalk_reactor::tls::TlsConfigError>(())
    /// ```
    pub fn build(self) -> Result<Arc<ServerConfig>, TlsConfigError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(TlsConfigError::Rustls)?;
        let builder = match self.client_roots {
            Some(roots) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|e| {
                            TlsConfigError::Rustls(rustls::Error::General(e.to_string()))
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(self.chain, self.key)
            .map_err(TlsConfigError::Rustls)?;
        config.alpn_protocols = self.alpn;
        Ok(Arc::new(config))
    }
}
