//! What the helpers of the single-node tests (`common`) and of the
//! federation tests (`fed`) share: a unit's TLS material and credentials
//! file, how a client reaches a node (TLS verified against the unit's CA,
//! a token attached per service), and a node served in-process.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use tallytree_node::{Node, NodeError, config::Config};
use tallytree_proto::Digest;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{
    Request, Status,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};

/// Longest a node may take to stop.
const STOP_WAIT: Duration = Duration::from_secs(30);

/// The token of the operator credential every test unit holds.
pub(crate) const OPERATOR_TOKEN: &str = "tt_test-operator-token";
/// The token of the reader credential every test unit holds.
pub(crate) const READER_TOKEN: &str = "tt_test-reader-token";
/// The token of the auditor credential every test unit holds.
pub(crate) const AUDITOR_TOKEN: &str = "tt_test-auditor-token";
/// The three credentials of a test unit: name, role and token.
pub(crate) const CREDENTIALS: [(&str, &str, &str); 3] = [
    ("operator", "operator", OPERATOR_TOKEN),
    ("reader", "reader", READER_TOKEN),
    ("auditor", "auditor", AUDITOR_TOKEN),
];

/// Points `config`'s TLS files and credentials file into `dir`.
pub(crate) fn place_in(config: &mut Config, dir: &Path) {
    config.tls.key_file = dir.join("tls.key");
    config.tls.ca_key_file = dir.join("ca.key");
    config.tls.ca_file = dir.join("ca.pem");
    config.access.credentials_file = dir.join("credentials.toml");
}

/// Writes the files `config` names: the unit's TLS key and CA, and a
/// credentials file holding the hashes of the three test tokens. Returns
/// the certificate request of the unit's TLS key, for its parent.
pub(crate) fn provision(config: &Config) -> String {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let csr = config
        .tls
        .files()
        .create(config.region, &config.name, now_ms)
        .expect("TLS key and CA written");
    let mut text = String::new();
    for (name, role, token) in CREDENTIALS {
        text.push_str(&format!(
            "[[credential]]\nname = \"{name}\"\nrole = \"{role}\"\ntoken_sha256 = \"{}\"\ncreated = \"2026-01-01T00:00:00Z\"\n\n",
            Digest::of(token.as_bytes()).to_hex()
        ));
    }
    std::fs::write(&config.access.credentials_file, text).expect("credentials written");
    csr
}

/// Attaches `authorization: Bearer <token>` to every call that does not
/// carry an `authorization` header of its own.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bearer(pub(crate) &'static str);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if !request.metadata().contains_key("authorization") {
            let value = format!("Bearer {}", self.0).parse().expect("ascii token");
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// A channel whose calls carry a token.
pub(crate) type Authed = InterceptedService<Channel, Bearer>;

/// How a client reaches a unit's node: its address and the unit's CA
/// certificate, which the node's server certificate must chain to.
#[derive(Clone, Debug)]
pub(crate) struct Remote {
    /// Where the node listens.
    pub(crate) addr: SocketAddr,
    /// The unit's CA certificate, PEM.
    ca_pem: Arc<str>,
}

impl Remote {
    /// The node of the unit whose CA certificate is `ca_pem`, at `addr`.
    pub(crate) fn new(addr: SocketAddr, ca_pem: &str) -> Remote {
        Remote {
            addr,
            ca_pem: ca_pem.into(),
        }
    }

    /// The same node reached at another address (a relay).
    pub(crate) fn via(&self, addr: SocketAddr) -> Remote {
        Remote {
            addr,
            ca_pem: self.ca_pem.clone(),
        }
    }

    /// The unit's CA certificate, PEM.
    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// An `https://` endpoint verifying the node against the unit's CA.
    pub(crate) fn endpoint(&self) -> Endpoint {
        self.endpoint_with(self.tls())
    }

    /// An `https://` endpoint to the node with `tls` (e.g. [`Remote::tls`]
    /// with a client certificate).
    pub(crate) fn endpoint_with(&self, tls: ClientTlsConfig) -> Endpoint {
        Endpoint::from_shared(format!("https://{}", self.addr))
            .expect("valid url")
            .connect_timeout(Duration::from_secs(2))
            .tls_config(tls)
            .expect("TLS config")
    }

    /// The client TLS config: the node verified against the unit's CA, no
    /// client certificate.
    pub(crate) fn tls(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&*self.ca_pem))
    }

    /// A lazily connected channel without a credential: calls fail
    /// (UNAVAILABLE) while nothing listens and succeed again once the node
    /// does.
    pub(crate) fn channel(&self) -> Channel {
        self.endpoint().connect_lazy()
    }

    /// A lazily connected channel whose calls carry `token`.
    pub(crate) fn with_token(&self, token: &'static str) -> Authed {
        InterceptedService::new(self.channel(), Bearer(token))
    }
}

/// A node served in-process; stopped gracefully by [`Running::stop`], told
/// to stop when dropped.
pub(crate) struct Running {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// How clients reach it.
    remote: Remote,
    /// Resolves the node's shutdown future.
    stop: Option<oneshot::Sender<()>>,
    /// The serving task.
    task: Option<JoinHandle<Result<(), NodeError>>>,
}

impl Running {
    /// Serves `node` on `listener` in a task; its unit's CA certificate is
    /// `ca_pem`.
    pub(crate) fn spawn(node: Node, listener: TcpListener, ca_pem: &str) -> Running {
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(node.run(listener, async {
            let _ = stopped.await;
        }));
        Running {
            addr,
            remote: Remote::new(addr, ca_pem),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// How clients reach this node.
    pub(crate) fn remote(&self) -> Remote {
        self.remote.clone()
    }

    /// Shuts down gracefully and waits until the node has stopped (and its
    /// store is closed).
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(STOP_WAIT, task)
                .await
                .expect("node stops in time")
                .expect("node task")
                .expect("node ran without error");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
