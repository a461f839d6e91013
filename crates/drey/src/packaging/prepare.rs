//! Sample tables made when a TAMS client registers segments (`tams_sample_tables`): a
//! background worker reads each newly registered segment once and keeps its MP4 sample
//! tables in the index, so the first MP4 export of the span plans from the index, here or
//! on any instance sharing it, instead of reading every segment twice. Best effort: a full
//! queue, an unreadable segment or an index error leaves the export to read the segment,
//! as without the option.

use std::collections::HashSet;
use std::sync::Arc;

use drey_core::media::tables;
use futures::stream::{self, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::mp4::{Container, Seg, TABLES_BATCH, Tables, read_segment};
use crate::storage::index::{Index, SampleTables};
use crate::storage::objects::Objects;

/// Registered segments waiting for their tables; beyond this, new ones are dropped (and
/// counted) rather than holding up registration.
const QUEUE: usize = 20_000;
/// Segments read at once: the worker shares the CPU and the store with ingest and exports.
const READERS: usize = 2;

/// The queue into the worker.
pub struct Prepare {
    tx: mpsc::Sender<Seg>,
}

fn count(result: &'static str, n: usize) {
    if n > 0 {
        metrics::counter!("drey_segments_sample_tables_total", "result" => result)
            .increment(n as u64);
    }
}

impl Prepare {
    /// Starts the worker; it stops when `stop` is cancelled (what is queued then is left
    /// to the exports).
    pub fn spawn(
        index: Arc<dyn Index>,
        objects: Arc<Objects>,
        tables: Arc<Tables>,
        stop: CancellationToken,
    ) -> (Arc<Prepare>, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Seg>(QUEUE);
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(TABLES_BATCH);
            loop {
                batch.clear();
                tokio::select! {
                    n = rx.recv_many(&mut batch, TABLES_BATCH) => if n == 0 { return },
                    () = stop.cancelled() => return,
                }
                let segs = std::mem::take(&mut batch);
                tokio::select! {
                    () = prepare(index.as_ref(), &objects, &tables, segs) => {}
                    () = stop.cancelled() => return,
                }
            }
        });
        (Arc::new(Prepare { tx }), task)
    }

    /// Queues segments just registered on a flow whose container is `media_type`: each
    /// `(object_id, init_object_id)`. A container an MP4 export cannot read queues nothing.
    pub fn queue(
        &self,
        media_type: &str,
        segments: impl IntoIterator<Item = (String, Option<String>)>,
    ) {
        let Some(container) = Container::of(media_type) else {
            return;
        };
        let mut dropped = 0;
        for (object_id, init_id) in segments {
            let seg = Seg {
                object_id,
                init_id,
                container,
            };
            if self.tx.try_send(seg).is_err() {
                dropped += 1;
            }
        }
        count("dropped", dropped);
    }
}

/// Reads the tables of `segs` that the index does not hold yet and keeps them there.
async fn prepare(
    index: &dyn Index,
    objects: &Arc<Objects>,
    tables: &Arc<Tables>,
    mut segs: Vec<Seg>,
) {
    let pair = |s: &Seg| (s.object_id.clone(), s.init_id.clone().unwrap_or_default());
    let mut seen = HashSet::new();
    segs.retain(|s| seen.insert(pair(s)));
    // An object registered again (in another flow, or again in this one) has its tables.
    let ids: Vec<String> = segs.iter().map(|s| s.object_id.clone()).collect();
    match index.get_sample_tables(&ids).await {
        Ok(rows) => {
            let have: HashSet<(String, String)> = rows
                .into_iter()
                .map(|r| (r.object_id, r.init_object_id))
                .collect();
            let before = segs.len();
            segs.retain(|s| !have.contains(&pair(s)));
            count("present", before - segs.len());
        }
        Err(e) => {
            tracing::warn!(error = %e, segments = segs.len(), "could not read the index's sample tables; the first MP4 export reads these segments for them");
            count("failed", segs.len());
            return;
        }
    }
    let rows: Vec<SampleTables> = stream::iter(segs)
        .map(|s| async move {
            match read_segment(tables, objects, &s, false).await {
                Ok(t) => Some(SampleTables {
                    tables: tables::encode(&t),
                    object_id: s.object_id,
                    init_object_id: s.init_id.unwrap_or_default(),
                }),
                Err(e) => {
                    tracing::debug!(object = %s.object_id, error = %e, "no sample tables for a registered segment");
                    count("unreadable", 1);
                    None
                }
            }
        })
        .buffer_unordered(READERS)
        .filter_map(|r| async move { r })
        .collect()
        .await;
    match index.put_sample_tables(&rows).await {
        Ok(()) => count("kept", rows.len()),
        Err(e) => {
            tracing::warn!(error = %e, segments = rows.len(), "could not keep sample tables in the index; the first MP4 export reads these segments for them");
            count("failed", rows.len());
        }
    }
}
