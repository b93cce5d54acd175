//! `tallytree record case|task|tally`: single entries over the unary calls.
//! A refused entry (by the node, or a word the CLI does not know) exits 1.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use tallytree_proto::{
    Category,
    pb::{self, intake_client::IntakeClient},
};

use tallytree_node::sheet::{case_state, task_state};

use crate::conn::{Conn, Refused, refusal};

/// One entry to record.
#[derive(Subcommand, Debug, Clone)]
pub enum Entry {
    /// Record or update one dispute case.
    Case {
        /// The unit's case number.
        #[arg(long)]
        id: String,
        /// Category: code (neighbour) or label (邻里).
        #[arg(long)]
        category: String,
        /// Registration date, YYYY-MM-DD.
        #[arg(long)]
        registered: String,
        /// in_progress, resolved or escalated (在办, 已化解, 已上交).
        #[arg(long)]
        state: String,
        /// Date resolved or escalated.
        #[arg(long, default_value = "")]
        closed: String,
        /// Handling deadline; the node's default period when omitted.
        #[arg(long, default_value = "")]
        deadline: String,
    },
    /// Record or update one governance task.
    Task {
        /// Task number.
        #[arg(long)]
        id: String,
        /// Title.
        #[arg(long)]
        title: String,
        /// Due date, YYYY-MM-DD.
        #[arg(long)]
        deadline: String,
        /// in_progress or completed (进行中, 已完成).
        #[arg(long)]
        state: String,
    },
    /// Enter figures directly for a month (units without case records).
    Tally {
        /// Month, YYYY-MM.
        #[arg(long)]
        period: String,
        /// Category of the case counts below.
        #[arg(long, requires = "registered")]
        category: Option<String>,
        /// Cases registered.
        #[arg(long, requires = "category")]
        registered: Option<u64>,
        /// Of those resolved.
        #[arg(long, default_value_t = 0)]
        resolved: u64,
        /// Of those escalated.
        #[arg(long, default_value_t = 0)]
        escalated: u64,
        /// Of those in progress.
        #[arg(long, default_value_t = 0)]
        in_progress: u64,
        /// Of the resolved, on time.
        #[arg(long, default_value_t = 0)]
        on_time: u64,
        /// Tasks due this month (sets the month's task counts).
        #[arg(long)]
        tasks_assigned: Option<u64>,
        /// Of those completed.
        #[arg(long, default_value_t = 0)]
        tasks_completed: u64,
        /// Of the unfinished, overdue.
        #[arg(long, default_value_t = 0)]
        tasks_overdue: u64,
    },
}

/// Sends one entry.
pub async fn run(conn: &Conn, entry: Entry) -> Result<ExitCode> {
    let mut client = IntakeClient::new(conn.connect().await?);
    let response = match entry {
        Entry::Case {
            id,
            category,
            registered,
            state,
            closed,
            deadline,
        } => {
            let Some(c) = Category::parse(&category) else {
                return Err(Refused(format!("--category ({category}): unknown category")).into());
            };
            let Some(s) = case_state(&state) else {
                return Err(Refused(format!(
                    "--state ({state}): one of in_progress, resolved, escalated"
                ))
                .into());
            };
            let case = pb::Case {
                id,
                category: c.to_pb() as i32,
                registered_on: registered,
                state: s as i32,
                closed_on: closed,
                deadline,
            };
            client
                .record_cases(pb::RecordCasesRequest { cases: vec![case] })
                .await
        }
        Entry::Task {
            id,
            title,
            deadline,
            state,
        } => {
            let Some(s) = task_state(&state) else {
                return Err(
                    Refused(format!("--state ({state}): one of in_progress, completed")).into(),
                );
            };
            let task = pb::Task {
                id,
                title,
                deadline,
                state: s as i32,
            };
            client
                .record_tasks(pb::RecordTasksRequest { tasks: vec![task] })
                .await
        }
        Entry::Tally {
            period,
            category,
            registered,
            resolved,
            escalated,
            in_progress,
            on_time,
            tasks_assigned,
            tasks_completed,
            tasks_overdue,
        } => {
            let mut cases = Vec::new();
            if let (Some(category), Some(registered)) = (category, registered) {
                let Some(c) = Category::parse(&category) else {
                    return Err(
                        Refused(format!("--category ({category}): unknown category")).into(),
                    );
                };
                cases.push(pb::CaseCounts {
                    category: c.to_pb() as i32,
                    registered,
                    resolved,
                    escalated,
                    in_progress,
                    resolved_on_time: on_time,
                });
            }
            let tasks = tasks_assigned.map(|assigned| pb::TaskCounts {
                assigned,
                completed: tasks_completed,
                in_progress: assigned.saturating_sub(tasks_completed),
                overdue: tasks_overdue,
            });
            client
                .record_direct_tally(pb::DirectTally {
                    period,
                    cases,
                    tasks,
                })
                .await
        }
    };
    let out = response.map_err(refusal)?.into_inner();
    println!(
        "recorded; months changed: {}",
        if out.months_changed.is_empty() {
            "none".into()
        } else {
            out.months_changed.join(", ")
        }
    );
    Ok(ExitCode::SUCCESS)
}
