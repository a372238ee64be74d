//! The HTTP side: the dashboard at `/`, the REST API under `/api/v1/`, its OpenAPI document, live Server-Sent
//! Events, Prometheus metrics, and optional authentication.

pub mod api;
pub mod auth;
pub mod dash;
pub mod guard;
pub mod health;
pub mod homewizard;
pub mod hostwifi;
pub mod live;
pub mod metrics;
pub mod serve;
pub mod stream;
pub mod web;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use serde_json::json;
use tokio::sync::broadcast;

use crate::source::Status;
use crate::store::{Location, StoreRead};

pub use auth::Auth;
pub use metrics::Metrics;

/// The latest state of one meter, kept in memory for the fast endpoints.
#[derive(Clone, Debug)]
pub struct Latest {
    /// Frame JSON (`{"meter", "timestamp", "reading", "objects", ...}`).
    pub frame: Arc<str>,
    /// The raw telegram (decrypted DSMR text for Smarty).
    pub raw: Arc<[u8]>,
    /// Its time (unix seconds).
    pub ts: i64,
}

/// Blocking database reads for short answers running at once; the rest wait their
/// turn (a bounded share of the blocking pool, apart from the exports').
const READS: usize = 16;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Latest state per meter key.
    pub latest: Arc<RwLock<BTreeMap<String, Latest>>>,
    /// Every source's status.
    pub sources: Arc<Vec<Status>>,
    /// The store (readers are opened from it and pooled).
    pub db: Location,
    readers: Arc<Mutex<Vec<Box<dyn StoreRead + Send>>>>,
    /// Accepted frames, as frame JSON, for `/api/v1/live`.
    pub live: broadcast::Sender<Arc<str>>,
    /// HomeWizard identify requests, for `/api/v1/live`'s `identify` events.
    pub identify: broadcast::Sender<()>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Access control.
    pub auth: Auth,
    /// Becomes true when the server shuts down (ends live streams).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The HomeWizard-compatible API's settings.
    pub homewizard: homewizard::HwSettings,
    /// The prices from the config file (prices edited in the dashboard win).
    pub prices: Option<crate::prices::Prices>,
    /// Allowed host names and the listener's caps.
    pub guard: guard::GuardSettings,
    /// Places for exports streaming now (sized by `guard.max_exports`).
    pub exports: Arc<tokio::sync::Semaphore>,
    /// Database reads for short answers (dashboard, series): never taken by exports.
    pub reads: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// State for a database; no sources, no meters yet.
    pub fn new(
        db: Location,
        sources: Vec<Status>,
        auth: Auth,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> AppState {
        AppState {
            latest: Arc::default(),
            sources: Arc::new(sources),
            db,
            readers: Arc::default(),
            live: broadcast::channel(256).0,
            identify: broadcast::channel(4).0,
            metrics: Arc::default(),
            auth,
            shutdown,
            homewizard: homewizard::HwSettings::default(),
            prices: None,
            guard: guard::GuardSettings::default(),
            exports: Arc::new(tokio::sync::Semaphore::new(guard::DEFAULT_MAX_EXPORTS)),
            reads: Arc::new(tokio::sync::Semaphore::new(READS)),
        }
    }

    /// Sets the guards' settings (and sizes the export places to them).
    pub fn with_guard(mut self, guard: guard::GuardSettings) -> AppState {
        self.exports = Arc::new(tokio::sync::Semaphore::new(guard.max_exports));
        self.guard = guard;
        self
    }

    /// Runs `f` with a pooled reader on the blocking pool.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn StoreRead) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = self
            .reads
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        self.read_unbudgeted(move |r| {
            let _permit = permit;
            f(r)
        })
        .await
    }

    /// [`read`](Self::read) outside the short reads' budget: for work bounded by a
    /// budget of its own (exports).
    pub async fn read_unbudgeted<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn StoreRead) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let pool = self.readers.clone();
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let reader = pool.lock().expect("reader pool").pop();
            let reader = match reader {
                Some(r) => r,
                None => db.open_reader()?,
            };
            let out = f(&*reader);
            let mut p = pool.lock().expect("reader pool");
            if p.len() < 4 && !reader.is_broken() {
                p.push(reader);
            }
            out
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(format!("{e:#}")))
    }
}

/// An error answer: `{"error": "what is wrong and how to fix it"}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// 400: the request is wrong; the message says how to fix it.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 404: no such thing.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 500: our fault (never for user input).
    pub fn internal(message: impl Into<String>) -> ApiError {
        let message = message.into();
        tracing::error!("API: {message}");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": self.message}).to_string(),
        )
            .into_response()
    }
}

/// The router: the dashboard, API, live, metrics, health; authentication in front of all but health
/// and (unless `--homewizard-auth`) the HomeWizard-compatible endpoints, whose clients
/// send no credentials.
pub fn router(state: AppState) -> Router<()> {
    let homewizard = Router::new()
        .route("/api", get(homewizard::device))
        .route("/api/v1/data", get(homewizard::data))
        .route(
            "/api/v1/system",
            get(homewizard::get_system).put(homewizard::put_system),
        )
        .route("/api/v1/identify", put(homewizard::identify))
        .layer(axum::extract::DefaultBodyLimit::max(homewizard::MAX_BODY))
        .route("/api/v1/telegram", get(api::telegram));
    let (open, protected) = if state.homewizard.require_auth {
        (Router::new(), homewizard)
    } else {
        (homewizard, Router::new())
    };
    let protected = protected
        .route("/", get(web::index))
        .route("/assets/{*file}", get(web::asset))
        .route("/api/openapi.json", get(api::openapi_json))
        .route("/api/v1/now", get(api::now))
        .route("/api/v1/meters", get(api::meters))
        .route("/api/v1/series", get(api::series))
        .route("/api/v1/peaks", get(api::peaks))
        .route("/api/v1/export", get(api::export))
        .route("/api/v1/live", get(live::live))
        .route("/api/v1/cost", get(dash::cost))
        .route("/api/v1/baseload", get(dash::baseload))
        .route(
            "/api/v1/prices",
            get(dash::get_prices)
                .put(dash::put_prices)
                .patch(dash::patch_prices),
        )
        .route("/api/v1/status", get(dash::status))
        .route("/api/v1/power", get(dash::power))
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ));
    Router::new()
        .route("/healthz", get(api::healthz))
        .merge(open)
        .merge(protected)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::check_host,
        ))
        .layer(axum::middleware::from_fn(guard::browser_headers))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /api/openapi.json")
}

/// `GET /api/v1/live` (documented here; served by [`live::live`]).
#[utoipa::path(get, path = "/api/v1/live", responses((status = 200, content_type = "text/event-stream",
    description = "Server-Sent Events: one `reading` event per accepted reading, its data the frame JSON; an `identify` event (data `{}`) when a HomeWizard client asks the device to identify itself")))]
#[allow(dead_code)]
pub(crate) async fn live_doc() {}

/// `GET /metrics` (documented here; served by [`metrics::metrics`]).
#[utoipa::path(get, path = "/metrics", responses((status = 200, content_type = "text/plain",
    description = "Prometheus text: telegrams accepted and rejected by cause, source state, last reading age, store write latency")))]
#[allow(dead_code)]
pub(crate) async fn metrics_doc() {}
