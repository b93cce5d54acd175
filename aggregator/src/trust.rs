//! Which keys speak for which regions: [`Trust`], built from the trust
//! anchor (an auditor) or a node's own key (a parent) and the enrolment
//! chain below it, and the [`TrustedKey`] it finds for a statement, which
//! verifies the statement's signature and its content.

use std::collections::{BTreeSet, HashMap};

use tallytree_proto::{
    Digest, PublicKey, RegionCode, pb,
    statement::{self, Statement},
};

use crate::{defect::Defect, summary::SummaryView};

/// A verified enrolment: `parent` bound `region` and `name` to `key`.
#[derive(Clone, Debug, PartialEq)]
pub struct EnrolmentView {
    /// The enrolling parent.
    pub parent: RegionCode,
    /// The child enrolled.
    pub region: RegionCode,
    /// The child's Chinese name.
    pub name: String,
    /// The child's key.
    pub key: PublicKey,
    /// Higher serials supersede lower ones.
    pub serial: u64,
    /// Summaries by this key count from here (Unix ms).
    pub valid_from_ms: i64,
    /// SHA-256 of the child's TLS key (its SubjectPublicKeyInfo), when the
    /// enrolment binds one.
    pub tls_spki: Option<Digest>,
    /// SHA-256 of the enrolment payload.
    pub digest: Digest,
}

/// A verified revocation of a child's key.
#[derive(Clone, Debug, PartialEq)]
pub struct RevocationView {
    /// The revoking parent.
    pub parent: RegionCode,
    /// The child whose key is revoked.
    pub region: RegionCode,
    /// The revoked key.
    pub key: PublicKey,
    /// Summaries issued at or after this instant are refused (Unix ms).
    pub revoked_at_ms: i64,
    /// SHA-256 of the revocation payload.
    pub digest: Digest,
}

/// A key id in binary (SHA-256 of the raw key): half the memory of hex.
type KeyId = [u8; 32];

/// The binary form of a hex key id; `None` if it is not one.
fn key_id_bytes(hex_id: &str) -> Option<KeyId> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_id, &mut out).ok()?;
    Some(out)
}

fn id_of(key: &PublicKey) -> KeyId {
    Digest::of(&key.0).0
}

/// " for REGION" as an unverified statement claims it, for messages only.
fn claims_of<S: Statement>(env: &pb::Envelope) -> String {
    let Ok(s) = statement::peek_unverified::<S>(env) else {
        return String::new();
    };
    // Every statement names its region in field 2 (enrolment, revocation,
    // receipt) or field 1 (summary); decoding as the statement type finds it.
    let region = S::region_of(&s);
    if region.is_empty() {
        String::new()
    } else {
        format!(" for {region}")
    }
}

/// The one signature a statement carries. DSSE allows several, leaving
/// the verifier's policy to decide which count; tallytree's policy is one
/// signature, by the key of the unit the statement speaks for, so that
/// which key speaks never depends on the order of signatures.
pub fn sole_signature<'e, S: Statement>(
    env: &'e pb::Envelope,
    what: &'static str,
) -> Result<&'e pb::Signature, Defect> {
    match env.signatures.as_slice() {
        [one] => Ok(one),
        [] => Err(Defect::Unsigned {
            what,
            claims: claims_of::<S>(env),
        }),
        many => Err(Defect::ManySignatures {
            what,
            claims: claims_of::<S>(env),
            count: many.len(),
        }),
    }
}

/// Which keys speak for which regions.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// Keys trusted without enrolment: the anchor, or a node's own keys
    /// (current and earlier ones, which signed statements still held).
    anchors: Vec<(RegionCode, PublicKey)>,
    /// The anchors' key ids, in the same order.
    anchor_ids: Vec<KeyId>,
    /// From when each anchor no longer signs (a root that replaced it),
    /// in the same order.
    anchor_until: Vec<Option<i64>>,
    /// Verified enrolments by key id.
    enrolments: HashMap<KeyId, EnrolmentView>,
    /// Verified revocations by key id.
    revocations: HashMap<KeyId, RevocationView>,
    /// Key ids of the enrolments each parent signed, for completeness and
    /// names without scanning every enrolment.
    by_parent: HashMap<RegionCode, Vec<KeyId>>,
    /// The key id of each region's latest enrolment (highest serial).
    by_region: HashMap<RegionCode, KeyId>,
}

impl Trust {
    /// Trust rooted at `region`'s `key` (the province anchor for an auditor,
    /// the node's own key for a node).
    pub fn with_anchor(region: RegionCode, key: PublicKey) -> Trust {
        let mut t = Trust::default();
        t.add_anchor(region, key);
        t
    }

    /// Trusts another key of an anchor region (an earlier key of a node).
    pub fn add_anchor(&mut self, region: RegionCode, key: PublicKey) {
        self.add_anchor_until(region, key, None);
    }

    /// Trusts a key of an anchor region for statements issued before
    /// `until` (Unix ms; `None`: without end), as a root chain says of the
    /// top unit's node keys.
    pub fn add_anchor_until(&mut self, region: RegionCode, key: PublicKey, until: Option<i64>) {
        match self.anchors.iter().position(|a| *a == (region, key)) {
            Some(i) => self.anchor_until[i] = until,
            None => {
                self.anchors.push((region, key));
                self.anchor_ids.push(id_of(&key));
                self.anchor_until.push(until);
            }
        }
    }

    /// The anchor keys.
    pub fn anchors(&self) -> &[(RegionCode, PublicKey)] {
        &self.anchors
    }

    /// Every verified enrolment.
    pub fn enrolments(&self) -> impl Iterator<Item = &EnrolmentView> {
        self.enrolments.values()
    }

    /// The enrolment of a key, if any.
    pub fn enrolment(&self, key_id: &str) -> Option<&EnrolmentView> {
        self.enrolments.get(&key_id_bytes(key_id)?)
    }

    /// The revocation of a key, if any.
    pub fn revocation(&self, key_id: &str) -> Option<&RevocationView> {
        self.revocations.get(&key_id_bytes(key_id)?)
    }

    /// The region `key` speaks for, if it is an anchor or enrolled.
    pub fn region_of_key(&self, key: &PublicKey) -> Option<RegionCode> {
        let id = id_of(key);
        match self.anchor_ids.iter().position(|a| *a == id) {
            Some(i) => Some(self.anchors[i].0),
            None => self.enrolments.get(&id).map(|e| e.region),
        }
    }

    /// The key that signed `env` and the region it speaks for: an anchor's,
    /// or an enrolled one. Looked up by the envelope's key id; the
    /// signature is not checked here (see [`TrustedKey::open`]).
    pub fn signer_of<S: Statement>(
        &self,
        env: &pb::Envelope,
        what: &'static str,
    ) -> Result<TrustedKey, Defect> {
        let key_id = sole_signature::<S>(env, what)?.keyid.as_str();
        let id = key_id_bytes(key_id);
        let anchor = id.and_then(|id| self.anchor_ids.iter().position(|a| *a == id));
        if let Some(i) = anchor {
            let (region, key) = self.anchors[i];
            return Ok(TrustedKey {
                region,
                key,
                valid_from_ms: i64::MIN,
                revoked_at_ms: self.anchor_until[i],
            });
        }
        match id.and_then(|id| self.enrolments.get(&id).map(|e| (id, e))) {
            Some((id, e)) => Ok(TrustedKey {
                region: e.region,
                key: e.key,
                valid_from_ms: e.valid_from_ms,
                revoked_at_ms: self.revocations.get(&id).map(|r| r.revoked_at_ms),
            }),
            None => Err(Defect::UnknownKey {
                what,
                claims: claims_of::<S>(env),
                key_id: key_id.to_owned(),
            }),
        }
    }

    /// Verifies an enrolment against the keys already trusted for its
    /// parent, and trusts the enrolled key from now on.
    pub fn admit_enrolment(&mut self, env: &pb::Envelope) -> Result<EnrolmentView, Defect> {
        let view = self.check_enrolment(env)?;
        self.insert_enrolment(view.clone());
        Ok(view)
    }

    /// Trusts an enrolment checked with [`Trust::check_enrolment`].
    pub fn insert_enrolment(&mut self, view: EnrolmentView) {
        let id = id_of(&view.key);
        let (parent, region, serial) = (view.parent, view.region, view.serial);
        if let Some(old) = self.enrolments.insert(id, view) {
            // The same key enrolled again: keep the index free of repeats.
            if let Some(ids) = self.by_parent.get_mut(&old.parent) {
                ids.retain(|i| *i != id);
            }
        }
        self.by_parent.entry(parent).or_default().push(id);
        let latest = self
            .by_region
            .get(&region)
            .and_then(|i| self.enrolments.get(i))
            .is_none_or(|e| e.serial <= serial);
        if latest {
            self.by_region.insert(region, id);
        }
    }

    /// Verifies an enrolment against the keys already trusted for its
    /// parent, without trusting it yet (so many can be checked in parallel).
    pub fn check_enrolment(&self, env: &pb::Envelope) -> Result<EnrolmentView, Defect> {
        self.signer_of::<pb::Enrolment>(env, "enrolment")?
            .open_enrolment(env)
    }

    /// Verifies a revocation against the keys trusted for its parent.
    pub fn admit_revocation(&mut self, env: &pb::Envelope) -> Result<RevocationView, Defect> {
        let view = self
            .signer_of::<pb::Revocation>(env, "revocation")?
            .open_revocation(env)?;
        self.insert_revocation(view.clone());
        Ok(view)
    }

    /// Trusts a revocation checked with [`TrustedKey::open_revocation`].
    pub fn insert_revocation(&mut self, view: RevocationView) {
        self.revocations.insert(id_of(&view.key), view);
    }

    /// Admits enrolments and revocations given in any order, parents first;
    /// returns the ones that cannot be verified with their defects.
    pub fn admit_all(
        &mut self,
        enrolments: &[pb::Envelope],
        revocations: &[pb::Envelope],
    ) -> Vec<Defect> {
        let mut pending: Vec<&pb::Envelope> = enrolments.iter().collect();
        // Each round admits at least one level; the tree has five.
        loop {
            let before = pending.len();
            let mut failed = Vec::new();
            let mut defects = Vec::new();
            for env in pending {
                if let Err(f) = self.admit_enrolment(env) {
                    failed.push(env);
                    defects.push(f);
                }
            }
            if failed.is_empty() || failed.len() == before {
                let mut defects = defects;
                for env in revocations {
                    if let Err(f) = self.admit_revocation(env) {
                        defects.push(f);
                    }
                }
                return defects;
            }
            pending = failed;
        }
    }

    /// Children of `region` enrolled at `at_ms`. A revoked key does not
    /// un-enrol its unit: the unit is still expected to report (with a new
    /// key), and what it reported before the revocation still counts.
    pub fn enrolled_children(&self, region: RegionCode, at_ms: i64) -> BTreeSet<RegionCode> {
        self.by_parent
            .get(&region)
            .into_iter()
            .flatten()
            .filter_map(|id| self.enrolments.get(id))
            .filter(|e| e.valid_from_ms <= at_ms)
            .map(|e| e.region)
            .collect()
    }

    /// A region's latest enrolment (highest serial): the one whose TLS key
    /// may speak for it on the wire.
    pub fn current_enrolment(&self, region: RegionCode) -> Option<&EnrolmentView> {
        self.enrolments.get(self.by_region.get(&region)?)
    }

    /// The revocation of `key`, if there is one.
    pub fn revocation_of(&self, key: &PublicKey) -> Option<&RevocationView> {
        self.revocations.get(&id_of(key))
    }

    /// The latest enrolled name of a region.
    pub fn name_of(&self, region: RegionCode) -> Option<&str> {
        let id = self.by_region.get(&region)?;
        self.enrolments.get(id).map(|e| e.name.as_str())
    }

    /// Verifies a summary's signature with the key enrolled for the region it
    /// names, then checks its content ([`SummaryView::from_pb`]).
    pub fn open_summary(&self, env: &pb::Envelope) -> Result<(SummaryView, Digest), Defect> {
        self.signer_of::<pb::Summary>(env, "summary")?
            .open_summary(env)
    }
}

/// A key trusted to speak for a region, found by [`Trust::signer_of`]: all
/// a statement's verification needs from [`Trust`], so that threads can
/// verify signatures while the trust itself stays with one owner.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrustedKey {
    /// The region the key speaks for.
    pub region: RegionCode,
    /// The key.
    pub key: PublicKey,
    /// Statements by the key count from here (Unix ms); anchors: always.
    pub valid_from_ms: i64,
    /// When the key was revoked, if it was.
    pub revoked_at_ms: Option<i64>,
}

impl TrustedKey {
    /// Verifies `env`'s signature by this key (the bytes first), then
    /// decodes the statement.
    pub fn open<S: Statement>(&self, env: &pb::Envelope, what: &'static str) -> Result<S, Defect> {
        sole_signature::<S>(env, what)?;
        statement::open(env, &self.key).map_err(|e| Defect::envelope(what, self.region, e))
    }

    /// Verifies an enrolment signed by this key (the parent's): signature,
    /// then its place in the tree.
    pub fn open_enrolment(&self, env: &pb::Envelope) -> Result<EnrolmentView, Defect> {
        let e: pb::Enrolment = self.open(env, "enrolment")?;
        let signer = self.region;
        let tree = |rule: String| Defect::Tree {
            what: "enrolment",
            region: e.region.clone(),
            rule,
        };
        let region = RegionCode::parse(&e.region).map_err(|err| tree(err.to_string()))?;
        if e.parent != signer.to_string() {
            return Err(tree(format!(
                "names parent {} but is signed by {signer}",
                e.parent
            )));
        }
        if !region.is_direct_child_of(signer) {
            return Err(tree(format!(
                "is not a direct child of its signer {signer}"
            )));
        }
        if e.serial == 0 {
            return Err(tree("serial must be at least 1".into()));
        }
        let key = PublicKey::from_slice(&e.public_key).map_err(|err| tree(err.to_string()))?;
        Ok(EnrolmentView {
            parent: signer,
            region,
            name: e.name,
            key,
            serial: e.serial,
            valid_from_ms: e.valid_from_ms,
            tls_spki: match e.tls_spki_sha256.as_slice() {
                [] => None,
                bytes => Some(Digest(bytes.try_into().map_err(|_| {
                    tree(format!(
                        "tls_spki_sha256 must be 32 bytes (SHA-256), got {}",
                        bytes.len()
                    ))
                })?)),
            },
            digest: Digest::of(&env.payload),
        })
    }

    /// Verifies a revocation signed by this key (the parent's): signature,
    /// then its place in the tree.
    pub fn open_revocation(&self, env: &pb::Envelope) -> Result<RevocationView, Defect> {
        let r: pb::Revocation = self.open(env, "revocation")?;
        let signer = self.region;
        let tree = |rule: String| Defect::Tree {
            what: "revocation",
            region: r.region.clone(),
            rule,
        };
        let region = RegionCode::parse(&r.region).map_err(|err| tree(err.to_string()))?;
        if r.parent != signer.to_string() || !region.is_direct_child_of(signer) {
            return Err(tree(format!(
                "must be signed by the parent of the region, not {signer}"
            )));
        }
        let key = PublicKey::from_slice(&r.public_key).map_err(|err| tree(err.to_string()))?;
        Ok(RevocationView {
            parent: signer,
            region,
            key,
            revoked_at_ms: r.revoked_at_ms,
            digest: Digest::of(&env.payload),
        })
    }

    /// Verifies a summary signed by this key: signature over the PAE, then
    /// content ([`SummaryView::from_pb`]), that it is the key's own region,
    /// and that the key was valid and not revoked when it was issued. The
    /// hot path of parents and auditors.
    pub fn open_summary(&self, env: &pb::Envelope) -> Result<(SummaryView, Digest), Defect> {
        let summary: pb::Summary = self.open(env, "summary")?;
        let view = SummaryView::from_pb(&summary)?;
        if view.region != self.region {
            return Err(Defect::WrongSigner {
                region: view.region,
                key_region: self.region,
            });
        }
        if let Some(revoked_at_ms) = self.revoked_at_ms.filter(|t| *t <= view.issued_at_ms) {
            return Err(Defect::Revoked {
                region: view.region,
                key_id: self.key.key_id(),
                revoked_at_ms,
                issued_at_ms: view.issued_at_ms,
            });
        }
        if view.issued_at_ms < self.valid_from_ms {
            return Err(Defect::NotYetValid {
                region: view.region,
                issued_at_ms: view.issued_at_ms,
                valid_from_ms: self.valid_from_ms,
            });
        }
        Ok((view, Digest::of(&env.payload)))
    }
}
