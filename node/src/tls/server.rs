//! The node's TLS server: its certificate (issued by its own CA over a key
//! that lives only in memory, issued again well before it expires), the
//! client certificates it accepts (its own CA's; optional, because
//! operators and readers authenticate by credential, not certificate), and
//! the stream of accepted connections, each handshake bounded in time and in
//! number so that slow or idle clients cannot hold the listener.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use rustls::{
    RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
};
use tallytree_proto::RegionCode;
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

use super::material::{Authority, SERVER_CERT_DAYS, TlsError, TlsKey};
use crate::clock::Clock;

/// The crypto provider every TLS config of the node uses: ring, never
/// aws-lc.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn invalid(what: &str, reason: impl std::fmt::Display) -> TlsError {
    TlsError::Invalid {
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// The server certificate in use, and when to issue the next.
struct Current {
    key: Arc<CertifiedKey>,
    renew_after_ms: i64,
}

/// Issues the node's server certificate, and again once a third of its
/// validity is left.
struct ServerCert {
    ca: Arc<Authority>,
    code: RegionCode,
    names: Vec<String>,
    clock: Clock,
    provider: Arc<CryptoProvider>,
    current: RwLock<Current>,
}

impl std::fmt::Debug for ServerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerCert({})", self.code)
    }
}

impl ServerCert {
    fn new(
        ca: Arc<Authority>,
        code: RegionCode,
        names: Vec<String>,
        clock: Clock,
        provider: Arc<CryptoProvider>,
    ) -> Result<ServerCert, TlsError> {
        let current = issue(&ca, code, &names, clock.now_ms(), &provider)?;
        Ok(ServerCert {
            ca,
            code,
            names,
            clock,
            provider,
            current: RwLock::new(current),
        })
    }
}

fn issue(
    ca: &Authority,
    code: RegionCode,
    names: &[String],
    now_ms: i64,
    provider: &CryptoProvider,
) -> Result<Current, TlsError> {
    let key = TlsKey::generate()?;
    let issued = ca.issue_server(&key, code, names, now_ms)?;
    let signing = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.private_der(),
        )))
        .map_err(|e| invalid("server key", e))?;
    let renew_after_ms = now_ms + SERVER_CERT_DAYS * 86_400_000 * 2 / 3;
    Ok(Current {
        key: Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(issued.cert_der)],
            signing,
        )),
        renew_after_ms,
    })
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let now = self.clock.now_ms();
        {
            let current = self.current.read().unwrap_or_else(|e| e.into_inner());
            if now < current.renew_after_ms {
                return Some(current.key.clone());
            }
        }
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if now >= current.renew_after_ms {
            match issue(&self.ca, self.code, &self.names, now, &self.provider) {
                Ok(next) => {
                    debug!("server certificate issued again");
                    *current = next;
                }
                Err(e) => warn!(error = %e, "cannot issue the server certificate again"),
            }
        }
        Some(current.key.clone())
    }
}

/// The node's rustls server configuration: its server certificate, and
/// client certificates of its own CA accepted but not required.
pub fn server_config(
    ca: Arc<Authority>,
    code: RegionCode,
    names: Vec<String>,
    clock: Clock,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    for cert in rustls_pem(ca.cert_pem())? {
        roots
            .add(cert)
            .map_err(|e| invalid("tls.ca_file", format!("not a usable CA certificate ({e})")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| invalid("tls.ca_file", e))?;
    let resolver = ServerCert::new(ca, code, names, clock, provider.clone())?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("tls", e))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The console's rustls configuration: the same kind of server certificate,
/// issued by the node's CA; no client certificates (people log in with
/// their credential); HTTP/2 or HTTP/1.1, as browsers choose.
pub fn console_config(
    ca: Arc<Authority>,
    code: RegionCode,
    names: Vec<String>,
    clock: Clock,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let resolver = ServerCert::new(ca, code, names, clock, provider.clone())?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("tls", e))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates in a PEM text.
pub fn rustls_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| invalid("certificate", format!("not PEM ({e})")))?;
    if certs.is_empty() {
        return Err(invalid("certificate", "no CERTIFICATE block"));
    }
    Ok(certs)
}

/// Limits on connections that have not finished their TLS handshake.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeLimits {
    /// A handshake not finished in this time is dropped.
    pub timeout: Duration,
    /// At most this many handshakes run at once; further connections wait
    /// in the kernel's accept queue.
    pub concurrent: usize,
}

/// Accepted connections with Nagle's algorithm off (gRPC answers are small
/// and must not wait for delayed ACKs), after their TLS handshake. Each
/// handshake runs in its own task: one slow client never holds the others.
/// Ends when the receiving end (the server) is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    limits: HandshakeLimits,
) -> ReceiverStream<std::io::Result<TlsStream<tokio::net::TcpStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(limits.concurrent.max(1));
    let acceptor = TlsAcceptor::from(config);
    let permits = Arc::new(Semaphore::new(limits.concurrent.max(1)));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                a = listener.accept() => a,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(limits.timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
