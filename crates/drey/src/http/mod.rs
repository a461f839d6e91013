//! The HTTP API: TAMS 8.2 at the root of the listener, HLS playlists beside the flows and
//! sources they play, drey's object URLs under `/media`,
//! `/metrics` and `/openapi.json`. [`app`] builds the whole router so tests need no socket.
//! Handlers live one file per group of operations; errors map to status codes in `error`.

pub mod error;
mod export;
mod flows;
mod hls;
mod keys;
pub mod media;
mod objects;
mod paging;
pub mod query;
mod segments;
mod service;
mod sources;
pub mod state;
mod ui;
mod webhooks;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use flows::run_delete_request;
pub use state::{AppState, ServiceConfig};

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/", get(ui::root))
        .route("/ui/config.json", get(ui::config))
        .route("/ui/{*path}", get(ui::asset))
        .route(
            "/service",
            get(service::get_service).post(service::post_service),
        )
        .route("/service/storage-backends", get(service::storage_backends))
        .route("/admin/keys", get(keys::list).post(keys::create))
        .route(
            "/admin/keys/{key_id}",
            get(keys::get_one).delete(keys::revoke),
        )
        .route(
            "/service/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            "/service/webhooks/{webhook_id}",
            get(webhooks::get_one)
                .put(webhooks::put)
                .delete(webhooks::delete),
        )
        .route("/sources", get(sources::list))
        .route("/sources/{source_id}", get(sources::get_one))
        .route(
            "/sources/{source_id}/playlist.m3u8",
            get(hls::source_playlist),
        )
        .route(
            "/sources/{source_id}/download",
            get(export::source_download),
        )
        .route("/sources/{source_id}/tags", get(sources::get_tags))
        .route(
            "/sources/{source_id}/tags/{name}",
            get(sources::get_tag)
                .put(sources::put_tag)
                .delete(sources::delete_tag),
        )
        .route(
            "/sources/{source_id}/{property}",
            get(sources::get_property)
                .put(sources::put_property)
                .delete(sources::delete_property),
        )
        .route("/flows", get(flows::list))
        .route(
            "/flows/{flow_id}",
            get(flows::get_one)
                .put(flows::put_one)
                .delete(flows::delete_one),
        )
        .route("/flows/{flow_id}/playlist.m3u8", get(hls::flow_playlist))
        .route("/flows/{flow_id}/download", get(export::download))
        .route("/flows/{flow_id}/timeline", get(ui::timeline))
        .route("/flows/{flow_id}/tags", get(flows::get_tags))
        .route(
            "/flows/{flow_id}/tags/{name}",
            get(flows::get_tag)
                .put(flows::put_tag)
                .delete(flows::delete_tag),
        )
        .route(
            "/flows/{flow_id}/segments",
            get(segments::list)
                .post(segments::post)
                .delete(segments::delete),
        )
        .route("/flows/{flow_id}/storage", post(objects::allocate))
        .route(
            "/flows/{flow_id}/{property}",
            get(flows::get_property)
                .put(flows::put_property)
                .delete(flows::delete_property),
        )
        .route("/objects/{object_id}", get(objects::get_one))
        .route("/flow-delete-requests", get(flows::list_delete_requests))
        .route(
            "/flow-delete-requests/{request_id}",
            get(flows::get_delete_request),
        )
        .route("/openapi.json", get(service::openapi))
        .route("/metrics", get(service::metrics))
        .layer(DefaultBodyLimit::max(state.cfg.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.cfg.max_body_bytes,
            refuse_declared_oversize,
        ))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(60),
        ));
    // Object bytes stream without a body limit (put_stream enforces max_object_bytes) and
    // without the API timeout (large objects on slow links).
    let media = Router::new()
        .route("/media/{*object_id}", get(media::get).put(media::put))
        .route("/hls/objects/{*file}", get(media::get_with_extension))
        .layer(DefaultBodyLimit::disable());
    api.merge(media)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::gate,
        ))
        .layer(middleware::from_fn(record_metrics))
        .layer(CatchPanicLayer::new())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Answers 413 (JSON) at once to a request whose Content-Length is over the limit, instead
/// of reading the body up to the limit first.
async fn refuse_declared_oversize(
    axum::extract::State(limit): axum::extract::State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => {
            axum::response::IntoResponse::into_response(error::ApiError::TooLarge {
                limit: limit as u64,
            })
        }
        _ => next.run(req).await,
    }
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("drey_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("drey_http_request_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}
