//! Ends the `ingesting` status of RTMP flows whose publisher is gone without a goodbye: a
//! drey killed mid-publish (kill -9, power loss) never runs the publish's end, and its
//! flows would otherwise say `ingesting`, so HLS would serve them as live forever. Every
//! instance sweeps: a flow made by RTMP ingest, `ingesting`, not live on this instance, and
//! with no segment registered for `stale_after` is set to `awaiting_content` (compare-and-
//! swap, so a concurrent update wins). A publish that is in fact still running elsewhere
//! sets `ingesting` again with its next segment's flow check.

use std::sync::Arc;
use std::time::Duration;

use drey_core::model::FlowStatus;

use super::Ingest;
use crate::storage::index::FlowQuery;
use crate::util::unix_now_ns;

/// Starts the sweeper; it stops with the ingest stop token.
pub fn spawn(ing: Arc<Ingest>) -> tokio::task::JoinHandle<()> {
    let every = (ing.cfg.stale_after / 4).max(Duration::from_secs(1));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = ing.stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match sweep_once(&ing).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    flows = n,
                    "ended the ingesting status of flows whose publisher is gone"
                ),
                Err(e) => tracing::warn!(error = %e, "stale-ingest sweep failed"),
            }
        }
    })
}

/// One pass; returns how many flows it set to `awaiting_content`.
pub async fn sweep_once(ing: &Ingest) -> anyhow::Result<usize> {
    let stale_ns = i64::try_from(ing.cfg.stale_after.as_nanos()).unwrap_or(i64::MAX);
    let now = unix_now_ns();
    let mut ended = 0;
    for f in ing.index.list_flows(&FlowQuery::default()).await? {
        if f.status != Some(FlowStatus::Ingesting) {
            continue;
        }
        let tags = f.tags.as_ref();
        let tag = |name: &str| match tags.and_then(|t| t.get(name)) {
            Some(drey_core::model::TagValue::One(v)) => Some(v.as_str()),
            _ => None,
        };
        if tag("drey.ingest") != Some("rtmp") {
            continue;
        }
        if let (Some(app), Some(key)) = (tag("drey.rtmp.app"), f.label.as_deref())
            && ing.is_live(&format!("{app}/{key}"))
        {
            continue;
        }
        let last = f
            .segments_updated
            .as_deref()
            .or(f.metadata_updated.as_deref())
            .or(f.created.as_deref())
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .and_then(|t| i64::try_from(t.unix_timestamp_nanos()).ok());
        if last.is_some_and(|t| now.saturating_sub(t) < stale_ns) {
            continue;
        }
        let Some(v) = ing.index.get_flow(f.id).await? else {
            continue;
        };
        let mut d = v.value;
        if d.status != Some(FlowStatus::Ingesting) {
            continue;
        }
        d.status = Some(FlowStatus::AwaitingContent);
        if let crate::storage::index::PutFlow::Updated = ing
            .index
            .put_flow(&d, Some(&v.version), unix_now_ns())
            .await?
        {
            tracing::info!(flow = %f.id, label = ?f.label, "publisher gone: flow no longer ingesting");
            ended += 1;
        }
    }
    Ok(ended)
}
