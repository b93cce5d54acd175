//! Reaching a node: its URL, the CA certificate it is verified by, and a
//! credential, from flags, the environment, or the node's own config file.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use tallytree_node::config::Config;
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};

use crate::init::OPERATOR_TOKEN_FILE;

/// Where the node is and how to authenticate to it.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// The node's gRPC URL, e.g. https://10.0.0.2:7400.
    #[arg(long, env = "TALLYTREE_NODE", global = true)]
    pub node: Option<String>,
    /// The node's CA certificate (its ca.pem), to verify the node by.
    #[arg(long, env = "TALLYTREE_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// A credential of the node (tallytree token add): operator, reader or auditor.
    #[arg(long, env = "TALLYTREE_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Take the URL, CA and operator token from this node's config and the
    /// files `tallytree init` wrote beside it.
    #[arg(long, env = "TALLYTREE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

/// Where a node is, how to verify it, and what to present.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its URL.
    pub url: String,
    /// Its CA certificate (PEM); none for a plaintext node.
    pub ca_pem: Option<String>,
    /// The credential.
    pub token: Option<String>,
}

impl Target {
    /// Connects, attaching the token when there is one.
    pub async fn connect(&self) -> Result<Authed> {
        let mut endpoint = Endpoint::from_shared(self.url.clone())
            .with_context(|| format!("--node {}: not a valid URL", self.url))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .tcp_nodelay(true);
        if let Some(ca) = &self.ca_pem {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
                .context("TLS setup")?;
        }
        let channel = endpoint.connect().await.map_err(|e| {
            let cause = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            anyhow::anyhow!("cannot reach the node at {}{cause}", self.url)
        })?;
        if self.ca_pem.is_none() {
            // Plaintext is a node's explicit choice; a node serving TLS
            // answers a plaintext client with a broken HTTP/2 stream, which
            // says nothing to a person. Ask who answers first.
            let probe = tallytree_proto::pb::node_client::NodeClient::new(channel.clone())
                .identity(tallytree_proto::pb::IdentityRequest {})
                .await;
            if let Err(status) = probe
                && status.code() != tonic::Code::Unimplemented
            {
                bail!(
                    "cannot reach the node at {} over plaintext ({}): nodes serve TLS unless tls.plaintext is set; use --node https://... with --ca-file, or --config NODE.toml",
                    self.url,
                    status.message()
                );
            }
        }
        let bearer = self
            .token
            .as_ref()
            .map(|t| {
                format!("Bearer {t}")
                    .parse()
                    .context("--token: must be printable ASCII")
            })
            .transpose()?;
        Ok(InterceptedService::new(channel, Bearer(bearer)))
    }
}

/// Adds the operator token to every call.
#[derive(Clone, Debug)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert("authorization", v.clone());
        }
        Ok(request)
    }
}

/// A channel with the token attached.
pub type Authed = InterceptedService<Channel, Bearer>;

impl Conn {
    /// The node to reach, from flags, the environment and `--config`.
    pub fn target(&self) -> Result<Target> {
        let from_config = match &self.config {
            Some(path) => Some((Config::load(path)?, path.clone())),
            None => None,
        };
        let url = match (&self.node, &from_config) {
            (Some(url), _) => url.clone(),
            (None, Some((c, _))) => format!(
                "{}://{}",
                if c.tls.plaintext { "http" } else { "https" },
                c.served_address()
                    .context("--config: where does the node listen?")?
            ),
            (None, None) => {
                bail!("no node given: pass --node URL (or TALLYTREE_NODE), or --config NODE.toml")
            }
        };
        let ca_pem = if url.starts_with("https://") {
            let path = match (&self.ca_file, &from_config) {
                (Some(p), _) => p.clone(),
                (None, Some((c, _))) => c.tls.ca_file.clone(),
                (None, None) => bail!(
                    "--ca-file: required for {url} (the node's CA certificate, its ca.pem; or TALLYTREE_CA_FILE)"
                ),
            };
            Some(
                std::fs::read_to_string(&path)
                    .with_context(|| format!("--ca-file {}: cannot read", path.display()))?,
            )
        } else if url.starts_with("http://") {
            None
        } else {
            bail!(
                "--node {url}: must start with https:// (or http:// for a plaintext node on loopback)"
            )
        };
        let token = match (&self.token, &from_config) {
            (Some(t), _) => Some(t.clone()),
            (None, Some((_, path))) => {
                let file = path
                    .parent()
                    .unwrap_or(std::path::Path::new("."))
                    .join(OPERATOR_TOKEN_FILE);
                std::fs::read_to_string(&file)
                    .ok()
                    .map(|t| t.trim().to_owned())
            }
            (None, None) => None,
        };
        Ok(Target { url, ca_pem, token })
    }

    /// Connects, attaching the token when there is one.
    pub async fn connect(&self) -> Result<Authed> {
        self.target()?.connect().await
    }
}

/// Turns a gRPC status into an error a person can act on.
pub fn explain(status: Status) -> anyhow::Error {
    match status.code() {
        tonic::Code::Unauthenticated => anyhow::anyhow!(
            "{} (pass --token or TALLYTREE_TOKEN; `tallytree token add` at the node makes one)",
            status.message()
        ),
        tonic::Code::Unavailable => anyhow::anyhow!("node unavailable: {}", status.message()),
        // A credential of another role: the node refused the call itself.
        tonic::Code::PermissionDenied => Refused(status.message().to_owned()).into(),
        _ => anyhow::anyhow!("{}", status.message()),
    }
}

/// The node refused what was asked (a row breaks a rule, an enrolment does
/// not verify): exit code 1, as for refused import rows, not 2 (the command
/// could not run).
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// For calls that write: a status by which the node refuses the request
/// itself becomes [`Refused`]; any other (unreachable, unauthenticated, a
/// storage failure) is [`explain`]ed.
pub fn refusal(status: Status) -> anyhow::Error {
    match status.code() {
        tonic::Code::InvalidArgument
        | tonic::Code::FailedPrecondition
        | tonic::Code::AlreadyExists
        | tonic::Code::PermissionDenied
        | tonic::Code::OutOfRange => Refused(status.message().to_owned()).into(),
        _ => explain(status),
    }
}
