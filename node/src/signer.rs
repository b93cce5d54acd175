//! The signer: turns changed months into new signed summary revisions.
//!
//! Intake marks months dirty (durably, with the change itself). The signer
//! waits until changes stop arriving for `debounce_ms` (or `max_delay_ms`
//! has passed since the first), so a bulk import yields one revision per
//! month, not thousands. For each dirty month up to the current one it
//! derives the local tally, and if the summary would differ from the latest
//! revision it signs revision + 1 and stores it, clearing the mark in the
//! same synced batch. Future months (tasks due later) stay dirty until their
//! month comes.

use std::{sync::Arc, time::Duration};

use prost::Message;
use tallytree_aggregator::{SummaryView, Tally};
use tallytree_proto::{Month, RegionCode, SigningKey, statement};
use tokio::time::Instant;
use tracing::{debug, error, info};

use crate::{
    clock::Clock,
    config::SignerConfig,
    ledger::Ledger,
    store::{
        Batch, Cf, StoreError,
        layout::{self, SummaryRow},
    },
};

/// Who signs: the unit's code, name and key.
#[derive(Debug)]
pub struct Identity {
    /// The unit's code.
    pub region: RegionCode,
    /// The unit's Chinese name.
    pub name: String,
    /// The unit's signing key.
    pub key: SigningKey,
}

/// The signer of one node.
#[derive(Debug, Clone)]
pub struct Signer {
    /// Records in, summaries out.
    ledger: Arc<Ledger>,
    /// The unit.
    identity: Arc<Identity>,
    /// For timestamps and "today".
    clock: Clock,
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
    /// A signer for `identity` over `ledger`.
    pub fn new(
        ledger: Arc<Ledger>,
        identity: Arc<Identity>,
        clock: Clock,
        config: SignerConfig,
    ) -> Signer {
        Signer {
            ledger,
            identity,
            clock,
            config,
        }
    }

    /// Marks every month with tasks dirty, so that tasks that became overdue
    /// while the node was down are counted. Blocking.
    pub fn mark_task_months(&self) -> Result<(), StoreError> {
        let store = self.ledger.store();
        let mut months = std::collections::BTreeSet::new();
        let mut failure = None;
        store.scan(Cf::TaskIds, b"", &mut |_, v| {
            match layout::month_of_key(v, "task_ids") {
                Ok(m) => {
                    months.insert(m);
                }
                Err(e) => failure = Some(e),
            }
            failure.is_none()
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        let _writer = self.ledger.lock();
        let mut batch = Batch::default();
        for m in months {
            batch.put(Cf::Dirty, layout::month_key(m), Vec::new());
        }
        if !batch.is_empty() {
            self.ledger.write_changes(batch)?;
        }
        Ok(())
    }

    /// Signs every dirty month up to the current one. Blocking.
    pub fn sign_dirty(&self) -> Result<Vec<Signed>, StoreError> {
        let now = self.clock.month();
        let today = self.clock.today();
        let mut signed = Vec::new();
        for month in layout::dirty_months(self.ledger.store())? {
            if month > now {
                continue;
            }
            // Hold the writer lock per month: intake cannot change the month
            // between deriving its tally and clearing its mark.
            let _writer = self.ledger.lock();
            let store = self.ledger.store();
            let local = layout::local_tally(store, month, today)?;
            let latest = layout::latest_summary(store, self.identity.region, month)?;
            let previous = latest.as_ref().map(SummaryRow::view).transpose()?;
            let mut batch = Batch::default();
            batch.delete(Cf::Dirty, layout::month_key(month));
            let unchanged = match &previous {
                Some(p) => p.local == local && p.total == local && p.children.is_empty(),
                None => local.is_zero(),
            };
            if !unchanged {
                let revision = previous.as_ref().map_or(1, |p| p.revision + 1);
                let summary = self.summary(month, revision, local);
                let sealed = statement::seal(&self.identity.key, &summary.to_pb());
                let row = SummaryRow {
                    envelope: Some(sealed.envelope),
                    received_at_ms: summary.issued_at_ms,
                    verified: true,
                };
                batch.put(
                    Cf::Summaries,
                    layout::summary_key(self.identity.region, month, revision),
                    row.encode_to_vec(),
                );
                info!(region = %self.identity.region, period = %month, revision, digest = %sealed.digest.short(), "signed summary");
                signed.push(Signed { month, revision });
            }
            store.write(batch)?;
        }
        Ok(signed)
    }

    fn summary(&self, month: Month, revision: u64, local: Tally) -> SummaryView {
        let view = SummaryView {
            region: self.identity.region,
            name: self.identity.name.clone(),
            parent: self.identity.region.parent(),
            period: month,
            revision,
            issued_at_ms: self.clock.now_ms(),
            local,
            total: local,
            children: Vec::new(),
            children_expected: 0,
        };
        debug_assert!(
            SummaryView::from_pb(&view.to_pb()).is_ok(),
            "own summary well formed"
        );
        view
    }

    /// Runs until `shutdown` resolves, signing after changes settle and
    /// re-deriving at each date change (tasks fall overdue). Signs what is
    /// pending once more before returning.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let debounce = Duration::from_millis(self.config.debounce_ms);
        let max_delay = Duration::from_millis(self.config.max_delay_ms);
        let mut today = self.clock.today();
        // Sign whatever a previous run left dirty.
        self.sign_in_background().await;
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.ledger.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(60)) => {
                    let now = self.clock.today();
                    if now == today {
                        continue;
                    }
                    today = now;
                    let this = self.clone();
                    if let Err(e) = tokio::task::spawn_blocking(move || this.mark_task_months()).await {
                        error!(error = %e, "re-deriving task months failed");
                    }
                }
            }
            // Debounce: wait for a quiet spell, but no longer than max_delay.
            let deadline = Instant::now() + max_delay;
            loop {
                let quiet = tokio::time::sleep(debounce);
                tokio::select! {
                    _ = self.ledger.changed() => {
                        if Instant::now() >= deadline { break; }
                    }
                    _ = quiet => break,
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            self.sign_in_background().await;
        }
        self.sign_in_background().await;
        debug!("signer stopped");
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
    use tallytree_proto::pb;

    use super::*;
    use crate::{
        config::IntakeConfig,
        intake::{Intake, Submission},
        store::MemStore,
    };

    fn setup() -> (Intake, Signer, Arc<Identity>) {
        let ledger = Arc::new(Ledger::new(Arc::new(MemStore::new())));
        let (key, _) = SigningKey::generate().expect("key");
        let identity = Arc::new(Identity {
            region: RegionCode::parse("210214001001").expect("code"),
            name: "玉皇庙社区".into(),
            key,
        });
        let clock = Clock::new(8);
        let intake = Intake::new(ledger.clone(), clock, IntakeConfig::default());
        let signer = Signer::new(ledger, identity.clone(), clock, SignerConfig::default());
        (intake, signer, identity)
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
        let (intake, signer, identity) = setup();
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
        let store = signer.ledger.store();
        let revisions = layout::summary_revisions(store, identity.region, month).expect("revs");
        assert_eq!(revisions.len(), 2);
        let latest = revisions
            .last()
            .and_then(|r| r.envelope.clone())
            .expect("env");
        let summary: pb::Summary =
            statement::open(&latest, &identity.key.public_key()).expect("verifies");
        let view = SummaryView::from_pb(&summary).expect("valid");
        let land = view.total.category(tallytree_proto::Category::Land);
        assert_eq!(
            (land.registered, land.resolved, land.in_progress),
            (500, 10, 490)
        );
    }
}
