//! A throw-away PKI made at test time (no private key is checked in): a CA, and leaf
//! certificates it signs.

use std::sync::Arc;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair,
    KeyUsagePurpose,
};
use ropewalk_reactor::tls::{rustls, TlsClientBuilder, TlsServerBuilder};

/// A number of its own for each CA of the process: CAs with one name would look like one
/// CA whose signatures do not verify, not like an unknown one.
fn serial() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A CA that signs leaf certificates.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, as PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("ropewalk test CA {}", serial()),
        );
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `names` (DNS names or IP addresses).
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |_| {})
    }

    /// A certificate for `names` that expired in 2001.
    pub fn expired_leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |p| {
            p.not_before = date_time_ymd(2000, 1, 1);
            p.not_after = date_time_ymd(2001, 1, 1);
        })
    }

    fn leaf_with(&self, names: &[&str], edit: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        edit(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A client configuration that trusts this CA only.
    pub fn client(&self) -> Arc<rustls::ClientConfig> {
        TlsClientBuilder::new()
            .without_default_roots()
            .add_root_pem(self.pem().as_bytes())
            .unwrap()
            .build()
            .unwrap()
    }
}

impl Leaf {
    pub fn server(&self) -> Arc<rustls::ServerConfig> {
        TlsServerBuilder::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes())
            .unwrap()
            .build()
            .unwrap()
    }
}

/// A CA, and a server configuration for `localhost` and `127.0.0.1` signed by it.
pub fn pki() -> (TestCa, Arc<rustls::ServerConfig>) {
    let ca = TestCa::new();
    let server = ca.leaf(&["localhost", "127.0.0.1"]).server();
    (ca, server)
}
