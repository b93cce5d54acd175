//! The console's listener: connections after their TLS handshake (bounded
//! in time and number, as the gRPC listener's), or plain TCP on loopback
//! for a node configured `tls.plaintext`.

use std::{net::SocketAddr, sync::Arc};

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};

use crate::tls::server::{HandshakeLimits, incoming};

/// Accepted HTTPS connections, with their peer's address.
#[derive(Debug)]
pub struct ConsoleListener {
    /// Connections after their handshake.
    accepted: ReceiverStream<std::io::Result<TlsStream<TcpStream>>>,
    /// Where it listens.
    local: SocketAddr,
}

impl ConsoleListener {
    /// HTTPS on `listener` with `config`.
    pub fn tls(
        listener: TcpListener,
        config: Arc<ServerConfig>,
        limits: HandshakeLimits,
    ) -> std::io::Result<ConsoleListener> {
        let local = listener.local_addr()?;
        Ok(ConsoleListener {
            accepted: incoming(listener, config, limits),
            local,
        })
    }
}

impl axum::serve::Listener for ConsoleListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.accepted.next().await {
                Some(Ok(tls)) => {
                    let peer = tls
                        .get_ref()
                        .0
                        .peer_addr()
                        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                    return (tls, peer);
                }
                Some(Err(_)) => continue,
                // The accept task ended: nothing more will come.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The client's address, for any of the console's listeners.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl<'a> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, ConsoleListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'a, ConsoleListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

impl<'a> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, TcpListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'a, TcpListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}
