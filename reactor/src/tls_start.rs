//! What [`Transport::start_tls`](crate::Transport::start_tls) is asked: [`StartTls`], which
//! side of a handshake with which configuration. Apart from `tls/` so that the transport
//! interface (`protocol.rs`) can name it without importing the TLS transports.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

use crate::tls_error::TlsError;

/// The default handshake timeout (of [`TlsOptions`](crate::tls::TlsOptions) and
/// [`StartTls`]): 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which side of the handshake [`Transport::start_tls`](crate::Transport::start_tls) takes, with what configuration.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::tls::{StartTls, TlsClientBuilder};
///
/// let tls = StartTls::client(TlsClientBuilder::new().build()?, "mail.example.com");
/// assert!(matches!(tls, StartTls::Client { .. }));
/// # Ok::<(), ropewalk_reactor::tls::TlsConfigError>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum StartTls {
    /// The client side, verifying the server named `server_name`.
    Client {
        /// The client configuration.
        config: Arc<ClientConfig>,
        /// The server's name, which its certificate must match (also sent as SNI).
        server_name: String,
        /// How long the handshake may take (default 10 s).
        handshake_timeout: Duration,
    },
    /// The server side.
    Server {
        /// The server configuration.
        config: Arc<ServerConfig>,
        /// How long the handshake may take (default 10 s).
        handshake_timeout: Duration,
    },
}

impl StartTls {
    /// The client side, to `server_name`, with the default handshake timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::tls::{StartTls, TlsClientBuilder};
    /// let tls = StartTls::client(TlsClientBuilder::new().build()?, "imap.example.com");
    /// # Ok::<(), ropewalk_reactor::tls::TlsConfigError>(())
    /// ```
    pub fn client(config: Arc<ClientConfig>, server_name: &str) -> StartTls {
        StartTls::Client {
            config,
            server_name: server_name.to_string(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// The server side, with the default handshake timeout.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use ropewalk_reactor::tls::{StartTls, TlsServerBuilder};
    /// let tls = StartTls::server(TlsServerBuilder::from_pem_files("cert.pem", "key.pem")?.build()?);
    /// # Ok::<(), ropewalk_reactor::tls::TlsConfigError>(())
    /// ```
    pub fn server(config: Arc<ServerConfig>) -> StartTls {
        StartTls::Server {
            config,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// The rustls connection it asks for, and its handshake timeout.
    pub(crate) fn connection(self) -> Result<(rustls::Connection, Duration), TlsError> {
        match self {
            StartTls::Client {
                config,
                server_name,
                handshake_timeout,
            } => {
                let name = ServerName::try_from(server_name.clone())
                    .map_err(|_| TlsError::InvalidServerName(server_name))?;
                let c = ClientConnection::new(config, name)?;
                Ok((c.into(), handshake_timeout))
            }
            StartTls::Server {
                config,
                handshake_timeout,
            } => Ok((ServerConnection::new(config)?.into(), handshake_timeout)),
        }
    }
}

impl fmt::Debug for StartTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartTls::Client { server_name, .. } => f
                .debug_struct("StartTls::Client")
                .field("server_name", server_name)
                .finish_non_exhaustive(),
            StartTls::Server { .. } => f.debug_struct("StartTls::Server").finish_non_exhaustive(),
        }
    }
}
