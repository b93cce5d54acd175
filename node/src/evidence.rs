//! Evidence export: the bundle an auditor verifies offline, and the compact
//! inclusion proof of one unit's figures. Items are produced in bundle order
//! (see evidence.proto) and handed to a sink one by one, so a large bundle
//! is streamed, never assembled in memory.

use std::{collections::HashSet, sync::Arc};

use tallytree_aggregator::{SummaryView, bundle::TrailerDigest};
use tallytree_proto::{Digest, Month, PeriodRange, RegionCode, pb, statement};

use crate::{
    context::NodeContext,
    query::QueryError,
    store::{
        Cf, StoreError,
        layout::{self, SummaryRow, meta},
    },
};

/// The format named in every bundle header.
pub const FORMAT: &str = "tallytree-evidence-v1";

/// Wraps a sink with the running count and digest the trailer states.
struct Writer<'a> {
    /// Where the items go.
    sink: &'a mut dyn FnMut(pb::EvidenceItem) -> bool,
    /// The trailer's count and digest, as every bundle reader checks it.
    digest: TrailerDigest,
    /// False once the sink refused an item (the client went away).
    open: bool,
}

impl<'a> Writer<'a> {
    fn new(sink: &'a mut dyn FnMut(pb::EvidenceItem) -> bool) -> Writer<'a> {
        Writer {
            sink,
            digest: TrailerDigest::default(),
            open: true,
        }
    }

    fn emit(&mut self, item: pb::evidence_item::Item) {
        if !self.open {
            return;
        }
        let item = pb::EvidenceItem { item: Some(item) };
        self.digest.add(&item);
        self.open = (self.sink)(item);
    }

    fn finish(self) {
        if !self.open {
            return;
        }
        (self.sink)(pb::EvidenceItem {
            item: Some(pb::evidence_item::Item::Trailer(self.digest.trailer())),
        });
    }
}

/// Evidence for auditors, from the summaries this node holds.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The node's shared context.
    ctx: Arc<NodeContext>,
}

impl Evidence {
    /// Evidence of the node of `ctx`.
    pub fn new(ctx: Arc<NodeContext>) -> Evidence {
        Evidence { ctx }
    }

    fn check_region(&self, region: RegionCode) -> Result<(), QueryError> {
        if !region.is_within(self.ctx.identity.region) {
            return Err(QueryError::OutsideSubtree {
                region,
                node: self.ctx.identity.region,
            });
        }
        Ok(())
    }

    fn header(&self, region: RegionCode, period: String) -> pb::evidence_item::Item {
        pb::evidence_item::Item::Header(pb::EvidenceHeader {
            format: FORMAT.into(),
            region: region.to_string(),
            period,
            exported_by: self.ctx.identity.region.to_string(),
            exported_at_ms: self.ctx.clock.now_ms(),
            exported_by_key: self.ctx.identity.public_key().0.to_vec(),
        })
    }

    /// The top unit's roots of trust (at the top), then the enrolments and
    /// revocations of `regions`, parents first.
    fn emit_keys(
        &self,
        w: &mut Writer<'_>,
        regions: &HashSet<RegionCode>,
    ) -> Result<(), StoreError> {
        for env in crate::federation::roots::chain(self.ctx.ledger.store())? {
            w.emit(pb::evidence_item::Item::Root(env));
        }
        for env in self.enrolments_for(regions)? {
            w.emit(pb::evidence_item::Item::Enrolment(env));
        }
        for env in layout::envelopes(self.ctx.ledger.store(), Cf::Revocations, b"")? {
            let Ok(r) = statement::decode_stored::<pb::Revocation>(&env) else {
                continue;
            };
            if RegionCode::parse(&r.region).is_ok_and(|c| regions.contains(&c)) {
                w.emit(pb::evidence_item::Item::Revocation(env));
            }
        }
        Ok(())
    }

    /// Enrolments binding the keys of `regions`, and this node's own
    /// enrolments when the chain passes through it, parents first.
    fn enrolments_for(
        &self,
        regions: &HashSet<RegionCode>,
    ) -> Result<Vec<pb::Envelope>, StoreError> {
        let store = self.ctx.ledger.store();
        let mut out: Vec<(u8, RegionCode, u64, pb::Envelope)> = Vec::new();
        if regions.contains(&self.ctx.identity.region) {
            for env in layout::envelopes(store, Cf::Meta, meta::OWN_ENROLMENT)? {
                if let Ok(e) = statement::decode_stored::<pb::Enrolment>(&env) {
                    out.push((
                        self.ctx.identity.region.level() as u8,
                        self.ctx.identity.region,
                        e.serial,
                        env,
                    ));
                }
            }
        }
        for env in layout::envelopes(store, Cf::Enrolments, b"")? {
            let Ok(e) = statement::decode_stored::<pb::Enrolment>(&env) else {
                continue;
            };
            let Ok(region) = RegionCode::parse(&e.region) else {
                continue;
            };
            if regions.contains(&region) {
                out.push((region.level() as u8, region, e.serial, env));
            }
        }
        out.sort_by_key(|(level, region, serial, _)| (*level, *region, *serial));
        Ok(out.into_iter().map(|(_, _, _, env)| env).collect())
    }

    /// Streams the evidence bundle of `region` for `range`: header,
    /// enrolments, revocations, summaries (children first), receipts,
    /// trailer. `sink` returns false to stop early. Blocking.
    pub fn export_evidence(
        &self,
        region: RegionCode,
        range: PeriodRange,
        sink: &mut dyn FnMut(pb::EvidenceItem) -> bool,
    ) -> Result<(), QueryError> {
        self.check_region(region)?;
        let store = self.ctx.ledger.store();
        // Collect the summaries (post-order) and the regions they involve.
        let mut summaries: Vec<(SummaryView, pb::Envelope, i64)> = Vec::new();
        let mut seen: HashSet<Digest> = HashSet::new();
        for month in range.months() {
            if let Some(row) = layout::latest_summary(store, region, month)? {
                self.post_order(row, month, &mut seen, &mut summaries)?;
            }
        }
        let mut regions: HashSet<RegionCode> = summaries.iter().map(|(v, _, _)| v.region).collect();
        regions.extend(
            self.ctx
                .trust()
                .enrolments()
                .filter(|e| e.region.is_within(region))
                .map(|e| e.region),
        );
        // The path from this node down to the region.
        regions.extend(
            region
                .ancestry()
                .take_while(|r| r.is_within(self.ctx.identity.region)),
        );

        let mut w = Writer::new(sink);
        w.emit(self.header(region, range.to_string()));
        self.emit_keys(&mut w, &regions)?;
        let mut receipts = Vec::new();
        for (view, env, received_at_ms) in summaries {
            // The receipts this node gave its children, signed again from the
            // stored rows (Ed25519 is deterministic: the same bytes).
            if view.region.is_direct_child_of(self.ctx.identity.region) {
                receipts.push(self.ctx.issue_receipt(
                    &view,
                    Digest::of(&env.payload),
                    received_at_ms,
                ));
            }
            if view.region == self.ctx.identity.region
                && let Some(r) = store.get(
                    Cf::Receipts,
                    &layout::receipt_key(view.period, view.revision),
                )?
            {
                receipts.push(layout::envelope_of(&r, "receipts")?);
            }
            w.emit(pb::evidence_item::Item::Summary(env));
        }
        // Receipts this node holds from its parent for the region's months.
        if region == self.ctx.identity.region {
            for month in range.months() {
                for env in layout::envelopes(store, Cf::Receipts, &layout::month_key(month))? {
                    if !receipts.contains(&env) {
                        receipts.push(env);
                    }
                }
            }
        }
        for env in receipts {
            w.emit(pb::evidence_item::Item::Receipt(env));
        }
        w.finish();
        Ok(())
    }

    fn post_order(
        &self,
        row: SummaryRow,
        month: Month,
        seen: &mut HashSet<Digest>,
        out: &mut Vec<(SummaryView, pb::Envelope, i64)>,
    ) -> Result<(), StoreError> {
        let digest = row.digest()?;
        if !seen.insert(digest) {
            return Ok(());
        }
        let view = row.view()?;
        for child in &view.children {
            if let Some(child_row) =
                layout::summary_at(self.ctx.ledger.store(), child.region, month, child.revision)?
            {
                self.post_order(child_row, month, seen, out)?;
            }
        }
        let env = row.envelope()?.clone();
        out.push((view, env, row.received_at_ms));
        Ok(())
    }

    /// Streams the inclusion proof of `unit`'s figures for `month` in this
    /// node's latest summary: the unit's summary and each ancestor summary
    /// referencing the one below, with the enrolments of their keys.
    /// Blocking.
    pub fn prove(
        &self,
        unit: RegionCode,
        month: Month,
        sink: &mut dyn FnMut(pb::EvidenceItem) -> bool,
    ) -> Result<(), QueryError> {
        self.check_region(unit)?;
        let store = self.ctx.ledger.store();
        let not_found = |what: String| QueryError::NotCounted(what);
        let mut row =
            layout::latest_summary(store, self.ctx.identity.region, month)?.ok_or_else(|| {
                not_found(format!(
                    "{} has no summary for {month}",
                    self.ctx.identity.region
                ))
            })?;
        let mut chain = vec![row.clone()];
        loop {
            let view = row.view()?;
            if view.region == unit {
                break;
            }
            let next = view
                .children
                .iter()
                .find(|c| unit.is_within(c.region))
                .ok_or_else(|| {
                    not_found(format!(
                        "{unit} is not counted in {} {month} revision {}",
                        view.region, view.revision
                    ))
                })?;
            row =
                layout::summary_at(store, next.region, month, next.revision)?.ok_or_else(|| {
                    not_found(format!(
                        "{} revision {} is not held here",
                        next.region, next.revision
                    ))
                })?;
            chain.push(row.clone());
        }
        // The keys of the path, and of the children enrolled under each
        // region on it, so the verifier can check each link's completeness.
        let path: HashSet<RegionCode> = unit
            .ancestry()
            .take_while(|r| r.is_within(self.ctx.identity.region))
            .collect();
        let mut regions = path.clone();
        regions.extend(
            self.ctx
                .trust()
                .enrolments()
                .filter(|e| path.contains(&e.parent))
                .map(|e| e.region),
        );
        let mut w = Writer::new(sink);
        w.emit(self.header(unit, month.to_string()));
        self.emit_keys(&mut w, &regions)?;
        for row in chain.iter().rev() {
            w.emit(pb::evidence_item::Item::Summary(row.envelope()?.clone()));
        }
        w.finish();
        Ok(())
    }
}
