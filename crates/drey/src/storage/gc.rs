//! Garbage collection of objects: ids allocated but never registered within
//! `min_object_timeout`, and objects whose last referencing segment was deleted.
//!
//! Order matters for invariant 1: the index row is moved to `deleting` first (after which
//! no segment can reference it), then the bytes are deleted, then the row. A crash at any
//! point leaves a `deleting` row that the next pass finishes; never a dangling reference.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::index::{Index, IndexError};
use super::objects::Objects;
use crate::util::unix_now_ns;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    pub deleted: usize,
    pub failed: usize,
}

/// Objects claimed per index transaction.
const BATCH: usize = 256;

/// Collects everything due now, batch after batch, until nothing is left.
pub async fn run_once(index: &dyn Index, objects: &Objects) -> Result<GcReport, IndexError> {
    let mut report = GcReport::default();
    loop {
        let claimed = index.claim_gc_candidates(unix_now_ns(), BATCH).await?;
        if claimed.is_empty() {
            return Ok(report);
        }
        let n = claimed.len();
        for o in claimed {
            if o.controlled
                && let Err(e) = objects.delete(&o.id).await
            {
                // The row stays in `deleting` with its due time: the next pass retries.
                tracing::warn!(object_id = %o.id, error = %e, "gc: could not delete object bytes");
                report.failed += 1;
                continue;
            }
            index.forget_object(&o.id).await?;
            report.deleted += 1;
        }
        metrics::counter!("drey_gc_objects_deleted_total").increment(report.deleted as u64);
        if report.failed > 0 || n < BATCH {
            return Ok(report);
        }
    }
}

/// Runs collection every `interval`, or sooner when `wake` is notified, until `stop`.
pub fn spawn(
    index: Arc<dyn Index>,
    objects: Arc<Objects>,
    interval: Duration,
    wake: Arc<Notify>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
                _ = wake.notified() => {}
            }
            match run_once(index.as_ref(), &objects).await {
                Ok(r) if r.deleted + r.failed > 0 => {
                    tracing::info!(deleted = r.deleted, failed = r.failed, "gc pass");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "gc pass failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::index::{SegmentRow, SqliteIndex};
    use drey_core::Id;

    #[tokio::test]
    async fn collects_expired_allocations_and_unreferenced_objects_only() {
        let dir = tempfile::tempdir().unwrap();
        let index = SqliteIndex::open(&format!("sqlite://{}", dir.path().join("i.db").display()))
            .await
            .unwrap();
        let objects = Objects::local(dir.path().join("objects")).unwrap();
        let flow: drey_core::model::Flow = serde_json::from_value(serde_json::json!({
            "id": Id::new_v4(), "source_id": Id::new_v4(), "format": "urn:x-nmos:format:data",
            "codec": "application/json", "container": "application/json", "essence_parameters": {}
        }))
        .unwrap();
        index.put_flow(&flow, None, 0).await.unwrap();
        let now = unix_now_ns();
        // "expired": allocated long ago, uploaded, never registered. "fresh": not yet due.
        // "used": registered in a segment.
        index
            .allocate_objects(
                flow.id,
                &["expired".into(), "used".into()],
                None,
                0,
                now - 1,
            )
            .await
            .unwrap();
        index
            .allocate_objects(flow.id, &["fresh".into()], None, 0, now + 3_600_000_000_000)
            .await
            .unwrap();
        for id in ["expired", "used", "fresh"] {
            objects
                .put(id, bytes::Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        index
            .mark_objects_stored(&[("used".into(), 1), ("expired".into(), 1)])
            .await
            .unwrap();
        let seg = SegmentRow::from_post(
            &serde_json::from_value(
                serde_json::json!({"object_id": "used", "timerange": "[0:0_1:0)"}),
            )
            .unwrap(),
        );
        assert!(index.register_segments(flow.id, &[seg], now).await.unwrap()[0].is_ok());

        let report = run_once(&index, &objects).await.unwrap();
        assert_eq!(
            report,
            GcReport {
                deleted: 1,
                failed: 0
            }
        );
        assert_eq!(objects.head("expired").await.unwrap(), None);
        assert_eq!(objects.head("used").await.unwrap(), Some(1));
        assert_eq!(objects.head("fresh").await.unwrap(), Some(1));

        // Once its segment is deleted, "used" goes too.
        index
            .delete_segments(
                flow.id,
                &drey_core::TimeRange::ETERNITY,
                None,
                100,
                unix_now_ns(),
            )
            .await
            .unwrap();
        assert_eq!(run_once(&index, &objects).await.unwrap().deleted, 1);
        assert_eq!(objects.head("used").await.unwrap(), None);
        assert!(
            index
                .get_objects(&["used".into(), "expired".into()])
                .await
                .unwrap()
                .is_empty()
        );
    }
}
