//! A federation of real processes, enrolled and linked, with its checks.

#![allow(dead_code)]

use super::*;

/// A federation of real processes: each unit's node, and a [`Link`] from
/// each child to its parent.
pub(crate) struct Tree {
    /// The units' nodes, parents before children (dropped before the
    /// units, whose directories hold their logs).
    pub(crate) procs: Vec<Proc>,
    /// Each unit's relay to its parent, when its parent is in the tree.
    pub(crate) uplinks: Vec<Option<Link>>,
    /// Each unit's parent's index in the tree.
    pub(crate) parents: Vec<Option<usize>>,
    /// The units, in the same order (they hold keys, data and logs).
    pub(crate) units: Vec<Unit>,
}

impl Tree {
    /// Starts `units` (parents first), each child pushing to its parent (if
    /// in the tree) through a relay and enrolled there; `kill_at` arms kill
    /// points of named units.
    pub(crate) async fn start(mut units: Vec<Unit>, kill_at: &[(&str, &str)]) -> Tree {
        let codes: Vec<RegionCode> = units.iter().map(Unit::region).collect();
        let mut tree = Tree {
            procs: Vec::new(),
            uplinks: Vec::new(),
            parents: Vec::new(),
            units: Vec::new(),
        };
        for mut unit in units.drain(..) {
            let parent = unit
                .region()
                .parent()
                .and_then(|p| codes.iter().position(|c| *c == p));
            let link = match parent {
                Some(p) => {
                    let link = Link::to(&tree.procs[p]).await;
                    unit.push_to(link.addr);
                    Some(link)
                }
                None => None,
            };
            let armed = kill_at
                .iter()
                .find(|(code, _)| *code == unit.region().to_string())
                .map(|(_, point)| *point);
            let proc = Proc::start(&unit, armed).await;
            if let Some(p) = parent {
                let enrolled = enrol(
                    &tree.procs[p].remote(),
                    unit.region(),
                    &unit.config.name,
                    unit.public_key,
                    &unit.tls_csr,
                )
                .await;
                install(&proc.remote(), enrolled).await;
            }
            tree.units.push(unit);
            tree.procs.push(proc);
            tree.uplinks.push(link);
            tree.parents.push(parent);
        }
        tree
    }

    /// The index of unit `code`.
    pub(crate) fn index(&self, code: &str) -> usize {
        self.procs
            .iter()
            .position(|p| p.region.to_string() == code)
            .unwrap_or_else(|| panic!("{code} is not in this tree"))
    }

    /// The node of unit `code`.
    pub(crate) fn proc(&mut self, code: &str) -> &mut Proc {
        let i = self.index(code);
        &mut self.procs[i]
    }

    /// The relay from unit `code` to its parent.
    pub(crate) fn uplink(&self, code: &str) -> &Link {
        self.uplinks[self.index(code)]
            .as_ref()
            .unwrap_or_else(|| panic!("{code} has no parent in this tree"))
    }

    /// The indexes of the children of unit `i`.
    pub(crate) fn children(&self, i: usize) -> Vec<usize> {
        (0..self.procs.len())
            .filter(|c| self.parents[*c] == Some(i))
            .collect()
    }

    /// The indexes of the villages under unit `i` (itself when it has no
    /// children).
    pub(crate) fn leaves_under(&self, i: usize) -> Vec<usize> {
        let children = self.children(i);
        if children.is_empty() {
            return vec![i];
        }
        children
            .into_iter()
            .flat_map(|c| self.leaves_under(c))
            .collect()
    }

    /// Notes what every running child holds from its parent in `month` and
    /// checks everything noted so far against every running parent.
    pub(crate) async fn check(&mut self, witness: &mut Witness, month: Month) {
        for i in 0..self.procs.len() {
            let Some(p) = self.parents[i] else { continue };
            if !self.procs[i].running() || !self.procs[p].running() {
                continue;
            }
            let child = &self.procs[i];
            match held_receipts(&child.remote(), child.region, month).await {
                Ok(held) => {
                    witness.note(child.region, &self.procs[p].key, &held);
                    witness.still_held(child.region, &held, "live");
                }
                Err(s) => witness.violation(format!(
                    "{}: its receipts cannot be read: {s:?}",
                    child.label
                )),
            }
        }
        for i in 0..self.procs.len() {
            let Some(p) = self.parents[i] else { continue };
            if !self.procs[p].running() {
                continue;
            }
            let parent = self.procs[p].remote();
            witness.check_parent(&parent, self.procs[i].region).await;
        }
    }

    /// Waits until every node's total for `month` is exactly the sum of
    /// the villages' books under it, then checks that each parent counts
    /// each child once, at the child's latest revision, and stores one
    /// summary per revision.
    pub(crate) async fn converge(&self, books: &BTreeMap<usize, Tally>, month: Month) {
        for i in (0..self.procs.len()).rev() {
            let want = fed::sum(
                self.leaves_under(i)
                    .iter()
                    .map(|l| books.get(l).expect("a book for every village")),
            );
            fed::wait_total(&self.procs[i].remote(), month, want).await;
        }
        for i in 0..self.procs.len() {
            let children = self.children(i);
            if children.is_empty() {
                continue;
            }
            let parent = self.procs[i].remote();
            let own = revisions(&parent, self.procs[i].region, month).await;
            let (_, rollup) = own.last().expect("the parent signed");
            let counted: Vec<RegionCode> = rollup.children.iter().map(|c| c.region).collect();
            let unique: BTreeSet<RegionCode> = counted.iter().copied().collect();
            assert_eq!(
                counted.len(),
                unique.len(),
                "{}: a child counted twice: {counted:?}",
                self.procs[i].label
            );
            for c in children {
                let child = &self.procs[c];
                let held = revisions(&parent, child.region, month).await;
                one_per_revision(&held).unwrap_or_else(|e| panic!("{}: {e}", self.procs[i].label));
                let latest = revisions(&child.remote(), child.region, month)
                    .await
                    .last()
                    .map(|(_, v)| v.revision)
                    .expect("the child signed");
                let entry = rollup
                    .children
                    .iter()
                    .find(|e| e.region == child.region)
                    .unwrap_or_else(|| panic!("{} not counted: {rollup:?}", child.label));
                assert_eq!(
                    entry.revision, latest,
                    "{} counts {} at revision {}, its latest is {latest}",
                    self.procs[i].label, child.label, entry.revision
                );
            }
        }
    }

    /// Stops every node gracefully (children first) and checks what each
    /// child holds in its store: every receipt noted is still there, and
    /// every receipt there names a summary its parent's store holds with
    /// that revision and digest; nothing waits in a child's outbox; no node
    /// keeps conflicting summaries as evidence or leftovers of an import.
    pub(crate) async fn stop_and_check_stores(&mut self, witness: &mut Witness) {
        for p in self.procs.iter_mut().rev() {
            p.stop().await;
        }
        let mut held_by: Vec<BTreeMap<(RegionCode, Month, u64), Digest>> = Vec::new();
        for p in &self.procs {
            let store = open_store(&p.data_dir).await;
            // Nothing left of an import.
            let mut staged = 0;
            store
                .scan(Cf::Staging, b"", &mut |_, _| {
                    staged += 1;
                    true
                })
                .expect("scan");
            if staged > 0 {
                witness.violation(format!("{}: {staged} staged import rows left", p.label));
            }
            let marks = layout::committed_imports(&store).expect("commit marks");
            if !marks.is_empty() {
                witness.violation(format!("{}: import commit marks left: {marks:?}", p.label));
            }
            let mut rows = Vec::new();
            store
                .scan(Cf::Summaries, b"", &mut |_, v| {
                    rows.push(layout::SummaryRow::from_bytes(v).expect("a summary row"));
                    true
                })
                .expect("summaries");
            let mut held = BTreeMap::new();
            for row in rows {
                let view = row.view().expect("a summary");
                held.insert(
                    (view.region, view.period, view.revision),
                    row.digest().expect("digest"),
                );
            }
            let evidence = layout::envelopes(&store, Cf::Evidence, b"").expect("evidence");
            witness.judge_evidence(p, &held, &evidence);
            held_by.push(held);
        }
        for i in 0..self.procs.len() {
            let Some(p) = self.parents[i] else { continue };
            let child = &self.procs[i];
            let store = open_store(&child.data_dir).await;
            let receipts = layout::envelopes(&store, Cf::Receipts, b"").expect("receipts");
            assert_eq!(
                layout::outbox(&store).expect("outbox"),
                vec![],
                "{}: something still waits to be pushed",
                child.label
            );
            drop(store);
            witness.note(child.region, &self.procs[p].key, &receipts);
            witness.still_held(child.region, &receipts, "in its store");
            for (key, digest) in witness.noted(child.region) {
                witness.checked += 1;
                if held_by[p].get(&key) != Some(&digest) {
                    witness.violation(format!(
                        "{} holds a receipt for revision {} of {} ({}) that {}'s store does not hold",
                        child.label,
                        key.2,
                        key.1,
                        digest.short(),
                        self.procs[p].label
                    ));
                }
            }
        }
    }
}
