//! What the configurations of `TlsServerBuilder` and `TlsClientBuilder` negotiate, checked
//! with a handshake in memory (rustls to rustls, no socket).

mod support;

use std::sync::Arc;

#[allow(deprecated)] // ring's provider, which the builders use too
use ropewalk_reactor::tls::rustls::crypto::ring::{default_provider, kx_group};
use ropewalk_reactor::tls::rustls::pki_types::pem::PemObject;
use ropewalk_reactor::tls::rustls::pki_types::{CertificateDer, ServerName};
use ropewalk_reactor::tls::rustls::{
    self, ClientConfig, ClientConnection, NamedGroup, ServerConnection,
};
use support::tls::{client, pki};

/// Runs the handshake between `client` and `server` in memory, to its end.
fn handshake(client: &mut ClientConnection, server: &mut ServerConnection) {
    for _ in 0..10 {
        if !client.is_handshaking() && !server.is_handshaking() {
            return;
        }
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        let mut rest = &wire[..];
        while !rest.is_empty() {
            server.read_tls(&mut rest).unwrap();
            server.process_new_packets().unwrap();
        }
        let mut wire = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut wire).unwrap();
        }
        let mut rest = &wire[..];
        while !rest.is_empty() {
            client.read_tls(&mut rest).unwrap();
            client.process_new_packets().unwrap();
        }
    }
    panic!("no end to the handshake in 10 round trips");
}

fn connect(
    client_config: Arc<ClientConfig>,
    server_config: Arc<rustls::ServerConfig>,
) -> NamedGroup {
    let name = ServerName::try_from("localhost").unwrap();
    let mut c = ClientConnection::new(client_config, name).unwrap();
    let mut s = ServerConnection::new(server_config).unwrap();
    handshake(&mut c, &mut s);
    let group = c.negotiated_key_exchange_group().expect("a group").name();
    assert_eq!(
        s.negotiated_key_exchange_group().map(|g| g.name()),
        Some(group)
    );
    group
}

#[test]
fn builders_negotiate_x25519() {
    // ring's own order puts P-384 first, ten times the CPU of X25519 per handshake.
    let (ca, server) = pki();
    assert_eq!(connect(client(&ca), server), NamedGroup::X25519);
}

#[test]
#[allow(deprecated)] // ring's provider, which the builders use too
fn a_client_that_offers_only_p384_still_gets_it() {
    let (ca, server) = pki();
    let mut provider = default_provider();
    provider.kx_groups = vec![kx_group::SECP384R1];
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    assert_eq!(connect(Arc::new(config), server), NamedGroup::secp384r1);
}
