//! Enrolment at the parent (enrol, rotate, revoke a child) and at the child
//! (install the enrolment the parent signed).

use std::sync::Arc;

use tallytree_aggregator::{Admission, Defect};
use tallytree_proto::{Digest, PublicKey, RegionCode, pb, statement};
use tracing::info;

use crate::{
    context::{NodeContext, TrustChange},
    store::{
        Batch, Cf, StoreError,
        layout::{self, meta},
    },
    tls::material::{Authority, RequestedKey, TlsKey, spki_digest},
};

use super::succession::Rotation;

/// Why an enrolment call is refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrolmentError {
    /// A field breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// The statement does not verify.
    #[error(transparent)]
    Defect(#[from] Defect),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(msg: String) -> EnrolmentError {
    EnrolmentError::Invalid(msg)
}

/// Enrolment of this node's children, and of this node by its parent.
#[derive(Debug, Clone)]
pub struct Enrolments {
    /// The node's shared context.
    ctx: Arc<NodeContext>,
    /// This node's CA, which certifies its children's TLS keys.
    ca: Arc<Authority>,
}

/// A child enrolled: the signed enrolment and the child's certificate.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The enrolment, signed by this node.
    pub enrolment: pb::Envelope,
    /// The child's TLS client certificate, PEM.
    pub client_certificate: String,
    /// This node's CA certificate, PEM.
    pub ca_certificate: String,
}

/// The SHA-256 of the key a PEM certificate carries.
fn certificate_key(pem: &str, what: &str) -> Result<Digest, EnrolmentError> {
    let der = crate::tls::server::rustls_pem(pem)
        .map_err(|e| invalid(format!("{what}: {e}")))?
        .remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| invalid(format!("{what}: not an X.509 certificate ({e})")))?;
    Ok(spki_digest(cert.tbs_certificate.subject_pki.raw))
}

impl Enrolments {
    /// Enrolments at the node of `ctx`, certifying with `ca`.
    pub fn new(ctx: Arc<NodeContext>, ca: Arc<Authority>) -> Enrolments {
        Enrolments { ctx, ca }
    }

    fn child_code(&self, region: &str) -> Result<RegionCode, EnrolmentError> {
        let code = RegionCode::parse(region).map_err(|e| invalid(e.to_string()))?;
        if !code.is_direct_child_of(self.ctx.identity.region) {
            return Err(invalid(format!(
                "region ({code}): not a direct child of this node ({})",
                self.ctx.identity.region
            )));
        }
        Ok(code)
    }

    /// This node's public key (handed to an enrolled child with its
    /// enrolment).
    pub fn public_key(&self) -> PublicKey {
        self.ctx.identity.public_key()
    }

    /// Enrols a child's key and TLS key (a new key of an enrolled child is
    /// a rotation: the next serial), and certifies the TLS key. Blocking.
    pub fn enrol(&self, req: &pb::EnrolRequest) -> Result<Enrolled, EnrolmentError> {
        let region = self.child_code(&req.region)?;
        let name = req.name.trim();
        if name.is_empty() {
            return Err(invalid("name: required (the child's Chinese name)".into()));
        }
        let key = PublicKey::from_slice(&req.public_key).map_err(|e| invalid(e.to_string()))?;
        let tls_key =
            RequestedKey::from_csr_pem(&req.tls_csr).map_err(|e| invalid(e.to_string()))?;
        let certificate = self
            .ca
            .issue_child(&tls_key, region, name, self.ctx.clock.now_ms())
            .map_err(|e| invalid(e.to_string()))?;
        let ctx = &self.ctx;
        let _writer = ctx.ledger.lock();
        let store = ctx.ledger.store();
        let serial = match store.last(Cf::Enrolments, &region.as_u64().to_be_bytes())? {
            Some((k, _)) => k
                .get(8..16)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0)
                .saturating_add(1),
            None => 1,
        };
        let now = ctx.clock.now_ms();
        let enrolment = pb::Enrolment {
            parent: ctx.identity.region.to_string(),
            region: region.to_string(),
            name: name.to_owned(),
            public_key: key.0.to_vec(),
            serial,
            valid_from_ms: now,
            issued_at_ms: now,
            tls_spki_sha256: tls_key.spki_digest().0.to_vec(),
        };
        let sealed = statement::seal(&ctx.identity.key(), &enrolment);
        ctx.admit(|trust| {
            let view = trust.check_enrolment(&sealed.envelope)?;
            let mut batch = Batch::default();
            batch.put(
                Cf::Enrolments,
                layout::enrolment_key(region, serial),
                layout::envelope_bytes(&sealed.envelope),
            );
            // The expected number of children changes this month's summary.
            batch.put(Cf::Dirty, layout::month_key(ctx.clock.month()), Vec::new());
            Ok::<_, EnrolmentError>(TrustChange {
                admission: Admission {
                    enrolments: vec![view],
                    revocations: Vec::new(),
                },
                own_keys: Vec::new(),
                batch,
            })
        })?;
        info!(child = %region, name, serial, key = %&key.key_id()[..16], tls_key = %tls_key.spki_digest().short(), "enrolled");
        Ok(Enrolled {
            enrolment: sealed.envelope,
            client_certificate: certificate.cert_pem,
            ca_certificate: self.ca.cert_pem().to_owned(),
        })
    }

    /// Revokes a child's key from `revoked_at_ms` (now when 0). Blocking.
    pub fn revoke(&self, req: &pb::RevokeRequest) -> Result<pb::Envelope, EnrolmentError> {
        let region = self.child_code(&req.region)?;
        let key = PublicKey::from_slice(&req.public_key).map_err(|e| invalid(e.to_string()))?;
        let ctx = &self.ctx;
        let enrolled = ctx
            .trust()
            .enrolment(&key.key_id())
            .is_some_and(|e| e.region == region);
        if !enrolled {
            return Err(invalid(format!(
                "public_key: key {} is not enrolled for {region}",
                &key.key_id()[..16]
            )));
        }
        let now = ctx.clock.now_ms();
        let revocation = pb::Revocation {
            parent: ctx.identity.region.to_string(),
            region: region.to_string(),
            public_key: key.0.to_vec(),
            revoked_at_ms: if req.revoked_at_ms == 0 {
                now
            } else {
                req.revoked_at_ms
            },
            reason: req.reason.clone(),
        };
        let _writer = ctx.ledger.lock();
        let sealed = statement::seal(&ctx.identity.key(), &revocation);
        ctx.admit(|trust| {
            let view = trust
                .signer_of::<pb::Revocation>(&sealed.envelope, "revocation")?
                .open_revocation(&sealed.envelope)?;
            let mut batch = Batch::default();
            batch.put(
                Cf::Revocations,
                layout::revocation_key(region, &key),
                layout::envelope_bytes(&sealed.envelope),
            );
            batch.put(Cf::Dirty, layout::month_key(ctx.clock.month()), Vec::new());
            Ok::<_, EnrolmentError>(TrustChange {
                admission: Admission {
                    enrolments: Vec::new(),
                    revocations: vec![view],
                },
                own_keys: Vec::new(),
                batch,
            })
        })?;
        info!(child = %region, key = %&key.key_id()[..16], "revoked");
        Ok(sealed.envelope)
    }

    /// Installs the enrolment this node's parent signed. The enrolled key
    /// must be this node's key, or a rotated key waiting in `<key>.next`,
    /// which then becomes the signing key. Blocking.
    pub fn install(&self, req: &pb::InstallRequest) -> Result<(), EnrolmentError> {
        let ctx = &self.ctx;
        let Some(parent) = ctx.identity.region.parent() else {
            return Err(invalid(format!(
                "{}: the top of the tree has no parent to be enrolled by",
                ctx.identity.region
            )));
        };
        let parent_key = PublicKey::from_slice(&req.parent_public_key)
            .map_err(|e| invalid(format!("parent_{e}")))?;
        let env = req
            .enrolment
            .as_ref()
            .ok_or_else(|| invalid("enrolment: required".into()))?;
        let e: pb::Enrolment = statement::open(env, &parent_key).map_err(|err| {
            invalid(format!(
                "enrolment: {err} (is parent_public_key the parent's key?)"
            ))
        })?;
        if e.parent != parent.to_string() || e.region != ctx.identity.region.to_string() {
            return Err(invalid(format!(
                "enrolment: binds {} under {}, but this node is {} under {parent}",
                e.region, e.parent, ctx.identity.region
            )));
        }
        let key = PublicKey::from_slice(&e.public_key).map_err(|err| invalid(err.to_string()))?;
        let bound = match e.tls_spki_sha256.as_slice() {
            [] => {
                return Err(invalid(
                    "enrolment: binds no TLS key; ask the parent to enrol this node with its certificate request (node.pub)".into(),
                ));
            }
            b => Digest(
                b.try_into()
                    .map_err(|_| invalid("enrolment: tls_spki_sha256 must be 32 bytes".into()))?,
            ),
        };
        let certified = certificate_key(&req.client_certificate, "client_certificate")?;
        if certified != bound {
            return Err(invalid(format!(
                "client_certificate: certifies TLS key {}, but the enrolment binds {}",
                certified.short(),
                bound.short()
            )));
        }
        crate::tls::server::rustls_pem(&req.parent_ca_certificate)
            .map_err(|err| invalid(format!("parent_ca_certificate: {err}")))?;
        let tls_rotating = self.tls_key_for(bound)?;
        let old = ctx.identity.public_key();
        let rotation = Rotation::to(ctx, key, "enrolment")?;
        let _writer = ctx.ledger.lock();
        // Stored first; then this node's keys (the earlier one still signed
        // statements held) are trusted, then the key is switched.
        ctx.admit(|_| {
            let mut batch = Batch::default();
            let mut own_key = meta::OWN_ENROLMENT.to_vec();
            own_key.extend_from_slice(&e.serial.to_be_bytes());
            batch.put(Cf::Meta, own_key, layout::envelope_bytes(env));
            batch.put(Cf::Meta, meta::PARENT_KEY, parent_key.0.to_vec());
            batch.put(
                Cf::Meta,
                meta::PARENT_CA,
                req.parent_ca_certificate.as_bytes().to_vec(),
            );
            batch.put(
                Cf::Meta,
                meta::CLIENT_CERT,
                req.client_certificate.as_bytes().to_vec(),
            );
            if let Some(r) = &rotation {
                r.store_in(&mut batch);
            }
            Ok::<_, EnrolmentError>(TrustChange {
                own_keys: vec![old, key],
                batch,
                ..TrustChange::default()
            })
        })?;
        if rotation.is_some() {
            ctx.identity
                .rotate()
                .map_err(|err| invalid(format!("rotating the key: {err}")))?;
            info!(key = %&key.key_id()[..16], "rotated to the newly enrolled key");
        }
        if tls_rotating {
            ctx.identity
                .rotate_tls()
                .map_err(|err| invalid(format!("rotating the TLS key: {err}")))?;
            info!(tls_key = %bound.short(), "rotated to the newly enrolled TLS key");
        }
        info!(parent = %parent, serial = e.serial, digest = %Digest::of(&env.payload).short(), "enrolment installed");
        ctx.wake_pusher();
        Ok(())
    }

    /// Whether the TLS key `bound` is the waiting rotated one (true) or the
    /// current one (false); refused if it is neither.
    fn tls_key_for(&self, bound: Digest) -> Result<bool, EnrolmentError> {
        let identity = &self.ctx.identity;
        let Some(current) = identity.tls_key_file() else {
            // A node without TLS files (tests in memory) takes what it is given.
            return Ok(false);
        };
        let digest_of = |p: &std::path::Path| TlsKey::load(p).ok().map(|k| k.spki_digest());
        if digest_of(current) == Some(bound) {
            return Ok(false);
        }
        let next = crate::tls::material::next_path(current);
        if digest_of(&next) == Some(bound) {
            return Ok(true);
        }
        Err(invalid(format!(
            "enrolment: binds TLS key {}, which is neither this node's TLS key ({}) nor a rotated one waiting in {}",
            bound.short(),
            current.display(),
            next.display()
        )))
    }

    /// The enrolments and revocations this node signed for its children.
    pub fn list(&self) -> Result<pb::ListEnrolmentsResponse, StoreError> {
        let store = self.ctx.ledger.store();
        let own = |env: &pb::Envelope, parent_field: fn(&pb::Envelope) -> Option<String>| {
            parent_field(env).is_some_and(|p| p == self.ctx.identity.region.to_string())
        };
        let enrolments = layout::envelopes(store, Cf::Enrolments, b"")?
            .into_iter()
            .filter(|e| {
                own(e, |e| {
                    statement::decode_stored::<pb::Enrolment>(e)
                        .ok()
                        .map(|s| s.parent)
                })
            })
            .collect();
        let revocations = layout::envelopes(store, Cf::Revocations, b"")?
            .into_iter()
            .filter(|e| {
                own(e, |e| {
                    statement::decode_stored::<pb::Revocation>(e)
                        .ok()
                        .map(|s| s.parent)
                })
            })
            .collect();
        Ok(pb::ListEnrolmentsResponse {
            enrolments,
            revocations,
        })
    }
}
