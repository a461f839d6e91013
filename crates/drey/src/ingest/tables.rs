//! Keeping ingested segments' MP4 sample tables in the index (`rtmp_sample_tables`, off
//! by default: it costs ~10% more ingest CPU at 10 publishers), so
//! that even the first MP4 export of a live recording plans its file without reading the
//! segments. Rows are written in batches, a few seconds or a few hundred rows at a time:
//! one statement (and one SQLite commit) per segment cost ~14% more ingest CPU at 10
//! publishers, batched ~10% (docs/benchmarks.md). Best effort: a row lost to a
//! full queue, a failed write or a shutdown only means that export reads the segment.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::SegmentJob;
use crate::storage::index::{Index, SampleTables};

/// Rows waiting to be written at most; more are dropped (and counted).
const QUEUE: usize = 4096;
/// Rows per statement at most.
const BATCH: usize = 256;
/// How long the first row of a batch waits for others.
const EVERY: Duration = Duration::from_secs(2);

pub struct TableKeeper {
    tx: mpsc::Sender<SampleTables>,
}

fn count(result: &'static str, n: usize) {
    metrics::counter!("drey_ingest_sample_tables_total", "result" => result).increment(n as u64);
}

impl TableKeeper {
    /// Starts the writer task on the current runtime; each write gives up after `timeout`.
    /// On `stop` what is queued is written at once.
    pub fn spawn(index: Arc<dyn Index>, timeout: Duration, stop: CancellationToken) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(index, rx, timeout, stop));
        TableKeeper { tx }
    }

    /// Keeps the tables of a segment just indexed: computed on a blocking thread (one
    /// demux, no sample bytes copied), then queued for the next batch. Called once the
    /// segment is indexed, so its closed-to-indexed latency does not include this.
    pub async fn keep_segment(&self, job: &SegmentJob, data: Bytes) {
        let init = match &job.init {
            Some(i) => match base64::engine::general_purpose::STANDARD.decode(&i.data) {
                Ok(b) => Some(b),
                Err(_) => return,
            },
            None => None,
        };
        let tables = tokio::task::spawn_blocking(move || {
            crate::packaging::mp4::segment_tables(&data, init.as_deref())
        })
        .await;
        let tables = match tables {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                count("unreadable", 1);
                tracing::debug!(object = %job.object_id, error = %e, "segment's sample tables not kept");
                return;
            }
            Err(_) => return,
        };
        let row = SampleTables {
            object_id: job.object_id.clone(),
            init_object_id: job
                .init
                .as_ref()
                .map(|i| i.object_id.clone())
                .unwrap_or_default(),
            tables,
        };
        if self.tx.try_send(row).is_err() {
            count("dropped", 1);
        }
    }
}

async fn run(
    index: Arc<dyn Index>,
    mut rx: mpsc::Receiver<SampleTables>,
    timeout: Duration,
    stop: CancellationToken,
) {
    let mut stopping = false;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        if !stopping {
            let wait = tokio::time::sleep(EVERY);
            tokio::pin!(wait);
            while batch.len() < BATCH {
                tokio::select! {
                    r = rx.recv() => match r {
                        Some(r) => batch.push(r),
                        None => break,
                    },
                    () = &mut wait => break,
                    () = stop.cancelled() => {
                        stopping = true;
                        break;
                    }
                }
            }
        }
        // What is queued right now goes too (all that waits, once stopping).
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        write(index.as_ref(), &batch, timeout).await;
    }
}

async fn write(index: &dyn Index, batch: &[SampleTables], timeout: Duration) {
    match tokio::time::timeout(timeout, index.put_sample_tables(batch)).await {
        Ok(Ok(())) => count("kept", batch.len()),
        Ok(Err(e)) => {
            count("failed", batch.len());
            tracing::warn!(rows = batch.len(), error = %e, "could not keep segments' sample tables; their first MP4 export reads them");
        }
        Err(_) => {
            count("failed", batch.len());
            tracing::warn!(
                rows = batch.len(),
                "keeping segments' sample tables timed out; their first MP4 export reads them"
            );
        }
    }
}
