//! Reaching a node: its URL and operator token, from flags, the environment,
//! or the node's own config file.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use tallytree_node::config::Config;
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

/// Where the node is and how to authenticate to it.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// The node's gRPC URL, e.g. http://127.0.0.1:7400.
    #[arg(long, env = "TALLYTREE_NODE", global = true)]
    pub node: Option<String>,
    /// Operator token for intake (as in the node's config).
    #[arg(long, env = "TALLYTREE_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Take the URL and token from this node config (e.g. written by `tallytree init`).
    #[arg(long, env = "TALLYTREE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
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
    fn resolve(&self) -> Result<(String, Option<String>)> {
        let from_config = match &self.config {
            Some(path) => Some(Config::load(path)?),
            None => None,
        };
        let url = match (&self.node, &from_config) {
            (Some(url), _) => url.clone(),
            (None, Some(c)) => format!(
                "http://{}",
                c.served_address()
                    .context("--config: where does the node listen?")?
            ),
            (None, None) => {
                bail!("no node given: pass --node URL (or TALLYTREE_NODE), or --config NODE.toml")
            }
        };
        let token = self
            .token
            .clone()
            .or_else(|| from_config.map(|c| c.operator_token));
        Ok((url, token))
    }

    /// Connects, attaching the token when there is one.
    pub async fn connect(&self) -> Result<Authed> {
        let (url, token) = self.resolve()?;
        let endpoint = Endpoint::from_shared(url.clone())
            .with_context(|| format!("--node {url}: not a valid URL"))?
            .connect_timeout(std::time::Duration::from_secs(5));
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot reach the node at {url}"))?;
        let bearer = token
            .map(|t| {
                format!("Bearer {t}")
                    .parse()
                    .context("--token: must be printable ASCII")
            })
            .transpose()?;
        Ok(InterceptedService::new(channel, Bearer(bearer)))
    }
}

/// Turns a gRPC status into an error a person can act on.
pub fn explain(status: Status) -> anyhow::Error {
    match status.code() {
        tonic::Code::Unauthenticated => anyhow::anyhow!(
            "{} (pass --token, TALLYTREE_TOKEN or --config NODE.toml)",
            status.message()
        ),
        tonic::Code::Unavailable => anyhow::anyhow!("node unavailable: {}", status.message()),
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
