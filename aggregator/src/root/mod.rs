//! The top unit's root of trust, rotatable TUF-style (the client workflow
//! of the TUF specification, 5.3): auditors pin one root once; root N+1 is
//! trusted only if a threshold of root N's keys and a threshold of its own
//! keys signed it, and the verifier walks the chain one version at a time
//! from the root it pinned. Distinct keys are counted once however many
//! signatures they made; only the final root's expiry matters.
//!
//! What a root authorises: its `node_key` signs the top unit's statements
//! (summaries, enrolments of its children, receipts). Earlier roots' node
//! keys stay trusted for the statements they signed before the root that
//! replaced them, so summaries signed before a rotation stay verifiable and
//! a retired key cannot sign new ones.

use std::collections::BTreeMap;

use tallytree_proto::{
    Digest, PublicKey, RegionCode,
    envelope::{self, pae},
    pb,
    statement::{self, Statement},
};

/// Most roots a chain may carry: a walk is bounded.
pub const MAX_ROOTS: usize = 1024;

/// A root whose content is checked (its signatures by whom it concerns).
#[derive(Clone, Debug, PartialEq)]
pub struct RootView {
    /// The top unit.
    pub region: RegionCode,
    /// Its name.
    pub name: String,
    /// From 1.
    pub version: u64,
    /// The keys that sign roots, distinct.
    pub keys: Vec<PublicKey>,
    /// How many of them must sign.
    pub threshold: u32,
    /// The key the top unit's node signs with while this root is the latest.
    pub node_key: PublicKey,
    /// When it was signed (Unix ms).
    pub issued_at_ms: i64,
    /// When it stops being trusted as the latest (Unix ms); `None`: never.
    pub expires_ms: Option<i64>,
    /// SHA-256 of the payload.
    pub digest: Digest,
    /// The envelope, with every signature it carries (its predecessor's
    /// among them).
    pub envelope: pb::Envelope,
}

/// Why a root or a chain of roots is not trusted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RootError {
    /// The envelope or its payload is not a root.
    #[error("root: not a root statement ({0})")]
    Malformed(String),
    /// A field breaks a rule.
    #[error("root version {version}: {rule}")]
    Invalid {
        /// The version it claims.
        version: u64,
        /// The rule.
        rule: String,
    },
    /// Too few distinct keys of a set signed.
    #[error(
        "root version {version}: signed by {signed} distinct key(s) of {whose} ({of} keys), {needed} needed"
    )]
    Threshold {
        /// The root checked.
        version: u64,
        /// "version N" or "its own".
        whose: String,
        /// Distinct keys whose signature verifies.
        signed: usize,
        /// Keys in the set.
        of: usize,
        /// The threshold.
        needed: u32,
    },
    /// The next version is absent while later ones are offered.
    #[error(
        "root version {offered} does not follow version {trusted}: version {missing} is missing from the chain"
    )]
    MissingLink {
        /// The latest version trusted.
        trusted: u64,
        /// The version that should follow.
        missing: u64,
        /// The lowest later version offered.
        offered: u64,
    },
    /// A root at or below a trusted version that is not the trusted one.
    #[error(
        "root version {version}: differs from the version {version} already trusted (a rollback or a fork)"
    )]
    Rollback {
        /// The version.
        version: u64,
    },
    /// Two different roots of one version.
    #[error("root version {version}: two different roots carry this version (a fork)")]
    Fork {
        /// The version.
        version: u64,
    },
    /// The chain is longer than [`MAX_ROOTS`].
    #[error("root chain: more than {MAX_ROOTS} roots")]
    TooLong,
    /// The final root has expired.
    #[error(
        "root version {version}: expired at {expires_ms} (Unix ms); the top unit must sign a new root"
    )]
    Expired {
        /// The final root's version.
        version: u64,
        /// When it expired.
        expires_ms: i64,
    },
}

fn invalid(version: u64, rule: impl Into<String>) -> RootError {
    RootError::Invalid {
        version,
        rule: rule.into(),
    }
}

impl RootView {
    /// The root an envelope claims, its content checked, its signatures
    /// not yet.
    pub fn from_envelope(env: &pb::Envelope) -> Result<RootView, RootError> {
        let r: pb::Root =
            statement::peek_unverified(env).map_err(|e| RootError::Malformed(e.to_string()))?;
        let v = r.version;
        if v == 0 {
            return Err(invalid(0, "version must be at least 1"));
        }
        let region = RegionCode::parse(&r.region).map_err(|e| invalid(v, e.to_string()))?;
        let mut keys: Vec<PublicKey> = Vec::with_capacity(r.keys.len());
        for raw in &r.keys {
            let k = PublicKey::from_slice(raw).map_err(|e| invalid(v, format!("keys: {e}")))?;
            if keys.contains(&k) {
                return Err(invalid(
                    v,
                    format!("keys: {} listed twice", &k.key_id()[..16]),
                ));
            }
            keys.push(k);
        }
        if keys.is_empty() {
            return Err(invalid(v, "keys: at least one"));
        }
        if r.threshold == 0 || r.threshold as usize > keys.len() {
            return Err(invalid(
                v,
                format!(
                    "threshold ({}) must be between 1 and the number of keys ({})",
                    r.threshold,
                    keys.len()
                ),
            ));
        }
        let node_key =
            PublicKey::from_slice(&r.node_key).map_err(|e| invalid(v, format!("node_{e}")))?;
        Ok(RootView {
            region,
            name: r.name,
            version: v,
            keys,
            threshold: r.threshold,
            node_key,
            issued_at_ms: r.issued_at_ms,
            expires_ms: (r.expires_ms != 0).then_some(r.expires_ms),
            digest: Digest::of(&env.payload),
            envelope: env.clone(),
        })
    }

    /// How many distinct keys of `keys` made a signature of `env` that
    /// verifies: a key that signed twice counts once.
    fn signers(keys: &[PublicKey], env: &pb::Envelope) -> usize {
        let message = pae(&env.payload_type, &env.payload);
        keys.iter()
            .filter(|k| {
                let id = k.key_id();
                env.signatures
                    .iter()
                    .any(|s| s.keyid == id && k.verify(&message, &s.sig))
            })
            .count()
    }

    fn check_signed(
        &self,
        env: &pb::Envelope,
        by: &RootView,
        whose: String,
    ) -> Result<(), RootError> {
        let signed = RootView::signers(&by.keys, env);
        if signed < by.threshold as usize {
            return Err(RootError::Threshold {
                version: self.version,
                whose,
                signed,
                of: by.keys.len(),
                needed: by.threshold,
            });
        }
        Ok(())
    }

    /// Verifies a root to be pinned (a version 1, or a later one an
    /// auditor chose to trust): its content and a threshold of its own keys.
    pub fn pinned(env: &pb::Envelope) -> Result<RootView, RootError> {
        let root = RootView::from_envelope(env)?;
        root.check_signed(env, &root, "its own".into())?;
        Ok(root)
    }

    /// Verifies `env` as the root following `self`: exactly the next
    /// version, of the same unit, signed by a threshold of this root's keys
    /// and a threshold of its own.
    pub fn next(&self, env: &pb::Envelope) -> Result<RootView, RootError> {
        let next = RootView::from_envelope(env)?;
        if next.version != self.version + 1 {
            return Err(invalid(
                next.version,
                format!(
                    "must be version {} to follow version {}",
                    self.version + 1,
                    self.version
                ),
            ));
        }
        if next.region != self.region {
            return Err(invalid(
                next.version,
                format!("is the root of {}, not of {}", next.region, self.region),
            ));
        }
        next.check_signed(env, self, format!("version {}", self.version))?;
        next.check_signed(env, &next, "its own".into())?;
        Ok(next)
    }
}

/// A verified chain of roots, from the pinned one to the latest offered.
#[derive(Clone, Debug, PartialEq)]
pub struct RootChain {
    roots: Vec<RootView>,
}

impl RootChain {
    /// A chain of the pinned root alone.
    pub fn of(pinned: RootView) -> RootChain {
        RootChain {
            roots: vec![pinned],
        }
    }

    /// Walks from the pinned root through `offered` (any order), one version
    /// at a time: forward, each next root verified as [`RootView::next`];
    /// and backward, each earlier root trusted when the root after it
    /// carries a threshold of the earlier root's keys' signatures (so that
    /// the node keys of earlier roots, which signed older evidence, are
    /// known to an auditor who pinned a later root). The walk stops at the
    /// last version offered; what it verified is kept in the chain even
    /// when it then refuses the rest (the error says why).
    pub fn walk(&mut self, offered: &[pb::Envelope], now_ms: i64) -> Result<(), RootError> {
        if offered.len() > MAX_ROOTS {
            return Err(RootError::TooLong);
        }
        let mut by_version: BTreeMap<u64, Vec<(&pb::Envelope, Digest)>> = BTreeMap::new();
        for env in offered {
            let r: pb::Root =
                statement::peek_unverified(env).map_err(|e| RootError::Malformed(e.to_string()))?;
            let digest = Digest::of(&env.payload);
            let same = by_version.entry(r.version).or_default();
            if !same.iter().any(|(_, d)| *d == digest) {
                same.push((env, digest));
            }
        }
        // Backward: an earlier root endorsed by the signatures its keys put
        // on the earliest root trusted.
        while let Some(earlier) = self.roots[0]
            .version
            .checked_sub(1)
            .and_then(|v| by_version.get(&v))
        {
            let first = &self.roots[0];
            let endorsed: Vec<RootView> = earlier
                .iter()
                .filter_map(|(env, _)| RootView::from_envelope(env).ok())
                .filter(|r| {
                    r.region == first.region
                        && RootView::signers(&r.keys, &first.envelope) >= r.threshold as usize
                })
                .collect();
            match endorsed.as_slice() {
                [one] => self.roots.insert(0, one.clone()),
                [] => break,
                _ => {
                    return Err(RootError::Fork {
                        version: first.version - 1,
                    });
                }
            }
        }
        let base = self.roots[0].version;
        for (&version, roots) in &by_version {
            if version < base {
                continue;
            }
            if roots.len() > 1 {
                return Err(RootError::Fork { version });
            }
            let (env, digest) = roots[0];
            let latest = self.latest();
            if version <= latest.version {
                let trusted = &self.roots[(version - base) as usize];
                if trusted.digest != digest {
                    return Err(RootError::Rollback { version });
                }
                continue;
            }
            if version != latest.version + 1 {
                return Err(RootError::MissingLink {
                    trusted: latest.version,
                    missing: latest.version + 1,
                    offered: version,
                });
            }
            let next = latest.next(env)?;
            self.roots.push(next);
        }
        let latest = self.latest();
        if let Some(expires_ms) = latest.expires_ms
            && now_ms >= expires_ms
        {
            return Err(RootError::Expired {
                version: latest.version,
                expires_ms,
            });
        }
        Ok(())
    }

    /// The latest root verified.
    pub fn latest(&self) -> &RootView {
        self.roots.last().expect("a chain holds its pinned root")
    }

    /// Every root verified, oldest first.
    pub fn roots(&self) -> &[RootView] {
        &self.roots
    }

    /// The top unit's node keys the chain trusts, each with the instant
    /// from which it no longer signs (the `issued_at_ms` of the root after
    /// its last one; `None` for the latest root's key).
    pub fn node_keys(&self) -> Vec<(RegionCode, PublicKey, Option<i64>)> {
        let mut out: Vec<(RegionCode, PublicKey, Option<i64>)> = Vec::new();
        for (i, root) in self.roots.iter().enumerate() {
            let until = self.roots[i + 1..]
                .iter()
                .find(|later| later.node_key != root.node_key)
                .map(|later| later.issued_at_ms);
            let later_use = self.roots[i + 1..]
                .iter()
                .any(|later| later.node_key == root.node_key);
            if later_use {
                continue;
            }
            out.push((root.region, root.node_key, until));
        }
        out
    }
}

/// What an auditor pinned: the top units' bare keys (an anchor file), or a
/// root, whose chain the evidence carries.
#[derive(Clone, Debug, PartialEq)]
pub enum Pinned {
    /// Keys trusted as they are; roots in the evidence are not needed.
    Keys(Vec<(RegionCode, PublicKey)>),
    /// A root: the chain offered is walked from it.
    Root(Box<RootView>),
}

impl Pinned {
    /// The trust it gives once the evidence's `roots` are walked (at
    /// `now_ms`, for the final root's expiry), the latest root version
    /// reached, and why the walk stopped early, if it did (the roots
    /// verified before stay trusted).
    pub fn trust(
        &self,
        roots: &[pb::Envelope],
        now_ms: i64,
    ) -> (crate::Trust, Option<u64>, Option<RootError>) {
        let mut trust = crate::Trust::default();
        match self {
            Pinned::Keys(keys) => {
                for (r, k) in keys {
                    trust.add_anchor(*r, *k);
                }
                (trust, None, None)
            }
            Pinned::Root(root) => {
                let mut chain = RootChain::of((**root).clone());
                let refused = chain.walk(roots, now_ms).err();
                for (region, key, until) in chain.node_keys() {
                    trust.add_anchor_until(region, key, until);
                }
                (trust, Some(chain.latest().version), refused)
            }
        }
    }
}

/// Signs a root with each of `keys`.
pub fn sign_root(root: &pb::Root, keys: &[&tallytree_proto::SigningKey]) -> pb::Envelope {
    envelope::sign_all(
        keys,
        pb::Root::PAYLOAD_TYPE,
        prost::Message::encode_to_vec(root),
    )
}

#[cfg(test)]
mod tests;
