//! [`Defect`]: what is wrong with a signed statement, the same value for a
//! parent refusing a submission, an auditor reading a bundle and an
//! inclusion proof. Every message names the region and the rule.

use tallytree_proto::{Month, RegionCode, envelope::EnvelopeError};

use crate::summary::SummaryError;

/// What is wrong with a statement.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Defect {
    /// The envelope does not verify or decode.
    #[error("{what} for {region}: {source}")]
    Envelope {
        /// Statement kind.
        what: &'static str,
        /// Region concerned, as far as known.
        region: String,
        /// Cause.
        source: EnvelopeError,
    },
    /// An envelope without any signature.
    #[error("{what}{claims}: no signature")]
    Unsigned {
        /// Statement kind.
        what: &'static str,
        /// " for REGION" as the unverified statement claims, when decodable.
        claims: String,
    },
    /// An envelope with more than one signature. A tallytree statement is
    /// signed by exactly one key, that of the unit it speaks for; which key
    /// speaks must not depend on the order of signatures.
    #[error(
        "{what}{claims}: {count} signatures; a statement carries exactly one, by the key of the unit it speaks for"
    )]
    ManySignatures {
        /// Statement kind.
        what: &'static str,
        /// " for REGION" as the unverified statement claims, when decodable.
        claims: String,
        /// Signatures on the envelope.
        count: usize,
    },
    /// Signed by a key no enrolment binds.
    #[error("{what}{claims}: signed by key {}, which is not enrolled", key_label(.key_id))]
    UnknownKey {
        /// Statement kind.
        what: &'static str,
        /// " for REGION" as the unverified statement claims, when decodable.
        claims: String,
        /// The key id in the signature.
        key_id: String,
    },
    /// Signed by a key enrolled for another region.
    #[error(
        "summary {region}: signed by the key enrolled for {key_region}; a unit speaks only for itself"
    )]
    WrongSigner {
        /// The region the summary claims.
        region: RegionCode,
        /// The region the key belongs to.
        key_region: RegionCode,
    },
    /// Signed by a revoked key after its revocation.
    #[error(
        "summary {region}: signed by key {key_id} revoked at {revoked_at_ms} (issued {issued_at_ms})"
    )]
    Revoked {
        /// The region.
        region: RegionCode,
        /// The revoked key.
        key_id: String,
        /// When revoked.
        revoked_at_ms: i64,
        /// When the summary was issued.
        issued_at_ms: i64,
    },
    /// Issued before the key's enrolment was valid.
    #[error(
        "summary {region}: issued at {issued_at_ms}, before its key's enrolment is valid ({valid_from_ms})"
    )]
    NotYetValid {
        /// The region.
        region: RegionCode,
        /// Issue time.
        issued_at_ms: i64,
        /// Enrolment validity start.
        valid_from_ms: i64,
    },
    /// An enrolment or revocation that does not fit the tree.
    #[error("{what} {region}: {rule}")]
    Tree {
        /// Statement kind.
        what: &'static str,
        /// The region concerned.
        region: String,
        /// The rule broken.
        rule: String,
    },
    /// A summary's own content or arithmetic is wrong.
    #[error(transparent)]
    Summary(#[from] SummaryError),
    /// A referenced child summary is not available.
    #[error("summary {region} {period}: child {child} revision {revision} {absence}")]
    MissingChild {
        /// The parent summary's region.
        region: RegionCode,
        /// Month.
        period: Month,
        /// Child region.
        child: RegionCode,
        /// Child revision.
        revision: u64,
        /// Why it is not there.
        absence: Absence,
    },
    /// A child summary found for a reference is not the one referenced.
    #[error("summary {region} {period}: child {child} {mismatch}")]
    ChildMismatch {
        /// The parent summary's region.
        region: RegionCode,
        /// Month.
        period: Month,
        /// Child region, as referenced.
        child: RegionCode,
        /// What differs.
        mismatch: Mismatch,
    },
    /// The expected number of children differs from the enrolments.
    #[error(
        "summary {region} {period}: children_expected is {stated} but {enrolled} children are enrolled"
    )]
    Completeness {
        /// Region.
        region: RegionCode,
        /// Month.
        period: Month,
        /// children_expected.
        stated: u32,
        /// Enrolled children.
        enrolled: usize,
    },
}

/// Why a referenced child summary is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Absence {
    /// Nobody provided it (not in the submission, the store or the bundle).
    #[error("is referenced but not provided")]
    NotProvided,
    /// It was provided but did not verify (its own defect says why).
    #[error("did not verify")]
    DidNotVerify,
}

/// How a child summary found for a reference differs from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// The summary found has another payload digest.
    #[error("revision {revision} does not match its reference (digest differs)")]
    Digest {
        /// The revision referenced.
        revision: u64,
    },
    /// The summary with the referenced digest is of another region or revision.
    #[error(
        "revision {revision} does not match its reference (the summary found is {found_region} revision {found_revision})"
    )]
    Identity {
        /// The revision referenced.
        revision: u64,
        /// The region of the summary found.
        found_region: RegionCode,
        /// Its revision.
        found_revision: u64,
    },
    /// The summary found is of another month.
    #[error("is a summary of another period ({found})")]
    Period {
        /// The month of the summary found.
        found: Month,
    },
}

fn key_label(key_id: &str) -> &str {
    if key_id.is_empty() {
        "(no keyid given)"
    } else {
        key_id
    }
}

impl Defect {
    pub(crate) fn envelope(
        what: &'static str,
        region: impl ToString,
        source: EnvelopeError,
    ) -> Defect {
        Defect::Envelope {
            what,
            region: region.to_string(),
            source,
        }
    }

    /// The region the defect concerns, when it names one.
    pub fn region(&self) -> Option<RegionCode> {
        use SummaryError as S;
        match self {
            Defect::WrongSigner { region, .. }
            | Defect::Revoked { region, .. }
            | Defect::NotYetValid { region, .. }
            | Defect::MissingChild { region, .. }
            | Defect::ChildMismatch { region, .. }
            | Defect::Completeness { region, .. } => Some(*region),
            Defect::Envelope { region, .. } | Defect::Tree { region, .. } => {
                RegionCode::parse(region).ok()
            }
            Defect::Summary(s) => match s {
                S::Parent { region, .. }
                | S::RevisionZero { region }
                | S::CategoryList { region, .. }
                | S::Tally { region, .. }
                | S::Child { region, .. }
                | S::Completeness { region, .. }
                | S::Total { region, .. }
                | S::Period { region, .. }
                | S::FuturePeriod { region, .. } => Some(*region),
                S::Malformed { .. } => None,
            },
            Defect::Unsigned { .. } | Defect::ManySignatures { .. } | Defect::UnknownKey { .. } => {
                None
            }
        }
    }

    /// The month the defect concerns, when it names one.
    pub fn month(&self) -> Option<Month> {
        match self {
            Defect::MissingChild { period, .. }
            | Defect::ChildMismatch { period, .. }
            | Defect::Completeness { period, .. }
            | Defect::Summary(SummaryError::Tally { period, .. })
            | Defect::Summary(SummaryError::Total { period, .. })
            | Defect::Summary(SummaryError::FuturePeriod { period, .. }) => Some(*period),
            _ => None,
        }
    }
}
