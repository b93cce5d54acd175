//! Enrolment from the command line: `tallytree enrol` at the parent,
//! `tallytree install-enrolment` at the child, `tallytree rotate-key`,
//! `tallytree revoke`, and the trust anchor export.
//!
//! The enrolment file is JSON: the signed enrolment as a standard DSSE JSON
//! envelope, and the parent's public key (PEM) that signed it.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tallytree_node::{config::Config, identity::next_key_path};
use tallytree_proto::{
    PublicKey, RegionCode, SigningKey,
    envelope::DsseJson,
    pb::{self, enrolments_client::EnrolmentsClient},
    statement,
};

use crate::{
    conn::{Conn, refusal},
    init::write_private,
};

/// What the parent hands the child.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentFile {
    /// The enrolment, as a DSSE JSON envelope.
    pub enrolment: DsseJson,
    /// The parent's public key, PEM.
    pub parent_public_key: String,
}

impl EnrolmentFile {
    /// Reads an enrolment file.
    pub fn load(path: &Path) -> Result<EnrolmentFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not an enrolment file", path.display()))
    }

    /// The install request it carries.
    pub fn to_request(&self) -> Result<pb::InstallRequest> {
        let parent = PublicKey::parse(&self.parent_public_key)
            .context("parent_public_key: not a public key")?;
        Ok(pb::InstallRequest {
            enrolment: Some(self.enrolment.to_envelope()?),
            parent_public_key: parent.0.to_vec(),
        })
    }
}

/// At the parent: enrols a child's key and returns the file for the child.
pub async fn enrol(
    conn: &Conn,
    code: RegionCode,
    name: &str,
    key: &PublicKey,
) -> Result<EnrolmentFile> {
    let mut client = EnrolmentsClient::new(conn.connect().await?);
    let response = client
        .enrol(pb::EnrolRequest {
            region: code.to_string(),
            name: name.to_owned(),
            public_key: key.0.to_vec(),
        })
        .await
        .map_err(refusal)?
        .into_inner();
    let env = response
        .enrolment
        .context("the node answered without an enrolment")?;
    let parent = PublicKey::from_slice(&response.parent_public_key)?;
    let e: pb::Enrolment = statement::open(&env, &parent)?;
    if e.region != code.to_string() || e.public_key != key.0 {
        bail!("the node signed an enrolment for {} instead", e.region);
    }
    Ok(EnrolmentFile {
        enrolment: DsseJson::from_envelope(&env),
        parent_public_key: parent.to_pem(),
    })
}

/// At the child: installs an enrolment file.
pub async fn install(conn: &Conn, file: &EnrolmentFile) -> Result<()> {
    let mut client = EnrolmentsClient::new(conn.connect().await?);
    client.install(file.to_request()?).await.map_err(refusal)?;
    Ok(())
}

/// At the parent: revokes a child's key.
pub async fn revoke(
    conn: &Conn,
    code: RegionCode,
    key: &PublicKey,
    reason: &str,
) -> Result<pb::Envelope> {
    let mut client = EnrolmentsClient::new(conn.connect().await?);
    let response = client
        .revoke(pb::RevokeRequest {
            region: code.to_string(),
            public_key: key.0.to_vec(),
            reason: reason.to_owned(),
            revoked_at_ms: 0,
        })
        .await
        .map_err(refusal)?
        .into_inner();
    response
        .revocation
        .context("the node answered without a revocation")
}

/// At the child: generates the next key beside the current one
/// (`node.key.next`) and returns its public key, for the parent to enrol.
pub fn rotate_key(config: &Path) -> Result<PublicKey> {
    let config = Config::load(config)?;
    let next = next_key_path(&config.key_file);
    let key = SigningKey::generate_to_file(&next)?;
    let public = key.public_key();
    std::fs::write(next.with_extension("next.pub"), public.to_pem())?;
    Ok(public)
}

/// Writes the trust anchor file: the top unit's public key with its code
/// and name as a comment.
pub fn export_anchor(config: &Path, out: &Path) -> Result<()> {
    let config = Config::load(config)?;
    let key = SigningKey::load(&config.key_file)?;
    let text = format!(
        "# tallytree trust anchor: {} {}\n{}",
        config.region,
        config.name,
        key.public_key().to_pem()
    );
    std::fs::write(out, text).with_context(|| format!("{}: cannot write", out.display()))?;
    Ok(())
}

/// Writes an enrolment file (0600 is not needed: it holds only public data).
pub fn write_file(path: &Path, file: &EnrolmentFile) -> Result<()> {
    let text = serde_json::to_string_pretty(file)?;
    if path.exists() {
        bail!("{}: already exists", path.display());
    }
    write_private(path, &text)
}
