//! The verifying threads' side of the audit: the statements handed to them
//! with the key found for each, and what they hand back. Signatures and
//! per-statement checks need the signer's key only ([`TrustedKey`]), not
//! the whole [`crate::Trust`], which stays with the reading thread.

use tallytree_proto::{Digest, Month, RegionCode, pb, statement};

use crate::{
    defect::Defect,
    summary::SummaryView,
    trust::{EnrolmentView, TrustedKey},
};

/// A statement for the verifying threads, with the key found for it.
pub(super) enum Job {
    /// `provisional`: signed by a key whose own enrolment is still being
    /// verified.
    Enrolment {
        env: pb::Envelope,
        signer: TrustedKey,
        provisional: bool,
    },
    Summary(pb::Envelope, TrustedKey),
    /// A summary whose key is unknown: only its claims are read.
    Unverifiable(pb::Envelope, Defect),
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Job::Enrolment { .. } => "Job::Enrolment",
            Job::Summary(..) => "Job::Summary",
            Job::Unverifiable(..) => "Job::Unverifiable",
        })
    }
}

/// What the verifying threads found, handed back in bundle order. Outcomes
/// live a moment, in batches; boxing the large summary view would cost an
/// allocation per summary on the hot path.
#[allow(clippy::large_enum_variant)]
pub(super) enum Outcome {
    /// With the envelope back when its signer was provisional.
    Enrolment {
        result: Result<EnrolmentView, Defect>,
        signer: TrustedKey,
        provisional: Option<pb::Envelope>,
    },
    Summary(Result<(SummaryView, Digest), Failure>),
}

/// What an unverified summary claims to be: region, month, revision.
pub(super) type Claimed = (RegionCode, Option<Month>, u64);

/// A summary that did not verify, with what it claims to be.
pub(super) struct Failure {
    pub(super) defect: Defect,
    pub(super) digest: Digest,
    pub(super) claim: Option<Claimed>,
}

impl Failure {
    fn of(env: &pb::Envelope, defect: Defect) -> Failure {
        Failure {
            defect,
            digest: Digest::of(&env.payload),
            claim: claimed(env),
        }
    }
}

/// What an unverified summary claims to be, for reporting only.
fn claimed(env: &pb::Envelope) -> Option<Claimed> {
    let s = statement::peek_unverified::<pb::Summary>(env).ok()?;
    let region = RegionCode::parse(&s.region).ok()?;
    Some((region, Month::parse(&s.period).ok(), s.revision))
}

/// Runs on the verifying threads.
pub(super) fn work(job: Job) -> Outcome {
    match job {
        Job::Enrolment {
            env,
            signer,
            provisional,
        } => Outcome::Enrolment {
            result: signer.open_enrolment(&env),
            signer,
            provisional: provisional.then_some(env),
        },
        Job::Summary(env, signer) => {
            Outcome::Summary(signer.open_summary(&env).map_err(|f| Failure::of(&env, f)))
        }
        Job::Unverifiable(env, f) => Outcome::Summary(Err(Failure::of(&env, f))),
    }
}
