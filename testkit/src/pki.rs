//! A throw-away PKI made at test time, so that no private key is checked in: a CA, and
//! the leaf certificates it signs, as PEM.
//!
//! # Examples
//!
//! ```
//! use ropewalk_testkit::pki::TestCa;
//!
//! let ca = TestCa::new();
//! let leaf = ca.leaf(&["localhost", "127.0.0.1"]);
//! assert!(ca.pem().starts_with("-----BEGIN CERTIFICATE-----"));
//! assert!(leaf.key_pem.contains("PRIVATE KEY"));
//! ```

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A certificate authority that signs leaf certificates.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// A leaf certificate and its private key, as PEM.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// A number of its own for each CA of the process: two CAs with one name would look like
/// one CA whose signatures do not verify, not like an unknown one.
fn serial() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

impl TestCa {
    /// A new CA, with a name of its own.
    ///
    /// # Panics
    ///
    /// If key generation fails (it does not, with *ring*).
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(
            DnType::CommonName,
            format!("ropewalk test CA {} {}", std::process::id(), serial()),
        );
        let key = KeyPair::generate().expect("key generation");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-signed CA");
        TestCa { issuer }
    }

    /// The CA's certificate, as PEM (what a client trusts).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `names` (DNS names or IP addresses), valid until 4096.
    ///
    /// # Panics
    ///
    /// If a name is neither a DNS name nor an IP address.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |_| {})
    }

    /// A certificate for `names` that expired in 2001.
    ///
    /// # Panics
    ///
    /// As [`leaf`](Self::leaf).
    pub fn expired_leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |p| {
            p.not_before = date_time_ymd(2000, 1, 1);
            p.not_after = date_time_ymd(2001, 1, 1);
        })
    }

    fn leaf_with(&self, names: &[&str], edit: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("valid names");
        edit(&mut params);
        let key = KeyPair::generate().expect("key generation");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Leaf {
    /// Writes the certificate and key to `cert.pem` and `key.pem` in `dir`; their paths.
    ///
    /// # Errors
    ///
    /// If a file cannot be written.
    pub fn write_to(
        &self,
        dir: &std::path::Path,
    ) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, &self.cert_pem)?;
        std::fs::write(&key, &self.key_pem)?;
        Ok((cert, key))
    }
}
