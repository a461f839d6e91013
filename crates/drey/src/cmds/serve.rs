//! `drey serve`: opens the store, starts the background workers (garbage collection,
//! delete requests), then serves HTTP until SIGINT/SIGTERM (graceful on the first signal,
//! immediate on the second).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio_util::sync::CancellationToken;

use crate::config::{ServeArgs, ServeConfig, redact};
use crate::http::{self, AppState};
use crate::ingest::{Ingest, rtmp};
use crate::storage::gc;
use crate::util::unix_now_ns;

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = ServeConfig::resolve(&args)?;
    let (index, objects) = cfg.store.open().await?;
    // Every write goes through the notifying wrapper, so webhooks hear of all of them.
    let webhooks = crate::webhooks::Webhooks::new(index.clone(), cfg.webhooks.clone());
    let index: Arc<dyn crate::storage::index::Index> = Arc::new(
        crate::webhooks::notify::NotifyingIndex::new(index, webhooks.clone()),
    );
    let mut service = cfg.service.clone();
    if !cfg.anonymous_explicit {
        // An address that is not an IP (a host name) counts as beyond loopback.
        service.anonymous = match cfg.http.parse::<std::net::SocketAddr>() {
            Ok(addr) => crate::auth::Anonymous::default_for(&addr),
            Err(_) => crate::auth::Anonymous::Read,
        };
    }
    let mut state = AppState::new(index.clone(), objects.clone(), service);
    state.webhooks = webhooks.clone();
    state.metrics = Some(
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .context("installing the metrics recorder")?,
    );
    let stop = CancellationToken::new();
    let gc_task = gc::spawn(
        index.clone(),
        objects.clone(),
        cfg.gc_interval,
        state.gc_wake.clone(),
        stop.clone(),
    );
    let delete_task = spawn_delete_worker(state.clone(), stop.clone());
    let prepare_task = if state.cfg.tams_sample_tables {
        let (prepare, task) = crate::packaging::prepare::Prepare::spawn(
            index.clone(),
            objects.clone(),
            state.mp4_tables.clone(),
            stop.clone(),
        );
        state.prepare = Some(prepare);
        Some(task)
    } else {
        None
    };
    let webhook_task = crate::webhooks::deliver::spawn(webhooks, stop.clone())?;

    // Live ingest stops taking media on the first signal (`ingest_stop`), then its
    // uploaders get a deadline to store or spool what they hold.
    let ingest_stop = stop.child_token();
    state.rtmp_tokens_required =
        crate::auth::tokens_required(&cfg.rtmp_auth, state.cfg.anonymous, cfg.rtmp.as_deref());
    let ingest = Ingest::new(
        index.clone(),
        objects.clone(),
        cfg.ingest.clone(),
        Arc::new(crate::auth::TokenPublishAuth {
            index: index.clone(),
            keys: state.keys.clone(),
            required: state.rtmp_tokens_required,
            callbacks: if cfg.callbacks.any() {
                Some(crate::ingest::callbacks::Callbacks::new(
                    cfg.callbacks.clone(),
                )?)
            } else {
                None
            },
        }),
        state.events.clone(),
        ingest_stop.clone(),
    )?;
    ingest.drain_leftovers()?;
    let sweeper = crate::ingest::sweep::spawn(ingest.clone());
    let (rtmp_addr, rtmp_thread) = match &cfg.rtmp {
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr)
                .with_context(|| format!("binding RTMP {addr}"))?;
            let local = l.local_addr()?;
            (
                Some(local.to_string()),
                Some(rtmp::start(ingest.clone(), l)?),
            )
        }
        None => (None, None),
    };

    // The RTMP URL as publishers see it: this server's public host, the bound port.
    state.rtmp_url = rtmp_addr.as_deref().map(|addr| {
        let port = addr.rsplit(':').next().unwrap_or("1935");
        let host = url::Url::parse(&cfg.service.public_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "127.0.0.1".to_owned());
        format!("rtmp://{host}:{port}/live/")
    });
    let listener = tokio::net::TcpListener::bind(&cfg.http)
        .await
        .with_context(|| format!("binding {}", cfg.http))?;
    if state.cfg.anonymous != crate::auth::Anonymous::ReadWrite {
        tracing::info!(anonymous = ?state.cfg.anonymous, "requests without credentials are limited; sign with a drey access key (drey keys create)");
    }
    tracing::info!(
        http = %listener.local_addr()?,
        rtmp = %rtmp_addr.as_deref().unwrap_or("off"),
        database = %redact(&cfg.store.database),
        objects = %cfg.store.objects,
        public_url = %cfg.service.public_url,
        "drey ready"
    );
    let shutdown = stop.clone();
    // Responses leave as they are written (nginx's `tcp_nodelay on`): with Nagle's
    // algorithm the tail of a streamed body can wait for the client's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on an HTTP connection");
        }
    });
    axum::serve(listener, http::app(state))
        .with_graceful_shutdown(async move {
            crate::util::shutdown_signal().await;
            tracing::info!("shutting down (send the signal again to stop at once)");
            shutdown.cancel();
            tokio::spawn(async {
                crate::util::shutdown_signal().await;
                tracing::warn!("second signal: exiting now");
                std::process::exit(130);
            });
        })
        .await?;
    stop.cancel();
    if let Some(t) = rtmp_thread {
        // Connections close their publishes (handing on the last segments) first.
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    ingest.tasks.close();
    if tokio::time::timeout(Duration::from_secs(10), ingest.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            spooled = ingest.spool.files(),
            "uploads still running at exit; spooled segments are stored on the next start"
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = gc_task.await;
        let _ = delete_task.await;
        let _ = webhook_task.await;
        let _ = sweeper.await;
        if let Some(t) = prepare_task {
            let _ = t.await;
        }
    })
    .await;
    Ok(())
}

/// Picks up delete requests left unfinished by a crashed or restarted instance (their
/// lease expired) and finishes them.
fn spawn_delete_worker(state: AppState, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    let wake = state.delete_wake.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                _ = wake.notified() => {}
            }
            let lease = unix_now_ns().saturating_add(30_000_000_000);
            match state.index.claim_delete_request(unix_now_ns(), lease).await {
                Ok(Some(req)) => {
                    tracing::info!(request = %req.id, flow = %req.flow_id, "resuming flow delete request");
                    http::run_delete_request(&state, req).await;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "claiming delete requests failed"),
            }
        }
    })
}
