//! TLS configurations from the test PKI of `ropewalk_testkit::pki` (made at test time: no
//! private key is checked in).

use std::sync::Arc;

use ropewalk_reactor::tls::{rustls, TlsClientBuilder, TlsServerBuilder};
pub use ropewalk_testkit::pki::{Leaf, TestCa};

/// A client configuration that trusts `ca` only.
pub fn client(ca: &TestCa) -> Arc<rustls::ClientConfig> {
    TlsClientBuilder::new()
        .without_default_roots()
        .add_root_pem(ca.pem().as_bytes())
        .unwrap()
        .build()
        .unwrap()
}

/// A server configuration with `leaf`.
pub fn server(leaf: &Leaf) -> Arc<rustls::ServerConfig> {
    TlsServerBuilder::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap()
}

/// A CA, and a server configuration for `localhost` and `127.0.0.1` signed by it.
pub fn pki() -> (TestCa, Arc<rustls::ServerConfig>) {
    let ca = TestCa::new();
    let server = server(&ca.leaf(&["localhost", "127.0.0.1"]));
    (ca, server)
}
