//! Enrolment from the command line: `tallytree enrol` at the parent,
//! `tallytree install-enrolment` at the child, `tallytree rotate-key`,
//! `tallytree revoke`, and the trust anchor export.
//!
//! The enrolment file is JSON: the signed enrolment as a standard DSSE JSON
//! envelope, the parent's public key (PEM) that signed it, the child's TLS
//! client certificate and the parent's CA certificate.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tallytree_node::{config::Config, identity::next_key_path, tls::material::TlsKey};
use tallytree_proto::{
    PublicKey, RegionCode, SigningKey,
    envelope::DsseJson,
    pb::{self, enrolments_client::EnrolmentsClient},
    statement,
};

use crate::{
    conn::{Conn, refusal},
    init::{public_file, write_private},
};

/// What the parent hands the child.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentFile {
    /// The enrolment, as a DSSE JSON envelope.
    pub enrolment: DsseJson,
    /// The parent's public key, PEM.
    pub parent_public_key: String,
    /// The child's TLS client certificate, PEM.
    pub client_certificate: String,
    /// The parent's CA certificate, PEM.
    pub parent_ca_certificate: String,
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
            client_certificate: self.client_certificate.clone(),
            parent_ca_certificate: self.parent_ca_certificate.clone(),
        })
    }
}

/// What a child hands its parent to be enrolled: its `node.pub` (or
/// `node.key.next.pub` after rotate-key), holding its public key and the
/// certificate request of its TLS key.
#[derive(Debug, Clone)]
pub struct ChildKeys {
    /// The signing key.
    pub key: PublicKey,
    /// The TLS key's certificate request, PEM.
    pub tls_csr: String,
}

impl ChildKeys {
    /// Reads a child's public file.
    pub fn load(path: &Path) -> Result<ChildKeys> {
        let key = PublicKey::load(path)?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let Some(start) = text.find("-----BEGIN CERTIFICATE REQUEST-----") else {
            bail!(
                "{}: holds no certificate request for the child's TLS key (the node.pub that `tallytree init` or `rotate-key` wrote has one)",
                path.display()
            );
        };
        Ok(ChildKeys {
            key,
            tls_csr: text[start..].to_owned(),
        })
    }
}

/// At the parent: enrols a child's keys and returns the file for the child.
pub async fn enrol(
    conn: &Conn,
    code: RegionCode,
    name: &str,
    keys: &ChildKeys,
) -> Result<EnrolmentFile> {
    let key = &keys.key;
    let mut client = EnrolmentsClient::new(conn.connect().await?);
    let response = client
        .enrol(pb::EnrolRequest {
            region: code.to_string(),
            name: name.to_owned(),
            public_key: key.0.to_vec(),
            tls_csr: keys.tls_csr.clone(),
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
        client_certificate: response.client_certificate,
        parent_ca_certificate: response.parent_ca_certificate,
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

/// At the child: generates the next signing and TLS keys beside the
/// current ones (`node.key.next`, `tls.key.next`) and writes their public
/// file (`node.key.next.pub`) for the parent to enrol; returns its path and
/// the new public key.
pub fn rotate_key(config: &Path) -> Result<(std::path::PathBuf, PublicKey)> {
    let config = Config::load(config)?;
    let next = next_key_path(&config.key_file);
    let next_tls = next_key_path(&config.tls.key_file);
    if next_tls.exists() {
        bail!(
            "{}: a rotated TLS key is waiting already; install its enrolment, or remove it and {} to start again",
            next_tls.display(),
            next.display()
        );
    }
    let key = SigningKey::generate_to_file(&next)?;
    let tls = TlsKey::generate_to_file(&next_tls)?;
    let public = key.public_key();
    let csr = tls.csr_pem(config.region, &config.name)?;
    let path = next.with_extension("next.pub");
    std::fs::write(
        &path,
        public_file(config.region, &config.name, &public.to_pem(), &csr),
    )?;
    Ok((path, public))
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
