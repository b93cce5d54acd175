//! `tallytree.v1.Intake` over [`crate::intake::Intake`].

use tallytree_proto::pb::{self, intake_server::Intake as IntakeRpc};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::{blocking, status};
use crate::intake::{Intake, Outcome, Submission};

/// Most refusals quoted in an INVALID_ARGUMENT message.
const QUOTED_REFUSALS: usize = 10;

/// The Intake gRPC service.
#[derive(Debug, Clone)]
pub struct IntakeService {
    /// The domain service.
    intake: Intake,
}

impl IntakeService {
    /// Serves `intake`.
    pub fn new(intake: Intake) -> IntakeService {
        IntakeService { intake }
    }

    /// Unary calls: a refused row refuses the call with INVALID_ARGUMENT.
    async fn record_unary(
        &self,
        sub: Submission,
        what: &str,
    ) -> Result<Response<pb::RecordResponse>, Status> {
        let intake = self.intake.clone();
        let rows = sub.len();
        let out = blocking(move || intake.record(sub).map_err(status)).await?;
        if !out.refused.is_empty() {
            return Err(Status::invalid_argument(refusal_message(&out, rows, what)));
        }
        Ok(Response::new(out.to_pb()))
    }
}

/// "2 of 5 rows refused, nothing stored: cases line 3 (id B): closed_on: ...",
/// lines being 1-based positions in the request.
fn refusal_message(out: &Outcome, rows: usize, what: &str) -> String {
    let mut msg = format!(
        "{} of {rows} rows refused, nothing stored",
        out.refused.len()
    );
    for (i, r) in out.refused.iter().take(QUOTED_REFUSALS).enumerate() {
        msg.push_str(if i == 0 { ": " } else { "; " });
        msg.push_str(&format!("{what} line {}", r.line));
        if !r.id.is_empty() {
            msg.push_str(&format!(" (id {})", r.id));
        }
        msg.push_str(": ");
        msg.push_str(&r.reason);
    }
    if out.refused.len() > QUOTED_REFUSALS {
        msg.push_str(&format!(
            "; and {} more",
            out.refused.len() - QUOTED_REFUSALS
        ));
    }
    msg
}

#[tonic::async_trait]
impl IntakeRpc for IntakeService {
    async fn record_cases(
        &self,
        request: Request<pb::RecordCasesRequest>,
    ) -> Result<Response<pb::RecordResponse>, Status> {
        let cases = request.into_inner().cases;
        let sub = Submission {
            cases: cases.into_iter().zip(1..).map(|(c, i)| (i, c)).collect(),
            ..Default::default()
        };
        self.record_unary(sub, "cases").await
    }

    async fn record_tasks(
        &self,
        request: Request<pb::RecordTasksRequest>,
    ) -> Result<Response<pb::RecordResponse>, Status> {
        let tasks = request.into_inner().tasks;
        let sub = Submission {
            tasks: tasks.into_iter().zip(1..).map(|(t, i)| (i, t)).collect(),
            ..Default::default()
        };
        self.record_unary(sub, "tasks").await
    }

    async fn record_direct_tally(
        &self,
        request: Request<pb::DirectTally>,
    ) -> Result<Response<pb::RecordResponse>, Status> {
        let entry = request.into_inner();
        let intake = self.intake.clone();
        let out = blocking(move || intake.record_direct(&entry).map_err(status)).await?;
        out.map(|o| Response::new(o.to_pb()))
            .map_err(Status::invalid_argument)
    }

    /// Bulk import: the whole stream is checked and committed as one batch
    /// when it ends. The response reports every refused row; with refusals
    /// and without skip_invalid, or with dry_run, nothing is stored
    /// (accepted is 0).
    async fn import(
        &self,
        request: Request<Streaming<pb::ImportChunk>>,
    ) -> Result<Response<pb::RecordResponse>, Status> {
        let mut stream = request.into_inner();
        let max_rows = self.intake.config().max_import_rows;
        let mut sub = Submission::default();
        let mut first = true;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if first {
                sub.skip_invalid = chunk.skip_invalid;
                sub.dry_run = chunk.dry_run;
                first = false;
            }
            sub.cases.extend(
                chunk
                    .cases
                    .into_iter()
                    .map(|c| (c.line, c.case.unwrap_or_default())),
            );
            sub.tasks.extend(
                chunk
                    .tasks
                    .into_iter()
                    .map(|t| (t.line, t.task.unwrap_or_default())),
            );
            if sub.len() as u64 > max_rows {
                return Err(Status::invalid_argument(format!(
                    "import: more than {max_rows} rows in one import (intake.max_import_rows); split the file"
                )));
            }
        }
        let intake = self.intake.clone();
        let out = blocking(move || intake.record(sub).map_err(status)).await?;
        Ok(Response::new(out.to_pb()))
    }
}
