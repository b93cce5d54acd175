//! The node wired together: [`Node::open`] opens the store and key,
//! [`Node::run`] serves every service until shutdown.

use std::{future::Future, sync::Arc};

use tallytree_proto::{
    SigningKey,
    pb::{
        audit_server::AuditServer, enrolments_server::EnrolmentsServer,
        federation_server::FederationServer, intake_server::IntakeServer, node_server::NodeServer,
        query_server::QueryServer,
    },
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tracing::info;

use crate::{
    access::{Access, AccessError, Action},
    clock::Clock,
    config::Config,
    console::{self, Console, listener::ConsoleListener},
    context::NodeContext,
    evidence::Evidence,
    federation::{Enrolments, Roots, Submissions, pusher::Pusher},
    grpc::{
        AuditService, EnrolmentsService, FederationService, Guard, IntakeService, NodeService,
        QueryService,
    },
    identity::Identity,
    intake::{self, Intake},
    ledger::Ledger,
    overload::{CallLimitLayer, RateLimiter},
    query::Query,
    signer::Signer,
    store::{self, RocksStore, Store},
    tls::{
        material::{Authority, TlsError},
        server::{HandshakeLimits, console_config, server_config},
    },
};

/// Accepted connections with Nagle's algorithm off: gRPC answers are small
/// and must not wait for delayed ACKs (40 ms a round trip otherwise). For a
/// node configured plaintext; [`crate::tls::server::incoming`] otherwise.
fn plaintext_incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(conn)
    })
}

/// Reports the write services NOT_SERVING (and the node as a whole) while
/// its disk is full, so that a supervisor or a load balancer sees it; while
/// full, a small synced write every two seconds finds out when space is
/// back. Runs until `shutdown`.
async fn watch_storage(
    ctx: Arc<NodeContext>,
    health: tonic_health::server::HealthReporter,
    shutdown: impl Future<Output = ()>,
) {
    use tonic_health::ServingStatus;
    tokio::pin!(shutdown);
    let mut reported_full = false;
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
        let store = ctx.ledger.store_arc();
        let full = tokio::task::spawn_blocking(move || {
            if store.is_full() {
                let mut probe = store::Batch::default();
                probe.put(store::Cf::Meta, b"health_probe".to_vec(), Vec::new());
                let _ = store.write(probe);
            }
            store.is_full()
        })
        .await
        .unwrap_or(false);
        if full == reported_full {
            continue;
        }
        reported_full = full;
        let status = if full {
            tracing::warn!("storage full: write services report NOT_SERVING");
            ServingStatus::NotServing
        } else {
            info!("storage writable again: serving");
            ServingStatus::Serving
        };
        for name in [
            "",
            "tallytree.v1.Intake",
            "tallytree.v1.Federation",
            "tallytree.v1.Enrolments",
        ] {
            health.set_service_status(name, status).await;
        }
    }
}

/// Why a node cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The key file is missing or unreadable.
    #[error(transparent)]
    Key(#[from] tallytree_proto::KeyError),
    /// The data directory cannot be opened.
    #[error("data_dir {path}: {source}")]
    Store {
        /// The directory.
        path: String,
        /// The cause.
        source: store::StoreError,
    },
    /// The TLS key or CA is missing or unusable.
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
    /// The credentials file is unusable.
    #[error("access: {0}")]
    Access(#[from] AccessError),
    /// The reflection service could not be built from the descriptors.
    #[error("reflection: {0}")]
    Reflection(String),
    /// The console could not start.
    #[error("console: {0}")]
    Console(String),
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A node, opened and ready to serve.
#[derive(Debug)]
pub struct Node {
    /// The configuration it runs with.
    config: Config,
    /// Store, identity, clock and trust, shared by every part.
    ctx: Arc<NodeContext>,
    /// The node's CA.
    ca: Arc<Authority>,
    /// The node's credentials.
    access: Arc<Access>,
}

impl Node {
    /// Opens the node's store and key.
    pub fn open(config: Config) -> Result<Node, NodeError> {
        let key = SigningKey::load(&config.key_file)?;
        let data_dir = config.data_dir.display().to_string();
        let store_err = |source| NodeError::Store {
            path: data_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| store_err(store::StoreError::Engine(e.to_string())))?;
        // Checked before the store is opened: a node that cannot serve
        // TLS or check credentials does not start at all.
        let ca = Arc::new(Authority::load(
            &config.tls.ca_key_file,
            &config.tls.ca_file,
        )?);
        crate::tls::material::TlsKey::load(&config.tls.key_file)?;
        let access = Arc::new(Access::open(&config.access)?);
        let store = RocksStore::open(&config.data_dir).map_err(store_err)?;
        let key_file = Some(config.key_file.clone());
        Node::with_store(config, key, key_file, Arc::new(store), ca, access).map_err(store_err)
    }

    /// A node over any store (tests use [`store::MemStore`]), with its CA
    /// and credentials.
    pub fn with_store(
        config: Config,
        key: SigningKey,
        key_file: Option<std::path::PathBuf>,
        store: Arc<dyn Store>,
        ca: Arc<Authority>,
        access: Arc<Access>,
    ) -> Result<Node, store::StoreError> {
        let identity = Identity::new(config.region, config.name.clone(), key, key_file);
        let identity = Arc::new(if config.tls.key_file.exists() {
            identity.with_tls_key_file(config.tls.key_file.clone())
        } else {
            identity
        });
        let clock = Clock::new(config.utc_offset_hours);
        let ledger = Arc::new(Ledger::new(store));
        // Before anything reads records: finish or drop what a stopped run
        // left of its bulk imports.
        intake::import::recover(&ledger)?;
        let ctx = Arc::new(NodeContext::open(
            ledger,
            identity,
            clock,
            config.findings.params(config.utc_offset_hours),
        )?);
        Ok(Node {
            config,
            ctx,
            ca,
            access,
        })
    }

    /// Serves gRPC on `listener` until `shutdown` resolves, then stops
    /// accepting calls, lets running ones finish, and signs what is pending.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), NodeError> {
        self.serve(listener, None, shutdown).await
    }

    /// Serves gRPC on `listener` and, when given, the web console on
    /// `console`, until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: TcpListener,
        console: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), NodeError> {
        let (ended, on_end) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = ended.send(true);
        });
        let ended = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let shutdown = ended(on_end.clone());
        let ctx = self.ctx.clone();
        let region = ctx.identity.region;
        let signer = Signer::new(ctx.clone(), self.config.signer.clone());
        signer.catch_up().await;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let signer_task = tokio::spawn(signer.run(wait(stopped.clone())));
        let plaintext = self.config.tls.plaintext;
        let pusher = Pusher::new(ctx.clone(), self.config.parent.clone(), plaintext);
        let pusher_task = tokio::spawn(pusher.run(wait(stopped)));

        let intake = Intake::new(ctx.ledger.clone(), ctx.clock, self.config.intake.clone());
        let imports = intake.clone();
        let console_task = match console {
            Some(listener) => {
                Some(self.start_console(listener, intake.clone(), ended(on_end.clone()))?)
            }
            None => None,
        };
        let query = Query::new(ctx.clone());
        let max = self.config.intake.max_message_bytes;
        let guard = |action| Guard::new(self.access.clone(), action);
        let limits = self.config.limits.clone();
        let intake_rate = Arc::new(RateLimiter::new(
            "intake",
            limits.intake_per_second,
            limits.intake_burst,
        ));
        let submit_rate = Arc::new(RateLimiter::new(
            "Submit",
            limits.submit_per_second,
            limits.submit_burst,
        ));

        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<IntakeServer<IntakeService>>().await;
        health.set_serving::<QueryServer<QueryService>>().await;
        health.set_serving::<AuditServer<AuditService>>().await;
        health
            .set_serving::<FederationServer<FederationService>>()
            .await;
        health
            .set_serving::<EnrolmentsServer<EnrolmentsService>>()
            .await;
        health.set_serving::<NodeServer<NodeService>>().await;
        let health_task = tokio::spawn(watch_storage(
            ctx.clone(),
            health.clone(),
            wait(stop.subscribe()),
        ));
        // Both generations of the reflection protocol: grpcurl and current
        // clients speak v1; grpcio's Python reflection, Postman, older
        // grpcurl and grpc_cli speak v1alpha.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(tallytree_proto::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_err =
            |e: tonic_reflection::server::Error| NodeError::Reflection(e.to_string());
        let reflection_v1 = reflection().build_v1().map_err(reflection_err)?;
        let reflection_v1alpha = reflection().build_v1alpha().map_err(reflection_err)?;

        let intake_server =
            IntakeServer::new(IntakeService::new(intake)).max_decoding_message_size(max);
        let query_server =
            QueryServer::new(QueryService::new(query.clone())).max_decoding_message_size(max);
        let audit_server = AuditServer::new(AuditService::new(query, Evidence::new(ctx.clone())))
            .max_decoding_message_size(max);
        // Submissions carry descendant summaries: allow large ones.
        let federation_server = FederationServer::new(FederationService::new(
            Arc::new(Submissions::new(ctx.clone())),
            submit_rate,
        ))
        .max_decoding_message_size(self.config.federation.max_submission_bytes);
        let enrolments_server = EnrolmentsServer::new(EnrolmentsService::new(
            Enrolments::new(ctx.clone(), self.ca.clone()),
            Roots::new(ctx.clone()),
        ))
        .max_decoding_message_size(max);

        let addr = listener.local_addr().ok();
        info!(region = %region, name = %ctx.identity.name, addr = ?addr, key = %&ctx.identity.public_key().key_id()[..16], tls = !plaintext, "node serving");
        let ms = std::time::Duration::from_millis;
        let router = tonic::transport::Server::builder()
            .timeout(ms(limits.request_timeout_ms))
            .concurrency_limit_per_connection(limits.max_concurrent_calls_per_connection)
            .load_shed(true)
            .max_concurrent_streams(limits.max_streams_per_connection)
            .http2_max_header_list_size(limits.max_header_bytes)
            .http2_max_pending_accept_reset_streams(Some(limits.max_pending_resets))
            .http2_keepalive_interval(Some(ms(limits.keepalive_interval_ms)))
            .http2_keepalive_timeout(Some(ms(limits.keepalive_timeout_ms)))
            .layer(CallLimitLayer::new(
                limits.max_concurrent_calls,
                limits.max_concurrent_submissions,
            ))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(InterceptedService::new(
                intake_server,
                guard(Action::Write).with_rate_limit(intake_rate),
            ))
            .add_service(InterceptedService::new(
                enrolments_server,
                guard(Action::Enrol),
            ))
            .add_service(federation_server)
            .add_service(InterceptedService::new(query_server, guard(Action::Read)))
            .add_service(InterceptedService::new(audit_server, guard(Action::Audit)))
            .add_service(NodeServer::new(NodeService::new(
                ctx.identity.clone(),
                Roots::new(ctx.clone()),
            )));
        let served = if plaintext {
            router
                .serve_with_incoming_shutdown(plaintext_incoming(listener), shutdown)
                .await
        } else {
            let tls = server_config(self.ca.clone(), region, self.server_names(addr), ctx.clock)?;
            let limits = HandshakeLimits {
                timeout: std::time::Duration::from_millis(self.config.tls.handshake_timeout_ms),
                concurrent: self.config.tls.max_handshakes,
            };
            router
                .serve_with_incoming_shutdown(
                    crate::tls::server::incoming(listener, tls, limits),
                    shutdown,
                )
                .await
        };
        if let Some(task) = console_task {
            let _ = task.await;
        }
        // An import whose client went away may still be removing its rows.
        imports.imports_finished().await;
        let _ = stop.send(true);
        let _ = signer_task.await;
        let _ = pusher_task.await;
        let _ = health_task.await;
        info!(region = %region, "node stopped");
        served.map_err(NodeError::from)
    }

    /// Starts the web console on `listener`: HTTPS with a certificate of the
    /// node's CA, or plain HTTP for a plaintext node (on loopback only).
    fn start_console(
        &self,
        listener: TcpListener,
        intake: Intake,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<tokio::task::JoinHandle<()>, NodeError> {
        let console = Arc::new(Console::new(
            self.ctx.clone(),
            intake,
            self.access.clone(),
            self.config.console.clone(),
        ));
        let addr = listener.local_addr().ok();
        info!(addr = ?addr, tls = !self.config.tls.plaintext, "console serving");
        let served = if self.config.tls.plaintext {
            tokio::spawn(console::serve(console, listener, shutdown))
        } else {
            let tls = console_config(
                self.ca.clone(),
                self.ctx.identity.region,
                self.server_names(addr),
                self.ctx.clock,
            )?;
            let limits = HandshakeLimits {
                timeout: std::time::Duration::from_millis(self.config.tls.handshake_timeout_ms),
                concurrent: self.config.tls.max_handshakes,
            };
            let listener = ConsoleListener::tls(listener, tls, limits)
                .map_err(|e| NodeError::Console(e.to_string()))?;
            tokio::spawn(console::serve(console, listener, shutdown))
        };
        Ok(tokio::spawn(async move {
            match served.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "console stopped"),
                Err(e) => tracing::error!(error = %e, "console task failed"),
            }
        }))
    }

    /// The names the server certificate carries beyond the fixed ones: the
    /// configured names and the address listened on, when specific.
    fn server_names(&self, addr: Option<std::net::SocketAddr>) -> Vec<String> {
        let mut names = self.config.tls.server_names.clone();
        if let Some(a) = addr.filter(|a| !a.ip().is_unspecified()) {
            names.push(a.ip().to_string());
        }
        names
    }
}
