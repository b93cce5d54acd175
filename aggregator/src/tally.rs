//! Tallies: the counts of one unit for one period, and what must hold of them.

use tallytree_proto::{Category, pb};

/// Counts of the cases of one category first registered in a period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaseCounts {
    /// Cases registered (排查).
    pub registered: u64,
    /// Of those, resolved (化解).
    pub resolved: u64,
    /// Of those, escalated to a higher level (上交).
    pub escalated: u64,
    /// Of those, still being handled (在办).
    pub in_progress: u64,
    /// Of the resolved ones, resolved by their deadline (按期化解).
    pub resolved_on_time: u64,
}

/// Counts of the governance tasks due in a period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCounts {
    /// Tasks due in the period.
    pub assigned: u64,
    /// Of those, completed.
    pub completed: u64,
    /// Of those, not completed yet.
    pub in_progress: u64,
    /// Of the ones in progress, past their deadline.
    pub overdue: u64,
}

/// The counts of one unit for one period: cases per category, and tasks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Indexed by [`Category::index`].
    pub cases: [CaseCounts; Category::COUNT],
    /// Governance tasks.
    pub tasks: TaskCounts,
}

/// A broken rule in a tally. `field` locates the tally ("total", "local",
/// "children\[3\]") so the message names exactly what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TallyError {
    /// A case category the list does not have.
    #[error("{field}.cases[{index}].category: unknown category {value} (category list v{version})")]
    UnknownCategory {
        /// Which tally.
        field: String,
        /// Position in the repeated field.
        index: usize,
        /// The wire value.
        value: i32,
        /// The category list version in force.
        version: u32,
    },
    /// Categories repeated or out of ascending order.
    #[error("{field}.cases[{index}].category: {category} repeated or out of ascending order")]
    CategoryOrder {
        /// Which tally.
        field: String,
        /// Position in the repeated field.
        index: usize,
        /// The category.
        category: Category,
    },
    /// resolved + escalated + in_progress != registered.
    #[error(
        "{field}: resolved ({resolved}) + escalated ({escalated}) + in_progress ({in_progress}) != registered ({registered}) for category {category}"
    )]
    CaseSum {
        /// Which tally.
        field: String,
        /// The category.
        category: Category,
        /// Registered.
        registered: u64,
        /// Resolved.
        resolved: u64,
        /// Escalated.
        escalated: u64,
        /// In progress.
        in_progress: u64,
    },
    /// resolved_on_time > resolved.
    #[error(
        "{field}: resolved_on_time ({on_time}) > resolved ({resolved}) for category {category}"
    )]
    OnTime {
        /// Which tally.
        field: String,
        /// The category.
        category: Category,
        /// Resolved on time.
        on_time: u64,
        /// Resolved.
        resolved: u64,
    },
    /// completed + in_progress != assigned.
    #[error(
        "{field}.tasks: completed ({completed}) + in_progress ({in_progress}) != assigned ({assigned})"
    )]
    TaskSum {
        /// Which tally.
        field: String,
        /// Completed.
        completed: u64,
        /// In progress.
        in_progress: u64,
        /// Assigned.
        assigned: u64,
    },
    /// overdue > in_progress.
    #[error("{field}.tasks: overdue ({overdue}) > in_progress ({in_progress})")]
    Overdue {
        /// Which tally.
        field: String,
        /// Overdue.
        overdue: u64,
        /// In progress.
        in_progress: u64,
    },
    /// A sum that does not fit in 64 bits.
    #[error("{field}: counts overflow")]
    Overflow {
        /// Which tally.
        field: String,
    },
}

/// Rates derived from counts; `None` where the denominator is 0.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    /// resolved / registered (化解率).
    pub resolution: Option<f64>,
    /// resolved_on_time / resolved (按期化解率).
    pub on_time: Option<f64>,
    /// escalated / registered (上交率).
    pub escalation: Option<f64>,
    /// completed / assigned (任务完成率).
    pub task_completion: Option<f64>,
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den != 0).then(|| num as f64 / den as f64)
}

impl CaseCounts {
    fn checked_add(&self, o: &CaseCounts) -> Option<CaseCounts> {
        Some(CaseCounts {
            registered: self.registered.checked_add(o.registered)?,
            resolved: self.resolved.checked_add(o.resolved)?,
            escalated: self.escalated.checked_add(o.escalated)?,
            in_progress: self.in_progress.checked_add(o.in_progress)?,
            resolved_on_time: self.resolved_on_time.checked_add(o.resolved_on_time)?,
        })
    }

    fn is_zero(&self) -> bool {
        *self == CaseCounts::default()
    }
}

impl TaskCounts {
    fn checked_add(&self, o: &TaskCounts) -> Option<TaskCounts> {
        Some(TaskCounts {
            assigned: self.assigned.checked_add(o.assigned)?,
            completed: self.completed.checked_add(o.completed)?,
            in_progress: self.in_progress.checked_add(o.in_progress)?,
            overdue: self.overdue.checked_add(o.overdue)?,
        })
    }
}

impl Tally {
    /// The counts of one category.
    pub fn category(&self, c: Category) -> &CaseCounts {
        &self.cases[c.index()]
    }

    /// The counts of one category, for updating.
    pub fn category_mut(&mut self, c: Category) -> &mut CaseCounts {
        &mut self.cases[c.index()]
    }

    /// All categories summed.
    pub fn case_totals(&self) -> CaseCounts {
        self.cases
            .iter()
            .fold(CaseCounts::default(), |acc, c| CaseCounts {
                registered: acc.registered.saturating_add(c.registered),
                resolved: acc.resolved.saturating_add(c.resolved),
                escalated: acc.escalated.saturating_add(c.escalated),
                in_progress: acc.in_progress.saturating_add(c.in_progress),
                resolved_on_time: acc.resolved_on_time.saturating_add(c.resolved_on_time),
            })
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(&self, other: &Tally) -> Option<Tally> {
        let mut out = Tally::default();
        for i in 0..Category::COUNT {
            out.cases[i] = self.cases[i].checked_add(&other.cases[i])?;
        }
        out.tasks = self.tasks.checked_add(&other.tasks)?;
        Some(out)
    }

    /// True when nothing is counted.
    pub fn is_zero(&self) -> bool {
        *self == Tally::default()
    }

    /// Checks the invariants: per category resolved + escalated + in_progress
    /// == registered and resolved_on_time <= resolved; for tasks completed +
    /// in_progress == assigned and overdue <= in_progress.
    pub fn check(&self, field: &str) -> Result<(), TallyError> {
        for category in Category::ALL {
            let c = self.category(category);
            let sum = c
                .resolved
                .checked_add(c.escalated)
                .and_then(|s| s.checked_add(c.in_progress));
            if sum != Some(c.registered) {
                return Err(TallyError::CaseSum {
                    field: field.to_owned(),
                    category,
                    registered: c.registered,
                    resolved: c.resolved,
                    escalated: c.escalated,
                    in_progress: c.in_progress,
                });
            }
            if c.resolved_on_time > c.resolved {
                return Err(TallyError::OnTime {
                    field: field.to_owned(),
                    category,
                    on_time: c.resolved_on_time,
                    resolved: c.resolved,
                });
            }
        }
        let t = &self.tasks;
        if t.completed.checked_add(t.in_progress) != Some(t.assigned) {
            return Err(TallyError::TaskSum {
                field: field.to_owned(),
                completed: t.completed,
                in_progress: t.in_progress,
                assigned: t.assigned,
            });
        }
        if t.overdue > t.in_progress {
            return Err(TallyError::Overdue {
                field: field.to_owned(),
                overdue: t.overdue,
                in_progress: t.in_progress,
            });
        }
        Ok(())
    }

    /// The derived rates over all categories.
    pub fn rates(&self) -> Rates {
        let c = self.case_totals();
        Rates {
            resolution: ratio(c.resolved, c.registered),
            on_time: ratio(c.resolved_on_time, c.resolved),
            escalation: ratio(c.escalated, c.registered),
            task_completion: ratio(self.tasks.completed, self.tasks.assigned),
        }
    }

    /// The wire form: categories ascending, empty ones left out.
    pub fn to_pb(&self) -> pb::Tally {
        let cases = Category::ALL
            .into_iter()
            .filter(|c| !self.category(*c).is_zero())
            .map(|c| {
                let n = self.category(c);
                pb::CaseCounts {
                    category: c.to_pb() as i32,
                    registered: n.registered,
                    resolved: n.resolved,
                    escalated: n.escalated,
                    in_progress: n.in_progress,
                    resolved_on_time: n.resolved_on_time,
                }
            })
            .collect();
        let t = &self.tasks;
        pb::Tally {
            cases,
            tasks: Some(pb::TaskCounts {
                assigned: t.assigned,
                completed: t.completed,
                in_progress: t.in_progress,
                overdue: t.overdue,
            }),
        }
    }

    /// From the wire form, refusing unknown, repeated or unordered categories.
    /// Does not check the invariants; call [`Tally::check`] for that.
    pub fn from_pb(t: &pb::Tally, field: &str) -> Result<Tally, TallyError> {
        let mut out = Tally::default();
        let mut last: Option<Category> = None;
        for (index, row) in t.cases.iter().enumerate() {
            let category =
                Category::from_pb(row.category).ok_or_else(|| TallyError::UnknownCategory {
                    field: field.to_owned(),
                    index,
                    value: row.category,
                    version: tallytree_proto::CATEGORY_LIST_VERSION,
                })?;
            if last.is_some_and(|l| l >= category) {
                return Err(TallyError::CategoryOrder {
                    field: field.to_owned(),
                    index,
                    category,
                });
            }
            last = Some(category);
            *out.category_mut(category) = CaseCounts {
                registered: row.registered,
                resolved: row.resolved,
                escalated: row.escalated,
                in_progress: row.in_progress,
                resolved_on_time: row.resolved_on_time,
            };
        }
        if let Some(t) = &t.tasks {
            out.tasks = TaskCounts {
                assigned: t.assigned,
                completed: t.completed,
                in_progress: t.in_progress,
                overdue: t.overdue,
            };
        }
        Ok(out)
    }
}

impl CaseCounts {
    /// From the wire form (the category is read by the caller).
    pub fn from_pb(row: &pb::CaseCounts) -> CaseCounts {
        CaseCounts {
            registered: row.registered,
            resolved: row.resolved,
            escalated: row.escalated,
            in_progress: row.in_progress,
            resolved_on_time: row.resolved_on_time,
        }
    }
}

impl TaskCounts {
    /// From the wire form.
    pub fn from_pb(t: &pb::TaskCounts) -> TaskCounts {
        TaskCounts {
            assigned: t.assigned,
            completed: t.completed,
            in_progress: t.in_progress,
            overdue: t.overdue,
        }
    }

    /// Checks completed + in_progress == assigned and overdue <= in_progress.
    pub fn check(&self, field: &str) -> Result<(), TallyError> {
        let t = Tally {
            tasks: *self,
            ..Tally::default()
        };
        t.check(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Tally {
        let mut t = Tally::default();
        *t.category_mut(Category::Neighbour) = CaseCounts {
            registered: 14,
            resolved: 12,
            escalated: 1,
            in_progress: 1,
            resolved_on_time: 11,
        };
        t.tasks = TaskCounts {
            assigned: 143,
            completed: 132,
            in_progress: 11,
            overdue: 3,
        };
        t
    }

    #[test]
    fn invariants_name_the_field_and_rule() {
        sample().check("local").expect("valid");
        let mut t = sample();
        t.category_mut(Category::Neighbour).escalated = 0;
        let msg = t.check("total").unwrap_err().to_string();
        assert_eq!(
            msg,
            "total: resolved (12) + escalated (0) + in_progress (1) != registered (14) for category neighbour"
        );
        let mut t = sample();
        t.category_mut(Category::Neighbour).resolved_on_time = 13;
        assert!(matches!(t.check("local"), Err(TallyError::OnTime { .. })));
        let mut t = sample();
        t.tasks.overdue = 12;
        assert!(matches!(t.check("local"), Err(TallyError::Overdue { .. })));
        let mut t = sample();
        t.tasks.assigned = 140;
        assert!(matches!(t.check("local"), Err(TallyError::TaskSum { .. })));
    }

    #[test]
    fn rates_follow_counts_and_are_undefined_without_denominator() {
        let r = sample().rates();
        assert_eq!(r.resolution, Some(12.0 / 14.0));
        assert_eq!(r.task_completion, Some(132.0 / 143.0));
        assert_eq!(Tally::default().rates().resolution, None);
        assert_eq!(Tally::default().rates().on_time, None);
    }

    #[test]
    fn wire_form_round_trips_and_refuses_bad_category_lists() {
        let t = sample();
        let wire = t.to_pb();
        assert_eq!(wire.cases.len(), 1);
        assert_eq!(Tally::from_pb(&wire, "local").expect("decode"), t);
        let mut dup = wire.clone();
        dup.cases.push(dup.cases[0]);
        assert!(matches!(
            Tally::from_pb(&dup, "local"),
            Err(TallyError::CategoryOrder { .. })
        ));
        let mut unknown = wire;
        unknown.cases[0].category = 42;
        let msg = Tally::from_pb(&unknown, "local").unwrap_err().to_string();
        assert!(msg.contains("unknown category 42"), "{msg}");
    }

    #[test]
    fn addition_detects_overflow() {
        let mut big = Tally::default();
        big.tasks.assigned = u64::MAX;
        assert!(big.checked_add(&big).is_none());
        assert_eq!(sample().checked_add(&Tally::default()), Some(sample()));
    }
}
