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
