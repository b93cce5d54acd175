//! `tallytree root init|rotate|show`: the top unit's root of trust.
//!
//! Version 1 (`root init`) names the keys that sign roots, how many of them
//! must sign, and the key the top unit's node signs with; auditors pin its
//! file once (`audit verify --trust root-1.json`). A rotation (`root
//! rotate`) signs version N+1 with a threshold of version N's keys and all
//! of its own, and may name a new node key (the `node.key.next` of
//! `rotate-key`), to which the node switches when the root is installed.
//! Every evidence bundle and proof carries the chain, so an auditor who
//! pinned version 1 verifies evidence signed under any later root.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tallytree_aggregator::root::{RootView, sign_root};
use tallytree_node::config::Config;
use tallytree_proto::{
    PublicKey, SigningKey,
    envelope::DsseJson,
    pb::{self, enrolments_client::EnrolmentsClient, node_client::NodeClient},
};

use crate::conn::{Conn, refusal};

/// A root to sign.
#[derive(Debug, Clone)]
pub struct RootArgs {
    /// Private key files that sign as the new root's keys (none: the
    /// node's key for version 1, the previous root's keys for a rotation).
    pub keys: Vec<PathBuf>,
    /// Private key files of the previous root's keys (rotation only).
    pub sign_with: Vec<PathBuf>,
    /// How many of the new root's keys must sign its successor.
    pub threshold: Option<u32>,
    /// The node key the root names (a public key file); default: the
    /// node's current key.
    pub node_key: Option<PathBuf>,
    /// Days until the root may no longer be the latest.
    pub expires_days: Option<u32>,
    /// Where to write the root.
    pub output: PathBuf,
}

fn load_keys(files: &[PathBuf]) -> Result<Vec<SigningKey>> {
    files
        .iter()
        .map(|f| SigningKey::load(f).with_context(|| format!("{}", f.display())))
        .collect()
}

fn config(conn: &Conn) -> Result<Config> {
    let path = conn
        .config
        .as_deref()
        .context("root needs --config NODE.toml of the top unit")?;
    Ok(Config::load(path)?)
}

/// The node's current roots, oldest first.
async fn chain(conn: &Conn) -> Result<Vec<pb::Envelope>> {
    let mut client = NodeClient::new(conn.connect().await?);
    Ok(client
        .roots(pb::RootsRequest {})
        .await
        .map_err(refusal)?
        .into_inner()
        .roots)
}

/// Signs the next root (version 1 when the node has none), installs it at
/// the node and writes it to `args.output`; returns it.
pub async fn sign_and_install(conn: &Conn, args: &RootArgs) -> Result<RootView> {
    let config = config(conn)?;
    let held = chain(conn).await?;
    let previous = match held.last() {
        Some(env) => Some((RootView::from_envelope(env)?, env.clone())),
        None => None,
    };
    if previous.is_none() && !args.sign_with.is_empty() {
        bail!(
            "--sign-with: the node holds no root yet; `root init` signs version 1 with its own keys"
        );
    }
    if previous.is_some() && args.sign_with.is_empty() {
        bail!(
            "--sign-with: a rotation is signed by a threshold of the previous root's keys (their private key files)"
        );
    }
    let node_key = match &args.node_key {
        Some(f) => PublicKey::load(f)?,
        None => SigningKey::load(&config.key_file)?.public_key(),
    };
    let old_signers = load_keys(&args.sign_with)?;
    let new_signers = match (&previous, args.keys.is_empty()) {
        (_, false) => load_keys(&args.keys)?,
        (None, true) => vec![SigningKey::load(&config.key_file)?],
        // The previous root's keys sign as the new root's own as well.
        (Some(_), true) => Vec::new(),
    };
    let new_keys: Vec<PublicKey> = if new_signers.is_empty() {
        previous
            .as_ref()
            .map(|(p, _)| p.keys.clone())
            .unwrap_or_default()
    } else {
        new_signers.iter().map(SigningKey::public_key).collect()
    };
    let keep_threshold = match (&previous, args.keys.is_empty()) {
        (Some((p, _)), true) => p.threshold,
        _ => 1,
    };
    let threshold = args.threshold.unwrap_or(keep_threshold);
    let now = chrono::Utc::now().timestamp_millis();
    let root = pb::Root {
        region: config.region.to_string(),
        name: config.name.clone(),
        version: previous.as_ref().map_or(1, |(p, _)| p.version + 1),
        keys: new_keys.iter().map(|k| k.0.to_vec()).collect(),
        threshold,
        node_key: node_key.0.to_vec(),
        issued_at_ms: now,
        expires_ms: args
            .expires_days
            .map_or(0, |d| now + i64::from(d) * 86_400_000),
    };
    let mut signers: Vec<&SigningKey> = old_signers.iter().collect();
    for k in &new_signers {
        if !signers.iter().any(|s| s.public_key() == k.public_key()) {
            signers.push(k);
        }
    }
    let env = sign_root(&root, &signers);
    // Checked here as the node and every auditor will check it.
    let view = match &previous {
        None => RootView::pinned(&env)?,
        Some((p, _)) => p.next(&env)?,
    };
    let mut client = EnrolmentsClient::new(conn.connect().await?);
    client
        .install_root(pb::InstallRootRequest {
            root: Some(env.clone()),
        })
        .await
        .map_err(refusal)?;
    write(&args.output, &env)?;
    Ok(view)
}

fn write(path: &Path, env: &pb::Envelope) -> Result<()> {
    if path.exists() {
        bail!("{}: already exists", path.display());
    }
    let text = serde_json::to_string_pretty(&DsseJson::from_envelope(env))?;
    std::fs::write(path, format!("{text}\n"))
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// A root file's content, verified by its own keys.
pub fn show(path: &Path) -> Result<RootView> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let env = DsseJson::parse(&text)
        .and_then(|j| j.to_envelope())
        .with_context(|| format!("{}: not a root of trust", path.display()))?;
    Ok(RootView::pinned(&env)?)
}

/// Prints a root.
pub fn print(view: &RootView) {
    println!(
        "root version {} of {} {}: {} key(s), threshold {}; node key {}",
        view.version,
        view.region,
        view.name,
        view.keys.len(),
        view.threshold,
        &view.node_key.key_id()[..16]
    );
    for k in &view.keys {
        println!("  key {}", k.key_id());
    }
    match view.expires_ms {
        Some(ms) => println!(
            "  expires {}",
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|d| d.to_rfc3339())
                .unwrap_or_default()
        ),
        None => println!("  does not expire"),
    }
}
