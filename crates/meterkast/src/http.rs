//! The HTTP side: health and the latest reading per meter (the full API grows here).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::source::Status;

/// What the handlers share.
#[derive(Clone, Default)]
pub struct AppState {
    /// Latest frame JSON per meter key.
    pub latest: Arc<RwLock<BTreeMap<String, String>>>,
    /// Every source's status.
    pub sources: Arc<Vec<Status>>,
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/api/v1/now", get(now))
        .with_state(state)
}

/// `GET /`: what this server offers, until the dashboard takes this place.
async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        concat!(
            "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>",
            "<title>meterkast</title><h1>meterkast ",
            env!("CARGO_PKG_VERSION"),
            "</h1><ul><li><a href='/api/v1/now'>/api/v1/now</a>: the latest reading of every meter",
            "<li><a href='/healthz'>/healthz</a>: sources and their state</ul>"
        ),
    )
}

async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    let sources: Vec<_> = s
        .sources
        .iter()
        .map(|st| {
            let st = st.lock().expect("status lock");
            json!({"name": st.name, "connected": st.connected, "accepted": st.accepted, "note": st.note})
        })
        .collect();
    Json(
        json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "meters": s.latest.read().expect("latest lock").len(), "sources": sources}),
    )
}

/// `GET /api/v1/now`: `[{"meter", "timestamp", "reading", "objects", ...}]`, latest per meter.
async fn now(State(s): State<AppState>) -> impl IntoResponse {
    let latest = s.latest.read().expect("latest lock");
    let mut body = String::with_capacity(latest.values().map(|v| v.len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (i, v) in latest.values().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(v);
    }
    body.push(']');
    ([(header::CONTENT_TYPE, "application/json")], body)
}
