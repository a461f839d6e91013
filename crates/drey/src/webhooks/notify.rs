//! The index wrapper that turns drey's writes into webhook events: every writer (the TAMS
//! API, live ingest, background flow deletes) goes through the index, so wrapping it once
//! reports them all. Each event is queued right after its change commits, in a second
//! transaction: a crash between the two loses that event (counted nowhere; see
//! docs/api.md). The extra reads an event needs happen only while a webhook wants it.

use std::sync::Arc;

use async_trait::async_trait;
use drey_core::model::{DeletionRequest, Flow, Source};
use drey_core::{Id, TimeRange};

use super::{Event, Webhooks};
use crate::storage::index::{
    DeleteChunk, FlowQuery, Index, ObjectRow, OutboxRow, PutFlow, Result, SampleTables,
    SegmentQuery, SegmentRejection, SegmentRow, SourceQuery, Versioned,
};

pub struct NotifyingIndex {
    inner: Arc<dyn Index>,
    hooks: Arc<Webhooks>,
}

impl NotifyingIndex {
    pub fn new(inner: Arc<dyn Index>, hooks: Arc<Webhooks>) -> Self {
        NotifyingIndex { inner, hooks }
    }

    async fn segments_added(
        &self,
        flow_id: Id,
        segments: &[SegmentRow],
        results: &[std::result::Result<(), SegmentRejection>],
    ) {
        if !self.hooks.wants("flows/segments_added").await {
            return;
        }
        let added: Vec<SegmentRow> = segments
            .iter()
            .zip(results)
            .filter(|(_, r)| r.is_ok())
            .map(|(s, _)| s.clone())
            .collect();
        if added.is_empty() {
            return;
        }
        if let Ok(Some(flow)) = self.inner.get_flow(flow_id).await {
            self.hooks
                .record(Event::SegmentsAdded {
                    flow: Box::new(flow.value),
                    segments: added,
                })
                .await;
        }
    }
}

#[async_trait]
impl Index for NotifyingIndex {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        self.inner.get_meta(key).await
    }
    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.inner.set_meta(key, value).await
    }
    async fn list_meta(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        self.inner.list_meta(prefix).await
    }

    async fn get_source(&self, id: Id) -> Result<Option<Versioned<Source>>> {
        self.inner.get_source(id).await
    }
    async fn list_sources(&self, q: &SourceQuery) -> Result<Vec<Source>> {
        self.inner.list_sources(q).await
    }
    async fn update_source(&self, source: &Source, expected: &str, now: i64) -> Result<bool> {
        let done = self.inner.update_source(source, expected, now).await?;
        if done
            && self.hooks.wants("sources/updated").await
            && let Ok(Some(s)) = self.inner.get_source(source.id).await
        {
            self.hooks
                .record(Event::SourceUpdated(Box::new(s.value)))
                .await;
        }
        Ok(done)
    }

    async fn get_flow(&self, id: Id) -> Result<Option<Versioned<Flow>>> {
        self.inner.get_flow(id).await
    }
    async fn list_flows(&self, q: &FlowQuery) -> Result<Vec<Flow>> {
        self.inner.list_flows(q).await
    }
    async fn put_flow(&self, flow: &Flow, expected: Option<&str>, now: i64) -> Result<PutFlow> {
        let new_source = self.hooks.wants("sources/created").await
            && matches!(self.inner.get_source(flow.source_id).await, Ok(None));
        let r = self.inner.put_flow(flow, expected, now).await?;
        if matches!(r, PutFlow::Created | PutFlow::Updated) {
            if new_source && let Ok(Some(s)) = self.inner.get_source(flow.source_id).await {
                self.hooks
                    .record(Event::SourceCreated(Box::new(s.value)))
                    .await;
            }
            let kind = if r == PutFlow::Created {
                "flows/created"
            } else {
                "flows/updated"
            };
            if self.hooks.wants(kind).await
                && let Ok(Some(f)) = self.inner.get_flow(flow.id).await
            {
                let f = Box::new(f.value);
                self.hooks
                    .record(if r == PutFlow::Created {
                        Event::FlowCreated(f)
                    } else {
                        Event::FlowUpdated(f)
                    })
                    .await;
            }
        }
        Ok(r)
    }
    async fn delete_flow(&self, id: Id) -> Result<bool> {
        let source_id = if self.hooks.wants("flows/deleted").await {
            self.inner
                .get_flow(id)
                .await
                .ok()
                .flatten()
                .map(|f| f.value.source_id)
        } else {
            None
        };
        let done = self.inner.delete_flow(id).await?;
        if done && self.hooks.wants("flows/deleted").await {
            self.hooks
                .record(Event::FlowDeleted {
                    flow_id: id,
                    source_id,
                })
                .await;
        }
        Ok(done)
    }
    async fn flow_timerange(&self, id: Id, within: &TimeRange) -> Result<TimeRange> {
        self.inner.flow_timerange(id, within).await
    }

    async fn register_segments(
        &self,
        flow_id: Id,
        segments: &[SegmentRow],
        now: i64,
    ) -> Result<Vec<std::result::Result<(), SegmentRejection>>> {
        let r = self.inner.register_segments(flow_id, segments, now).await?;
        self.segments_added(flow_id, segments, &r).await;
        Ok(r)
    }
    async fn register_stored_segments(
        &self,
        flow_id: Id,
        stored: &[(String, i64)],
        tables: &[SampleTables],
        segments: &[SegmentRow],
        now: i64,
    ) -> Result<Vec<std::result::Result<(), SegmentRejection>>> {
        let r = self
            .inner
            .register_stored_segments(flow_id, stored, tables, segments, now)
            .await?;
        self.segments_added(flow_id, segments, &r).await;
        Ok(r)
    }
    async fn register_job_chunk(
        &self,
        flow_id: Id,
        stored: &[(String, i64)],
        segments: &[SegmentRow],
        chunk: &crate::storage::index::JobChunk<'_>,
        now: i64,
    ) -> Result<(Vec<std::result::Result<(), SegmentRejection>>, bool)> {
        let (r, finished) = self
            .inner
            .register_job_chunk(flow_id, stored, segments, chunk, now)
            .await?;
        self.segments_added(flow_id, segments, &r).await;
        Ok((r, finished))
    }
    async fn list_segments(&self, flow_id: Id, q: &SegmentQuery) -> Result<Vec<SegmentRow>> {
        self.inner.list_segments(flow_id, q).await
    }
    async fn delete_segments(
        &self,
        flow_id: Id,
        range: &TimeRange,
        object_id: Option<&str>,
        max: usize,
        now: i64,
    ) -> Result<DeleteChunk> {
        // The segments this chunk will delete: the first `max` wholly inside the range.
        let doomed = if self.hooks.wants("flows/segments_deleted").await {
            let q = SegmentQuery {
                range: *range,
                object_id: object_id.map(str::to_owned),
                reverse: false,
                after_start_ns: None,
                limit: max,
            };
            let flow = self.inner.get_flow(flow_id).await.ok().flatten();
            let segs = self
                .inner
                .list_segments(flow_id, &q)
                .await
                .unwrap_or_default();
            let inside: Vec<(i64, i64)> = segs
                .iter()
                .map(|s| (s.start_ns, s.end_ns))
                .filter(|(a, b)| range.contains_range(&TimeRange::from_nanos(*a, *b)))
                .collect();
            flow.map(|f| (f.value, inside))
        } else {
            None
        };
        let chunk = self
            .inner
            .delete_segments(flow_id, range, object_id, max, now)
            .await?;
        if chunk.deleted > 0
            && let Some((flow, inside)) = doomed
            && let Some(first) = inside.first()
        {
            let last = inside[inside.len().min(chunk.deleted) - 1];
            self.hooks
                .record(Event::SegmentsDeleted {
                    flow: Box::new(flow),
                    timerange: TimeRange::from_nanos(first.0, last.1),
                })
                .await;
        }
        Ok(chunk)
    }

    async fn allocate_objects(
        &self,
        flow_id: Id,
        ids: &[String],
        content_type: Option<&str>,
        now: i64,
        gc_after: i64,
    ) -> Result<()> {
        self.inner
            .allocate_objects(flow_id, ids, content_type, now, gc_after)
            .await
    }
    async fn get_objects(&self, ids: &[String]) -> Result<Vec<ObjectRow>> {
        self.inner.get_objects(ids).await
    }
    async fn mark_objects_stored(&self, stored: &[(String, i64)]) -> Result<()> {
        self.inner.mark_objects_stored(stored).await
    }
    async fn object_flows(&self, id: &str, limit: usize) -> Result<Vec<Id>> {
        self.inner.object_flows(id, limit).await
    }
    async fn get_sample_tables(&self, object_ids: &[String]) -> Result<Vec<SampleTables>> {
        self.inner.get_sample_tables(object_ids).await
    }
    async fn put_sample_tables(&self, rows: &[SampleTables]) -> Result<()> {
        self.inner.put_sample_tables(rows).await
    }
    async fn claim_gc_candidates(&self, now: i64, limit: usize) -> Result<Vec<ObjectRow>> {
        self.inner.claim_gc_candidates(now, limit).await
    }
    async fn forget_object(&self, id: &str) -> Result<()> {
        self.inner.forget_object(id).await
    }

    async fn put_delete_request(&self, r: &DeletionRequest, lease_until: i64) -> Result<()> {
        self.inner.put_delete_request(r, lease_until).await
    }
    async fn get_delete_request(&self, id: Id) -> Result<Option<DeletionRequest>> {
        self.inner.get_delete_request(id).await
    }
    async fn list_delete_requests(&self) -> Result<Vec<DeletionRequest>> {
        self.inner.list_delete_requests().await
    }
    async fn claim_delete_request(
        &self,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<DeletionRequest>> {
        self.inner.claim_delete_request(now, lease_until).await
    }

    async fn enqueue_webhook_events(&self, rows: &[OutboxRow]) -> Result<()> {
        self.inner.enqueue_webhook_events(rows).await
    }
    async fn pending_webhook_events(&self, id: &str, limit: usize) -> Result<Vec<OutboxRow>> {
        self.inner.pending_webhook_events(id, limit).await
    }
    async fn ack_webhook_events(&self, id: &str, upto_seq: i64) -> Result<u64> {
        self.inner.ack_webhook_events(id, upto_seq).await
    }
    async fn count_webhook_events(&self, id: &str) -> Result<i64> {
        self.inner.count_webhook_events(id).await
    }
    async fn claim_webhook_lease(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<bool> {
        self.inner.claim_webhook_lease(id, owner, now, until).await
    }
    async fn forget_webhook(&self, id: &str, meta_key: &str) -> Result<()> {
        self.inner.forget_webhook(id, meta_key).await
    }
    async fn create_job(
        &self,
        id: &str,
        flow: Id,
        spec: &str,
        chunks: Option<i64>,
        now: i64,
    ) -> Result<(Id, String)> {
        self.inner.create_job(id, flow, spec, chunks, now).await
    }
    async fn add_job_chunks(&self, id: &str, first: i64, last: i64) -> Result<()> {
        self.inner.add_job_chunks(id, first, last).await
    }
    async fn end_job(&self, id: &str, chunks: i64) -> Result<()> {
        self.inner.end_job(id, chunks).await
    }
    #[allow(clippy::too_many_arguments)]
    async fn claim_job_chunk_in(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        until: i64,
        first: i64,
        last: i64,
    ) -> Result<Option<i64>> {
        self.inner
            .claim_job_chunk_in(id, owner, now, until, first, last)
            .await
    }
    async fn pending_job_chunks(&self, id: &str, first: i64, last: i64) -> Result<i64> {
        self.inner.pending_job_chunks(id, first, last).await
    }
    async fn finish_job_chunk(&self, id: &str, chunk: i64, owner: &str, now: i64) -> Result<bool> {
        self.inner.finish_job_chunk(id, chunk, owner, now).await
    }
    async fn job_progress(&self, id: &str) -> Result<Option<crate::storage::index::JobProgress>> {
        self.inner.job_progress(id).await
    }
}
