//! The web console: the node's second listener, for the people who read,
//! enter and check figures in a browser.
//!
//! It is thin over the node's domain code, as the gRPC services are: pages
//! call [`Query`], [`Intake`] and [`Evidence`] directly, on blocking
//! threads. Everything is rendered on the server (maud); the only script is
//! the embedded chart library and a small file that draws each page's
//! charts from the table data it carries, so every chart has its table and
//! every page works for printing and on old browsers.
//!
//! - [`session`]: login with the node's credentials, session cookies, CSRF.
//! - [`listener`]: HTTPS with the node's certificate.
//! - [`assets`]: the embedded stylesheet, script and chart library.
//! - [`lang`]: the words of every page, Chinese by default, English.
//! - [`shell`], [`table`]: the page around every view; tables, shown,
//!   exported as CSV and printed.
//! - [`figures`], [`completeness`], [`findings`], [`trust`], [`entry`], [`export`]: the
//!   views.

pub mod assets;
mod completeness;
mod entry;
mod export;
mod figures;
mod findings;
pub mod lang;
pub mod listener;
mod params;
pub mod session;
mod shell;
pub mod table;
#[cfg(test)]
mod tests;
mod trust;
mod upload;

use std::{future::Future, sync::Arc, time::Instant};

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use tower_http::compression::CompressionLayer;

use crate::{
    access::Access, config::ConsoleConfig, context::NodeContext, evidence::Evidence,
    intake::Intake, query::Query,
};

pub use self::session::Sessions;

/// What every page handler shares.
#[derive(Debug)]
pub struct Console {
    /// Store, identity, clock and trust.
    pub(crate) ctx: Arc<NodeContext>,
    /// Figures.
    pub(crate) query: Query,
    /// Cases and tasks.
    pub(crate) intake: Intake,
    /// Bundles and proofs.
    pub(crate) evidence: Evidence,
    /// Who may do what.
    pub(crate) access: Arc<Access>,
    /// Who is logged in.
    pub(crate) sessions: Sessions,
    /// Uploaded files waiting for the operator's confirmation.
    uploads: upload::Pending,
    /// Settings.
    pub(crate) config: ConsoleConfig,
}

/// The shared state of the handlers.
pub(crate) type Shared = Arc<Console>;

impl Console {
    /// The console of a node.
    pub fn new(
        ctx: Arc<NodeContext>,
        intake: Intake,
        access: Arc<Access>,
        config: ConsoleConfig,
    ) -> Console {
        Console {
            query: Query::new(ctx.clone()),
            evidence: Evidence::new(ctx.clone()),
            sessions: Sessions::new(&config),
            uploads: upload::Pending::default(),
            ctx,
            intake,
            access,
            config,
        }
    }

    /// Every page and file of the console.
    pub fn router(self: Arc<Self>) -> Router {
        let max_upload = self.config.max_upload_bytes;
        Router::new()
            .route("/", get(home))
            .route("/login", get(session::login_page).post(session::login))
            .route("/logout", post(session::logout))
            .route("/lang/{lang}", get(lang::switch))
            .route("/figures/{region}", get(figures::page))
            .route("/figures/{region}/{table}", get(figures::table_csv))
            .route("/completeness/{region}", get(completeness::page))
            .route(
                "/completeness/{region}/{table}",
                get(completeness::table_csv),
            )
            .route("/findings/{region}", get(findings::page))
            .route("/findings/{region}/{table}", get(findings::table_csv))
            .route("/summary/{region}/{month}", get(trust::page))
            .route("/summary/{region}/{month}/dsse.json", get(trust::dsse_json))
            .route("/proof/{region}/{month}", get(trust::proof))
            .route("/evidence/{region}", get(trust::bundle))
            .route("/export/{region}", get(export::subtree_csv))
            .route("/entry", get(entry::page))
            .route("/entry/case", post(entry::record_case))
            .route("/entry/task", post(entry::record_task))
            .route("/entry/{table}", get(entry::table_csv))
            .route(
                "/upload",
                get(upload::page).post(upload::preview).layer(
                    axum::extract::DefaultBodyLimit::max(max_upload.saturating_add(64 << 10)),
                ),
            )
            .route("/upload/confirm", post(upload::confirm))
            .route("/assets/{file}", get(assets::serve))
            .fallback(not_found)
            .layer(middleware::from_fn(security_headers))
            .layer(CompressionLayer::new().gzip(true))
            .with_state(self)
    }
}

async fn home(State(console): State<Shared>) -> Redirect {
    Redirect::to(&format!("/figures/{}", console.ctx.identity.region))
}

async fn not_found(lang: lang::Lang) -> Response {
    shell::error_page(lang, StatusCode::NOT_FOUND, lang.t().not_found)
}

/// What every answer carries: no framing by other sites, no sniffing, a
/// policy that allows only this node's own scripts and styles, nothing
/// cached that a session can see, and how long the server took
/// (`Server-Timing`, read by the benches).
async fn security_headers(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let is_asset = request.uri().path().starts_with("/assets/");
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "same-origin");
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    if !is_asset && !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    let micros = started.elapsed().as_micros();
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={}.{:03}", micros / 1000, micros % 1000))
    {
        h.insert("server-timing", v);
    }
    response
}

/// Why a page is not shown: an error page with its status and the message
/// naming the field and the rule (or the role needed).
#[derive(Debug)]
pub(crate) struct Refusal {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// What is wrong.
    pub(crate) message: String,
    /// The page language.
    pub(crate) lang: lang::Lang,
}

impl Refusal {
    /// A refusal with `status` saying `message`.
    pub(crate) fn new(lang: lang::Lang, status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
            lang,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        shell::error_page(self.lang, self.status, &self.message)
    }
}

/// Runs a blocking domain call off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Refusal> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "console task failed");
        Refusal::new(
            lang::Lang::Zh,
            StatusCode::INTERNAL_SERVER_ERROR,
            "内部错误 (internal error)",
        )
    })
}

/// Serves the console on `listener` (HTTPS, or plain TCP for a plaintext
/// node on loopback) until `shutdown` resolves.
pub async fn serve<L>(
    console: Arc<Console>,
    listener: L,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
    for<'a> listener::PeerAddr:
        axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    let app = console.router();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<listener::PeerAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
