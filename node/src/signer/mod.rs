//! The signer: turns changed months into new signed summary revisions.
//!
//! Intake marks months dirty (durably, with the change itself). The signer
//! waits until changes stop arriving for `debounce_ms` (or `max_delay_ms`
//! has passed since the first), so a bulk import yields one revision per
//! month, not thousands. For each dirty month up to the current one it
//! derives the local tally, and if the summary would differ from the latest
//! revision it signs revision + 1 and stores it, clearing the mark in the
//! same synced batch. Future months (tasks due later) stay dirty until their
//! month comes. How a month's local tally is derived from the records is
//! [`tally`].

pub mod tally;

use std::{sync::Arc, time::Duration};

use tallytree_aggregator::{ChildEntry, SummaryView};
use tallytree_proto::{Month, statement};
use tokio::time::Instant;
use tracing::{debug, error, info};

use crate::{
    config::SignerConfig,
    context::NodeContext,
    intake::import,
    ledger::Ledger,
    store::{
        Batch, Cf, StoreError,
        layout::{self, SummaryRow},
    },
};

/// The signer of one node.
#[derive(Debug, Clone)]
pub struct Signer {
    /// Store, identity, clock and the enrolled children.
    ctx: Arc<NodeContext>,
    /// Debounce settings.
    config: SignerConfig,
}

/// A revision just signed.
#[derive(Debug, Clone, PartialEq)]
pub struct Signed {
    /// The month.
    pub month: Month,
    /// Its new revision.
    pub revision: u64,
}

impl Signer {
    /// A signer over `ctx`.
    pub fn new(ctx: Arc<NodeContext>, config: SignerConfig) -> Signer {
        Signer { ctx, config }
    }

    fn ledger(&self) -> &Ledger {
        &self.ctx.ledger
    }

    /// Marks every month with tasks dirty, so that tasks that became overdue
    /// while the node was down are counted. Blocking.
    pub fn mark_task_months(&self) -> Result<(), StoreError> {
        let months = layout::task_months(self.ledger().store())?;
        let _writer = self.ledger().lock();
        let mut batch = Batch::default();
        for m in months {
            batch.put(Cf::Dirty, layout::month_key(m), Vec::new());
        }
        if !batch.is_empty() {
            self.ledger().write_changes(batch)?;
        }
        Ok(())
    }

    /// Signs every dirty month up to the current one: local tally plus the
    /// latest accepted revision of each enrolled child. Blocking.
    pub fn sign_dirty(&self) -> Result<Vec<Signed>, StoreError> {
        let clock = self.ctx.clock;
        let region = self.ctx.identity.region;
        let now = clock.month();
        let today = clock.today();
        let mut signed = Vec::new();
        for month in layout::dirty_months(self.ledger().store())? {
            if month > now {
                continue;
            }
            // Exclusive: neither intake nor a submission can change the month
            // between deriving it and clearing its mark.
            let _writer = self.ledger().lock();
            let store = self.ledger().store();
            if import::import_unfinished(store)? {
                // Only a failed apply leaves an import committed and half
                // written while the node runs; derive nothing from it.
                error!(period = %month, "an import is committed but not fully applied; nothing signed until a restart finishes it");
                break;
            }
            let local = tally::local_tally(store, month, today)?;
            let issued_at_ms = clock.now_ms();
            let enrolled = self.ctx.trust().enrolled_children(region, issued_at_ms);
            let mut children = Vec::new();
            let mut total = Some(local);
            for child in &enrolled {
                if let Some(row) = layout::latest_summary(store, *child, month)? {
                    let view = row.view()?;
                    total = total.and_then(|t| t.checked_add(&view.total));
                    children.push(ChildEntry {
                        region: *child,
                        revision: view.revision,
                        digest: row.digest()?,
                    });
                }
            }
            let Some(total) = total else {
                error!(period = %month, "roll-up overflows; month left unsigned");
                continue;
            };
            let previous = layout::latest_summary(store, region, month)?
                .as_ref()
                .map(SummaryRow::view)
                .transpose()?;
            let expected = enrolled.len() as u32;
            let unchanged = match &previous {
                Some(p) => {
                    p.local == local
                        && p.total == total
                        && p.children == children
                        && p.children_expected == expected
                }
                None => local.is_zero() && children.is_empty(),
            };
            let mut batch = Batch::default();
            batch.delete(Cf::Dirty, layout::month_key(month));
            if !unchanged {
                let revision = previous.as_ref().map_or(1, |p| p.revision + 1);
                let summary = SummaryView {
                    region,
                    name: self.ctx.identity.name.clone(),
                    parent: region.parent(),
                    period: month,
                    revision,
                    issued_at_ms,
                    local,
                    total,
                    children,
                    children_expected: expected,
                };
                debug_assert!(
                    SummaryView::from_pb(&summary.to_pb()).is_ok(),
                    "own summary well formed"
                );
                let sealed = statement::seal(&self.ctx.identity.key(), &summary.to_pb());
                batch.put(
                    Cf::Summaries,
                    layout::summary_key(region, month, revision),
                    layout::summary_row_bytes(&sealed.envelope, issued_at_ms),
                );
                if region.parent().is_some() {
                    // Same batch as the revision: nothing signed is ever
                    // left unpushed. A newer revision replaces a waiting one.
                    batch.put(
                        Cf::Outbox,
                        layout::month_key(month),
                        revision.to_be_bytes().to_vec(),
                    );
                }
                info!(region = %region, period = %month, revision, digest = %sealed.digest.short(), "signed summary");
                signed.push(Signed { month, revision });
            }
            store.write(batch)?;
        }
        if !signed.is_empty() {
            self.ctx.wake_pusher();
            let months: Vec<Month> = signed.iter().map(|s| s.month).collect();
            if let Err(e) = self.ctx.findings.signed(&self.ctx, &months) {
                // What is signed stays signed; the findings catch up at
                // the next revision or restart.
                error!(error = %e, "updating the findings failed");
            }
        }
        Ok(signed)
    }

    /// At start, before the node takes calls: tasks may have fallen overdue
    /// while it was down, and a previous run may have left months marked.
    /// Re-derives, then signs. Done before serving, so no change recorded
    /// meanwhile is split off into a revision of its own.
    pub async fn catch_up(&self) {
        self.mark_task_months_in_background().await;
        self.sign_in_background().await;
    }

    /// Runs until `shutdown` resolves, signing after changes settle and
    /// re-deriving at each date change (tasks fall overdue). Signs what is
    /// pending once more before returning. [`Signer::catch_up`] first.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let debounce = Duration::from_millis(self.config.debounce_ms);
        let max_delay = Duration::from_millis(self.config.max_delay_ms);
        let mut today = self.ctx.clock.today();
        let mut date_check = tokio::time::interval(Duration::from_secs(60));
        date_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        'run: loop {
            tokio::select! {
                _ = &mut shutdown => break 'run,
                _ = self.ctx.ledger.changed() => {}
                _ = date_check.tick() => {
                    let now = self.ctx.clock.today();
                    if now == today {
                        continue;
                    }
                    today = now;
                    self.mark_task_months_in_background().await;
                }
            }
            // Debounce: wait for a quiet spell, but no longer than max_delay;
            // a stop ends the wait at once (pending months are signed below).
            let deadline = Instant::now() + max_delay;
            loop {
                tokio::select! {
                    _ = &mut shutdown => break 'run,
                    _ = self.ctx.ledger.changed() => {
                        if Instant::now() >= deadline { break; }
                    }
                    _ = tokio::time::sleep(debounce) => break,
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            self.sign_in_background().await;
        }
        self.sign_in_background().await;
        debug!("signer stopped");
    }

    async fn mark_task_months_in_background(&self) {
        let this = self.clone();
        match tokio::task::spawn_blocking(move || this.mark_task_months()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(error = %e, "re-deriving task months failed"),
            Err(e) => error!(error = %e, "re-deriving task months failed"),
        }
    }

    async fn sign_in_background(&self) {
        let this = self.clone();
        match tokio::task::spawn_blocking(move || this.sign_dirty()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                error!(error = %e, "signing failed; the months stay marked and are retried")
            }
            Err(e) => error!(error = %e, "signer task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use tallytree_proto::{RegionCode, SigningKey, pb};

    use super::*;
    use crate::{
        clock::Clock,
        config::IntakeConfig,
        identity::Identity,
        intake::{Intake, Submission},
        store::MemStore,
    };

    fn setup() -> (Intake, Signer) {
        let ledger = Arc::new(Ledger::new(Arc::new(MemStore::new())));
        let (key, _) = SigningKey::generate().expect("key");
        let identity = Arc::new(Identity::new(
            RegionCode::parse("210214001001").expect("code"),
            "玉皇庙社区".into(),
            key,
            None,
        ));
        let clock = Clock::new(8);
        let ctx = Arc::new(
            NodeContext::open(ledger.clone(), identity, clock, Default::default()).expect("open"),
        );
        let intake = Intake::new(ledger, clock, IntakeConfig::default());
        (intake, Signer::new(ctx, SignerConfig::default()))
    }

    fn cases(n: usize, state: pb::CaseState) -> Submission {
        Submission {
            cases: (0..n)
                .map(|i| {
                    let closed = if state == pb::CaseState::InProgress {
                        ""
                    } else {
                        "2025-01-20"
                    };
                    (
                        i as u64,
                        pb::Case {
                            id: format!("C-{i}"),
                            category: pb::Category::Land as i32,
                            registered_on: "2025-01-05".into(),
                            state: state as i32,
                            closed_on: closed.into(),
                            deadline: String::new(),
                        },
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_bulk_change_yields_one_revision_and_revisions_increase() {
        let (intake, signer) = setup();
        intake
            .record(cases(500, pb::CaseState::InProgress))
            .expect("record");
        let signed = signer.sign_dirty().expect("sign");
        assert_eq!(signed.len(), 1);
        assert_eq!(signed[0].revision, 1);
        // Nothing changed: nothing signed.
        assert!(signer.sign_dirty().expect("sign").is_empty());

        intake
            .record(cases(10, pb::CaseState::Resolved))
            .expect("record");
        let signed = signer.sign_dirty().expect("sign");
        assert_eq!(signed[0].revision, 2);

        let month = Month::parse("2025-01").expect("month");
        let identity = &signer.ctx.identity;
        let store = signer.ledger().store();
        let revisions = layout::summary_revisions(store, identity.region, month).expect("revs");
        assert_eq!(revisions.len(), 2);
        let latest = revisions
            .last()
            .and_then(|r| r.envelope.clone())
            .expect("env");
        let summary: pb::Summary =
            statement::open(&latest, &identity.public_key()).expect("verifies");
        let view = SummaryView::from_pb(&summary).expect("valid");
        let land = view.total.category(tallytree_proto::Category::Land);
        assert_eq!(
            (land.registered, land.resolved, land.in_progress),
            (500, 10, 490)
        );
        // Each revision waits in the outbox, the latest replacing the earlier.
        assert_eq!(layout::outbox(store).expect("outbox"), vec![(month, 2)]);
    }
}
