//! The subtree below each child of the parent under load: codes, keys (a
//! signing key and a TLS key each, as `tallytree init` makes them), the
//! enrolments its units signed (each binding its child's TLS key, as a
//! parent's enrolment does), and signed summary revisions built bottom-up
//! as the child's node and its descendants would, every unit changing in
//! every revision (a storm: the case where throughput matters).

use anyhow::{Context, Result, bail};
use tallytree_aggregator::{CaseCounts, ChildEntry, SummaryView, Tally};
use tallytree_node::tls::material::TlsKey;
use tallytree_proto::{Category, Level, Month, RegionCode, SigningKey, pb, statement};

/// One unit of the subtree, with its own key.
pub(crate) struct Unit {
    /// Its code.
    pub(crate) code: RegionCode,
    /// Its signing key.
    pub(crate) key: SigningKey,
    /// Its TLS key: a child of the parent under load pushes with the
    /// client certificate the parent's CA issues for it.
    pub(crate) tls: TlsKey,
    /// Its children.
    children: Vec<Unit>,
}

/// The `i`-th child code of `parent` (from 0), within the code's segment.
pub(crate) fn child_code(parent: RegionCode, i: u32) -> Result<RegionCode> {
    let (step, most) = match parent.level() {
        Level::Province => (100_000_000, 99),
        Level::City => (1_000_000, 99),
        Level::District => (1_000, 999),
        Level::Street => (1, 999),
        Level::Village => bail!("{parent}: a village has no children"),
    };
    if i >= most {
        bail!("{parent}: at most {most} children");
    }
    Ok(RegionCode::from_u64(
        parent.as_u64() + (u64::from(i) + 1) * step,
    )?)
}

/// The figures of revision `r` of every unit.
fn tally(r: u64) -> Tally {
    let mut local = Tally::default();
    *local.category_mut(Category::Neighbour) = CaseCounts {
        registered: 10 + r,
        resolved: 8 + r,
        escalated: 1,
        in_progress: 1,
        resolved_on_time: 7,
    };
    local
}

impl Unit {
    /// `code` with `fanout[0]` children, each with `fanout[1]`, and so on.
    pub(crate) fn build(code: RegionCode, fanout: &[u32]) -> Result<Unit> {
        let children = match fanout.split_first() {
            Some((&n, rest)) => (0..n)
                .map(|i| Unit::build(child_code(code, i)?, rest))
                .collect::<Result<_>>()?,
            None => Vec::new(),
        };
        Ok(Unit {
            code,
            key: SigningKey::generate()?.0,
            tls: TlsKey::generate()?,
            children,
        })
    }

    /// Units below this one.
    pub(crate) fn descendants(&self) -> usize {
        self.children.iter().map(|c| 1 + c.descendants()).sum()
    }

    /// The enrolments of every unit below, each signed by its parent, as
    /// the child forwards them with its first submission.
    pub(crate) fn enrolments(&self, now_ms: i64, out: &mut Vec<pb::Envelope>) {
        for child in &self.children {
            let e = pb::Enrolment {
                parent: self.code.to_string(),
                region: child.code.to_string(),
                name: format!("单位{}", child.code),
                public_key: child.key.public_key().0.to_vec(),
                serial: 1,
                valid_from_ms: now_ms - 1000,
                issued_at_ms: now_ms - 1000,
                tls_spki_sha256: child.tls.spki_digest().0.to_vec(),
            };
            out.push(statement::seal(&self.key, &e).envelope);
            child.enrolments(now_ms, out);
        }
    }

    /// Revision `r` of this unit's summary, its descendants' revisions
    /// `r` sealed first and appended to `descendants`; returns the
    /// reference to it, its total and its envelope.
    pub(crate) fn seal(
        &self,
        month: Month,
        r: u64,
        now_ms: i64,
        descendants: &mut Vec<pb::Envelope>,
    ) -> Result<(ChildEntry, Tally, pb::Envelope)> {
        let local = tally(r);
        let mut total = local;
        let mut refs = Vec::with_capacity(self.children.len());
        for child in &self.children {
            let (entry, child_total, env) = child.seal(month, r, now_ms, descendants)?;
            total = total.checked_add(&child_total).context("overflow")?;
            refs.push(entry);
            descendants.push(env);
        }
        let view = SummaryView {
            region: self.code,
            name: format!("单位{}", self.code),
            parent: self.code.parent(),
            period: month,
            revision: r,
            issued_at_ms: now_ms,
            local,
            total,
            children: refs,
            children_expected: self.children.len() as u32,
        };
        let sealed = statement::seal(&self.key, &view.to_pb());
        let entry = ChildEntry {
            region: self.code,
            revision: r,
            digest: sealed.digest,
        };
        Ok((entry, total, sealed.envelope))
    }
}
