//! Storing segments: object PUT then index rows, idempotently, with a timeout on every
//! step. One uploader per publish keeps its segments in order; when a step fails or the
//! upload falls behind, segments go to the spool and are retried with backoff, so a slow
//! or stopped object store or database costs latency, never segments.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use drey_core::TimeRange;
use drey_core::model::{Flow, FlowStatus};
use tokio::sync::{mpsc, watch};

use super::spool::{SpoolError, Spooled};
use super::{Ingest, InitObject, SegmentFormat, SegmentJob};
use crate::storage::index::{
    IndexError, ObjectState, PutFlow, SampleTables, SegmentQuery, SegmentRejection, SegmentRow,
};
use crate::storage::objects::ObjectError;
use crate::util::unix_now_ns;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("index: {0}")]
    Index(#[from] IndexError),
    #[error("object store: {0}")]
    Objects(#[from] ObjectError),
    #[error("spool: {0}")]
    Spool(#[from] SpoolError),
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error("{0}")]
    Retry(String),
}

/// How a segment left the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored,
    /// An earlier attempt stored it; its answer was lost.
    AlreadyStored,
    /// The index refused it for good (another writer holds that time): dropped, logged.
    Refused(String),
}

async fn step<T, E: Into<StoreError>>(
    ing: &Ingest,
    what: &'static str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(ing.cfg.op_timeout, fut).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(StoreError::Timeout(what)),
    }
}

/// Creates the flows if missing, or brings an existing flow's essence up to date (keeping
/// what users edited: tags, description, read_only...).
pub async fn ensure_flows(ing: &Ingest, flows: &[Flow]) -> Result<(), StoreError> {
    for f in flows {
        for _ in 0..3 {
            let existing = step(ing, "flow lookup", ing.index.get_flow(f.id)).await?;
            let (doc, version) = match existing {
                None => (f.clone(), None),
                Some(v) => {
                    let mut d = v.value;
                    let wanted = (
                        &f.essence,
                        &f.codec,
                        &f.container,
                        &f.flow_collection,
                        &f.segment_duration,
                        f.status,
                    );
                    if wanted
                        == (
                            &d.essence,
                            &d.codec,
                            &d.container,
                            &d.flow_collection,
                            &d.segment_duration,
                            d.status,
                        )
                    {
                        break;
                    }
                    d.essence = f.essence.clone();
                    d.codec = f.codec.clone();
                    d.container = f.container.clone();
                    d.flow_collection = f.flow_collection.clone();
                    d.segment_duration = f.segment_duration;
                    d.status = f.status;
                    (d, Some(v.version))
                }
            };
            match step(
                ing,
                "flow write",
                ing.index.put_flow(&doc, version.as_deref(), unix_now_ns()),
            )
            .await?
            {
                PutFlow::Created | PutFlow::Updated => break,
                PutFlow::Conflict => continue,
                PutFlow::SourceFormatMismatch { source_format } => {
                    return Err(StoreError::Retry(format!(
                        "flow {} names source {} of format {source_format}",
                        f.id, f.source_id
                    )));
                }
            }
        }
    }
    Ok(())
}

/// [`ensure_flows`], skipped when these are the flows last ensured.
async fn ensure_changed(
    ing: &Ingest,
    ensured: &mut Option<Vec<Flow>>,
    flows: &[Flow],
) -> Result<(), StoreError> {
    if ensured.as_deref() != Some(flows) {
        ensure_flows(ing, flows).await?;
        *ensured = Some(flows.to_vec());
    }
    Ok(())
}

/// Sets the status of flows whose publish ended (best effort).
pub async fn set_status(ing: &Ingest, flows: &[Flow], status: FlowStatus) {
    for f in flows {
        let Ok(Ok(Some(v))) =
            tokio::time::timeout(ing.cfg.op_timeout, ing.index.get_flow(f.id)).await
        else {
            continue;
        };
        let mut d = v.value;
        d.status = Some(status);
        let _ = tokio::time::timeout(
            ing.cfg.op_timeout,
            ing.index.put_flow(&d, Some(&v.version), unix_now_ns()),
        )
        .await;
    }
}

/// Records object ids for a flow, due for collection after `allocation_timeout` unless a
/// segment registers them.
async fn allocate(
    ing: &Ingest,
    flow: drey_core::Id,
    ids: &[String],
    content_type: &str,
) -> Result<(), StoreError> {
    let now = unix_now_ns();
    let gc_after = now
        .saturating_add(i64::try_from(ing.cfg.allocation_timeout.as_nanos()).unwrap_or(i64::MAX));
    step(
        ing,
        "object allocation",
        ing.index
            .allocate_objects(flow, ids, Some(content_type), now, gc_after),
    )
    .await
}

/// Object ids an uploader allocates at once, ahead of its segments.
const ALLOCATE_AHEAD: u64 = 8;

/// Stores one segment: allocate its object id (unless `allocated` ahead), PUT the bytes,
/// then mark them stored and register the segment in one transaction. Every step may be repeated after a failure with the same outcome.
pub async fn store_segment(
    ing: &Ingest,
    job: &SegmentJob,
    data: Bytes,
    allocated: bool,
) -> Result<StoreOutcome, StoreError> {
    let _permit = ing.uploads.acquire().await.ok();
    let content_type = job.format.content_type();
    if !allocated {
        match allocate(
            ing,
            job.flow_id,
            std::slice::from_ref(&job.object_id),
            content_type,
        )
        .await
        {
            Ok(()) | Err(StoreError::Index(IndexError::ObjectExists(_))) => {}
            Err(e) => return Err(e),
        }
    }
    let mut stored = Vec::with_capacity(2);
    if let Some(init) = &job.init {
        stored.extend(store_init(ing, job.flow_id, init).await?);
    }
    let size = step(ing, "object PUT", ing.objects.put(&job.object_id, data)).await?;
    stored.push((
        job.object_id.clone(),
        i64::try_from(size).unwrap_or(i64::MAX),
    ));
    let row = SegmentRow {
        start_ns: job.start_ns,
        end_ns: job.end_ns,
        object_id: job.object_id.clone(),
        init_object_id: job.init.as_ref().map(|i| i.object_id.clone()),
        ts_offset_ns: Some(job.ts_offset_ns),
        last_duration_ns: None,
        object_start_ns: None,
        object_end_ns: None,
        sample_offset: None,
        sample_count: None,
        key_frame_count: Some(i64::from(job.key_frame_count)),
        external_urls: None,
        seq: 0,
        disc: 0,
    };
    let tables = tables_row(job);
    let verdict = step(
        ing,
        "segment registration",
        ing.index.register_stored_segments(
            job.flow_id,
            &stored,
            tables.as_slice(),
            &[row],
            unix_now_ns(),
        ),
    )
    .await?
    .into_iter()
    .next();
    if matches!(verdict, Some(Ok(()))) {
        ing.events.changed(job.flow_id);
        if tables.is_some() {
            metrics::counter!("drey_ingest_sample_tables_total", "result" => "kept").increment(1);
        }
    }
    match verdict {
        Some(Ok(())) => Ok(StoreOutcome::Stored),
        Some(Err(SegmentRejection::Overlap { timerange })) => {
            let q = SegmentQuery {
                range: TimeRange::from_nanos(job.start_ns, job.end_ns),
                object_id: Some(job.object_id.clone()),
                reverse: false,
                after_start_ns: None,
                limit: 1,
            };
            let rows = step(
                ing,
                "segment lookup",
                ing.index.list_segments(job.flow_id, &q),
            )
            .await?;
            if rows
                .iter()
                .any(|r| r.object_id == job.object_id && r.start_ns == job.start_ns)
            {
                Ok(StoreOutcome::AlreadyStored)
            } else {
                Ok(StoreOutcome::Refused(format!(
                    "timerange {timerange} is already held by another segment"
                )))
            }
        }
        Some(Err(
            r @ (SegmentRejection::ObjectUnknown(_)
            | SegmentRejection::ObjectNotUploaded(_)
            | SegmentRejection::ObjectBeingDeleted(_)),
        )) => Err(StoreError::Retry(format!(
            "object allocation was collected meanwhile ({r}); allocating again"
        ))),
        Some(Err(r)) => Ok(StoreOutcome::Refused(r.to_string())),
        None => Err(StoreError::Retry("index returned no verdict".to_owned())),
    }
}

/// The sample tables a job carries, as the index keeps them.
fn tables_row(job: &SegmentJob) -> Option<SampleTables> {
    let tables = base64::engine::general_purpose::STANDARD
        .decode(job.tables.as_deref()?)
        .ok()?;
    Some(SampleTables {
        object_id: job.object_id.clone(),
        init_object_id: job
            .init
            .as_ref()
            .map(|i| i.object_id.clone())
            .unwrap_or_default(),
        tables,
    })
}

/// Makes sure a fragmented MP4 segment's init object has its bytes: allocated and written
/// the first time (returned, to be marked stored with the segment), nothing once stored.
async fn store_init(
    ing: &Ingest,
    flow: drey_core::Id,
    init: &InitObject,
) -> Result<Option<(String, i64)>, StoreError> {
    let id = std::slice::from_ref(&init.object_id);
    let known = step(ing, "init object lookup", ing.index.get_objects(id)).await?;
    match known.first().map(|o| o.state) {
        Some(ObjectState::Stored) => return Ok(None),
        Some(_) => {}
        None => match allocate(ing, flow, id, SegmentFormat::Fmp4.content_type()).await {
            Ok(()) | Err(StoreError::Index(IndexError::ObjectExists(_))) => {}
            Err(e) => return Err(e),
        },
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&init.data)
        .map_err(|e| StoreError::Retry(format!("init segment of {}: {e}", init.object_id)))?;
    let size = step(
        ing,
        "init object PUT",
        ing.objects.put(&init.object_id, Bytes::from(bytes)),
    )
    .await?;
    Ok(Some((
        init.object_id.clone(),
        i64::try_from(size).unwrap_or(i64::MAX),
    )))
}

/// A closed segment handed from a publish to its uploader.
pub struct Closed {
    pub job: SegmentJob,
    pub flows: Arc<Vec<Flow>>,
    pub data: Bytes,
}

enum Data {
    Memory(Bytes),
    Disk(Spooled),
}

struct Pending {
    job: SegmentJob,
    flows: Arc<Vec<Flow>>,
    data: Data,
}

fn record(job: &SegmentJob, outcome: &StoreOutcome) {
    match outcome {
        StoreOutcome::Stored | StoreOutcome::AlreadyStored => {
            metrics::counter!("drey_ingest_segments_stored_total").increment(1);
            metrics::counter!("drey_ingest_video_frames_stored_total")
                .increment(u64::from(job.video_frames));
            let latency = (unix_now_ns() - job.closed_unix_ns).max(0) as f64 / 1e9;
            metrics::histogram!("drey_ingest_segment_latency_seconds").record(latency);
        }
        StoreOutcome::Refused(reason) => {
            metrics::counter!("drey_ingest_segments_refused_total").increment(1);
            tracing::error!(flow = %job.flow_id, object = %job.object_id, %reason, "segment refused by the index; dropped");
        }
    }
}

/// Tells the publish hooks (`on_segment`) about a segment now in the index.
fn stored_hook(ing: &Ingest, stream: &str, job: &SegmentJob, outcome: &StoreOutcome) {
    if matches!(outcome, StoreOutcome::Stored | StoreOutcome::AlreadyStored) {
        ing.auth.segment_stored(&super::callbacks::SegmentStored {
            stream: stream.to_owned(),
            flow_id: job.flow_id,
            object_id: job.object_id.clone(),
            timerange: drey_core::TimeRange::from_nanos(job.start_ns, job.end_ns),
            format: match job.format {
                SegmentFormat::Ts => "ts",
                SegmentFormat::Fmp4 => "fmp4",
            },
            key_frame_count: job.key_frame_count,
        });
    }
}

fn next_backoff(b: Duration) -> Duration {
    if b.is_zero() {
        Duration::from_millis(250)
    } else {
        (b * 2).min(Duration::from_secs(5))
    }
}

/// One publish's uploader: keeps its segments in order and never drops one silently.
pub struct Uploader {
    ing: Arc<Ingest>,
    stream: String,
    queue: VecDeque<Pending>,
    ensured: Option<Vec<Flow>>,
    /// Set (once) when the spool is full: the publish must end.
    abort: Arc<watch::Sender<Option<String>>>,
    last_flows: Option<Arc<Vec<Flow>>>,
    /// Segments with `seq` below this have their object ids allocated already.
    allocated_through: u64,
}

impl Uploader {
    pub fn spawn(
        ing: Arc<Ingest>,
        stream: String,
        rx: mpsc::Receiver<Closed>,
        abort: Arc<watch::Sender<Option<String>>>,
    ) {
        let up = Uploader {
            ing: ing.clone(),
            stream,
            queue: VecDeque::new(),
            ensured: None,
            abort,
            last_flows: None,
            allocated_through: 0,
        };
        ing.tasks.spawn_on(up.run(rx), &ing.main);
    }

    fn memory_items(&self) -> usize {
        self.queue
            .iter()
            .filter(|p| matches!(p.data, Data::Memory(_)))
            .count()
    }

    /// Takes a newly closed segment: in memory while the upload keeps up, to disk when
    /// uploads are failing or too many wait.
    async fn accept(&mut self, c: Closed, failing: bool) {
        self.last_flows = Some(c.flows.clone());
        let mut p = Pending {
            job: c.job,
            flows: c.flows,
            data: Data::Memory(c.data),
        };
        if failing
            || self.memory_items() >= self.ing.cfg.memory_segments
            || self.ing.stop.is_cancelled()
        {
            self.spool(&mut p).await;
        }
        self.queue.push_back(p);
    }

    /// Moves one segment to the spool; on a full spool, keeps it in memory and ends the
    /// publish.
    async fn spool(&mut self, p: &mut Pending) {
        let Data::Memory(bytes) = &p.data else {
            return;
        };
        match self.ing.spool.write(&p.job, &p.flows, bytes).await {
            Ok(s) => p.data = Data::Disk(s),
            Err(e) => {
                if let SpoolError::Full { .. } = e {
                    metrics::counter!("drey_ingest_spool_full_total").increment(1);
                }
                if self.abort.borrow().is_none() {
                    let reason = format!("segments cannot be stored or spooled: {e}");
                    tracing::error!(stream = %self.stream, %reason, "ending the publish");
                    let _ = self.abort.send(Some(reason));
                }
            }
        }
    }

    async fn spool_all(&mut self) {
        let mut q = std::mem::take(&mut self.queue);
        for p in q.iter_mut() {
            self.spool(p).await;
        }
        self.queue = q;
    }

    async fn attempt(
        ing: &Ingest,
        ensured: &mut Option<Vec<Flow>>,
        allocated_through: &mut u64,
        p: &Pending,
    ) -> Result<StoreOutcome, StoreError> {
        ensure_changed(ing, ensured, &p.flows).await?;
        let data = match &p.data {
            Data::Memory(b) => b.clone(),
            Data::Disk(s) => ing.spool.read(s).await?.1,
        };
        // Allocate this segment's id and the next ones in one transaction; ids left unused
        // when the publish ends are collected after the allocation timeout.
        let job = &p.job;
        let mut allocated = job.seq < *allocated_through;
        if !allocated {
            let ids: Vec<String> = (job.seq..job.seq + ALLOCATE_AHEAD)
                .map(|seq| SegmentJob::object_id_for(job.flow_id, job.publish_id, seq, job.format))
                .collect();
            match allocate(ing, job.flow_id, &ids, job.format.content_type()).await {
                Ok(()) => {
                    *allocated_through = job.seq + ALLOCATE_AHEAD;
                    allocated = true;
                }
                // Some exist already (a retry): allocate one by one.
                Err(StoreError::Index(IndexError::ObjectExists(_))) => {}
                Err(e) => return Err(e),
            }
        }
        let r = store_segment(ing, job, data, allocated).await;
        if let Err(StoreError::Retry(_)) = r {
            // An allocation was collected meanwhile: stop trusting the batch.
            *allocated_through = 0;
        }
        r
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Closed>) {
        let mut open = true;
        let mut backoff = Duration::ZERO;
        let stop = self.ing.stop.clone();
        loop {
            if stop.is_cancelled() {
                self.spool_all().await;
            }
            let Some(head) = self.queue.pop_front() else {
                if !open {
                    break;
                }
                match rx.recv().await {
                    Some(c) => self.accept(c, false).await,
                    None => open = false,
                }
                continue;
            };
            if !backoff.is_zero() {
                let sleep = tokio::time::sleep(backoff);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        m = rx.recv(), if open => match m {
                            Some(c) => self.accept(c, true).await,
                            None => open = false,
                        },
                    }
                }
            }
            let ing = self.ing.clone();
            let mut ensured = self.ensured.take();
            let mut allocated_through = self.allocated_through;
            let result = {
                let attempt = Self::attempt(&ing, &mut ensured, &mut allocated_through, &head);
                tokio::pin!(attempt);
                let failing = !backoff.is_zero();
                loop {
                    tokio::select! {
                        r = &mut attempt => break r,
                        m = rx.recv(), if open => match m {
                            Some(c) => self.accept(c, failing).await,
                            None => open = false,
                        },
                    }
                }
            };
            self.ensured = ensured;
            self.allocated_through = allocated_through;
            match result {
                Ok(outcome) => {
                    record(&head.job, &outcome);
                    stored_hook(&self.ing, &self.stream, &head.job, &outcome);
                    if let Data::Disk(s) = &head.data {
                        self.ing.spool.remove(s).await;
                    }
                    backoff = Duration::ZERO;
                }
                Err(e) => {
                    metrics::counter!("drey_ingest_upload_failures_total").increment(1);
                    tracing::warn!(stream = %self.stream, object = %head.job.object_id, error = %e, "storing a segment failed; it waits in the spool and is retried");
                    self.ensured = None;
                    self.queue.push_front(head);
                    // Everything waiting goes to disk now, not only the head: a crash must
                    // not leave an older segment spooled and a newer one lost in memory.
                    self.spool_all().await;
                    if stop.is_cancelled()
                        && self.queue.iter().all(|p| matches!(p.data, Data::Disk(_)))
                        && !open
                    {
                        // Shutting down: everything is on disk for the next run.
                        break;
                    }
                    backoff = next_backoff(backoff);
                }
            }
        }
        let lost = self.memory_items();
        if lost > 0 {
            tracing::error!(stream = %self.stream, segments = lost, "segments neither stored nor spooled at shutdown are lost");
            metrics::counter!("drey_ingest_segments_lost_total").increment(lost as u64);
        }
        if self.queue.is_empty()
            && !self.ing.is_live(&self.stream)
            && let Some(flows) = &self.last_flows
        {
            set_status(&self.ing, flows, FlowStatus::AwaitingContent).await;
        }
    }
}

/// Drains spool directories left by an earlier run, each in order, retrying until stored.
pub async fn drain_dirs(ing: Arc<Ingest>, dirs: Vec<PathBuf>) {
    let mut ensured: Option<Vec<Flow>> = None;
    for dir in dirs {
        let files = match ing.spool.segments(&dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "listing a spool directory failed");
                continue;
            }
        };
        for s in files {
            let mut backoff = Duration::ZERO;
            loop {
                if ing.stop.is_cancelled() {
                    return;
                }
                let (header, data) = match ing.spool.read(&s).await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::error!(error = %e, "unreadable spool file set aside");
                        ing.spool.quarantine(&s).await;
                        break;
                    }
                };
                let result = async {
                    ensure_changed(&ing, &mut ensured, &header.flows).await?;
                    store_segment(&ing, &header.job, data, false).await
                }
                .await;
                match result {
                    Ok(outcome) => {
                        record(&header.job, &outcome);
                        let name = header
                            .flows
                            .first()
                            .and_then(|f| f.label.clone())
                            .unwrap_or_default();
                        stored_hook(&ing, &name, &header.job, &outcome);
                        ing.spool.remove(&s).await;
                        break;
                    }
                    Err(e) => {
                        ensured = None;
                        tracing::warn!(object = %header.job.object_id, error = %e, "draining a spooled segment failed; retrying");
                        backoff = next_backoff(backoff);
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = ing.stop.cancelled() => return,
                        }
                    }
                }
            }
        }
    }
    tracing::info!("spool left by an earlier run drained");
}
