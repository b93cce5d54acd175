//! `tallytree.v1.Intake` over [`crate::intake::Intake`].

use tallytree_proto::pb::{self, intake_server::Intake as IntakeRpc};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::{blocking, status};
use crate::intake::{Intake, IntakeError, Outcome, Submission};

/// Chunks decoded and waiting for the import's worker: one, so that the
/// next chunk is decoded while the worker checks the current one, and
/// memory holds about three chunks whatever the import's length.
const CHUNKS_IN_FLIGHT: usize = 1;

/// What the gRPC service hands an import's worker.
enum ToImport {
    /// The next chunk.
    Chunk(pb::ImportChunk),
    /// The stream ended: commit.
    End,
}

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
    async fn record_unary(&self, sub: Submission) -> Result<Response<pb::RecordResponse>, Status> {
        let intake = self.intake.clone();
        let out = blocking(move || intake.record_all(sub).map_err(status)).await?;
        Ok(Response::new(out.to_pb()))
    }
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
        self.record_unary(sub).await
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
        self.record_unary(sub).await
    }

    async fn record_direct_tally(
        &self,
        request: Request<pb::DirectTally>,
    ) -> Result<Response<pb::RecordResponse>, Status> {
        let entry = request.into_inner();
        let intake = self.intake.clone();
        let out = blocking(move || intake.record_direct(&entry).map_err(status)).await?;
        Ok(Response::new(out.to_pb()))
    }

    /// Bulk import: each chunk is checked and staged by a blocking worker as
    /// it arrives; the import commits when the stream ends. The response
    /// reports every refused row; with refusals and without skip_invalid,
    /// or with dry_run, nothing is stored (accepted is 0). A stream that
    /// breaks, or a call dropped by its client, stores nothing: the worker
    /// sees its channel close without `ToImport::End` and removes what it
    /// staged.
    async fn import(
        &self,
        request: Request<Streaming<pb::ImportChunk>>,
    ) -> Result<Response<pb::RecordResponse>, Status> {
        let mut stream = request.into_inner();
        let (tx, mut rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let mut import = self.intake.begin_import();
        let worker =
            tokio::task::spawn_blocking(move || -> Result<Option<Outcome>, IntakeError> {
                while let Some(message) = rx.blocking_recv() {
                    match message {
                        ToImport::Chunk(chunk) => import.add(chunk)?,
                        ToImport::End => return import.finish().map(Some),
                    }
                }
                Ok(None)
            });
        let mut broken = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    if tx.send(ToImport::Chunk(chunk)).await.is_err() {
                        // The worker stopped: its error is the answer.
                        break;
                    }
                }
                Err(status) => {
                    broken = Some(status);
                    break;
                }
            }
        }
        if broken.is_none() {
            // Fails only if the worker already stopped with an error.
            let _ = tx.send(ToImport::End).await;
        }
        drop(tx);
        let answer = worker
            .await
            .map_err(|e| Status::internal(format!("import worker failed: {e}")))?;
        match (answer, broken) {
            (Err(e), _) => Err(status(e)),
            (Ok(_), Some(status)) => Err(status),
            (Ok(Some(out)), None) => Ok(Response::new(out.to_pb())),
            (Ok(None), None) => Err(Status::internal("import worker stopped early")),
        }
    }
}
