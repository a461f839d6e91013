//! The time index: one [`Index`] trait over Sources, Flows, Segments, Objects and delete
//! requests, implemented for SQLite (embedded default) and PostgreSQL (scale-out).
//!
//! Both implementations share their SQL through `sql.rs`; what differs (pool setup, batch
//! statements, row locks) is in `sqlite.rs` and `postgres.rs`. The rules every
//! implementation keeps, and that `conformance.rs` tests against both:
//! - segments of one flow never overlap: the check and the insert happen in one
//!   transaction that holds the flow's write lock, so of two racing writers exactly one wins;
//! - a segment only references an object whose bytes were verified in the object store
//!   (`state = stored`), or an uncontrolled object with external URLs;
//! - queries by time are range scans of the `(flow_id, start_ns)` primary key.

mod conformance;
mod plan;
mod postgres;
mod sql;
mod sqlite;

pub use plan::{SegmentRejection, SegmentRow};
pub use postgres::PgIndex;
pub(crate) use sql::unix_ns_to_rfc3339;
pub use sqlite::SqliteIndex;

use std::sync::Arc;

use async_trait::async_trait;
use drey_core::model::{DeletionRequest, Flow, GetUrl, Source};
use drey_core::{Id, TimeRange};

/// Errors the index reports; the HTTP layer maps each to one status.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt index row: {0}")]
    Corrupt(String),
    #[error("flow {0} does not exist")]
    FlowNotFound(Id),
    #[error("object id {0:?} already exists")]
    ObjectExists(String),
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or postgres://...")]
    BadUrl(String),
}

pub type Result<T, E = IndexError> = std::result::Result<T, E>;

/// A value with the opaque version token used for compare-and-swap updates.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub version: String,
}

/// One chunk of a writer job, as held by `owner`.
#[derive(Debug, Clone, Copy)]
pub struct JobChunk<'a> {
    pub job: &'a str,
    pub chunk: i64,
    pub owner: &'a str,
}

/// How far a writer job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobProgress {
    /// Chunks stored.
    pub done: i64,
    /// Chunks the job has: all of a job made with a length; for an open job those its
    /// receivers added (chunks no receiver held are not the job's).
    pub chunks: i64,
    /// No more chunks will be added (a job made with a length, or an open job given its
    /// end).
    pub ended: bool,
}

impl JobProgress {
    /// Every chunk is stored and none will be added.
    pub fn finished(&self) -> bool {
        self.ended && self.done >= self.chunks
    }
}

/// Outcome of [`Index::put_flow`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutFlow {
    Created,
    Updated,
    /// `expected_version` did not match: someone else updated the flow first.
    Conflict,
    /// The flow names an existing source of another format.
    SourceFormatMismatch {
        source_format: String,
    },
}

/// Filters the index applies itself; the rest (tags, timerange, sorting) are applied by the
/// caller on the returned rows.
#[derive(Debug, Clone, Default)]
pub struct FlowQuery {
    pub source_id: Option<Id>,
    pub format: Option<String>,
    pub codec: Option<String>,
    pub label: Option<String>,
    pub frame_width: Option<i64>,
    pub frame_height: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct SourceQuery {
    pub label: Option<String>,
    pub format: Option<String>,
}

/// A page request over a flow's segments.
#[derive(Debug, Clone)]
pub struct SegmentQuery {
    pub range: TimeRange,
    pub object_id: Option<String>,
    pub reverse: bool,
    /// Keyset cursor: the `start_ns` of the last segment of the previous page.
    pub after_start_ns: Option<i64>,
    pub limit: usize,
}

/// Lifecycle of an object row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectState {
    Allocated,
    Stored,
    Deleting,
}

impl ObjectState {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectState::Allocated => "allocated",
            ObjectState::Stored => "stored",
            ObjectState::Deleting => "deleting",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "allocated" => Ok(ObjectState::Allocated),
            "stored" => Ok(ObjectState::Stored),
            "deleting" => Ok(ObjectState::Deleting),
            other => Err(IndexError::Corrupt(format!("object state {other:?}"))),
        }
    }
}

/// A segment object's sample tables as `drey_core::media::tables` encodes them, for the
/// init object it was read through (`""` for MPEG-TS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleTables {
    pub object_id: String,
    pub init_object_id: String,
    pub tables: Vec<u8>,
}

/// An object row.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectRow {
    pub id: String,
    /// The flow the id was allocated to.
    pub flow_id: String,
    pub state: ObjectState,
    /// False for objects held outside drey's storage (registered with `get_urls`).
    pub controlled: bool,
    pub created_unix_ns: i64,
    pub size: Option<i64>,
    pub content_type: Option<String>,
    /// `Some(true)` once used as an init object, `Some(false)` once used as media.
    pub is_init: Option<bool>,
    pub first_flow_id: Option<String>,
    pub key_frame_count: Option<i64>,
    pub object_start_ns: Option<i64>,
    pub object_end_ns: Option<i64>,
    pub external_urls: Option<Vec<GetUrl>>,
}

/// One webhook delivery waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Position in the outbox (assigned on insert; 0 when enqueuing).
    pub seq: i64,
    pub webhook_id: String,
    /// The event's id, the same for every webhook it goes to (receivers deduplicate on it).
    pub event_id: String,
    /// The JSON body to POST.
    pub body: String,
    pub created_unix_ns: i64,
}

/// Progress of one chunk of a segment deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeleteChunk {
    pub deleted: usize,
    /// True when more matching segments remain after this chunk.
    pub more: bool,
}

#[async_trait]
pub trait Index: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;

    async fn get_meta(&self, key: &str) -> Result<Option<String>>;
    async fn set_meta(&self, key: &str, value: &str) -> Result<()>;
    /// Meta entries whose key starts with `prefix`, in key order.
    async fn list_meta(&self, prefix: &str) -> Result<Vec<(String, String)>>;

    async fn get_source(&self, id: Id) -> Result<Option<Versioned<Source>>>;
    async fn list_sources(&self, q: &SourceQuery) -> Result<Vec<Source>>;
    /// Replaces a source's metadata if its version is still `expected_version`.
    async fn update_source(
        &self,
        source: &Source,
        expected_version: &str,
        now_unix_ns: i64,
    ) -> Result<bool>;

    async fn get_flow(&self, id: Id) -> Result<Option<Versioned<Flow>>>;
    async fn list_flows(&self, q: &FlowQuery) -> Result<Vec<Flow>>;
    /// Creates or replaces a flow (creating its source if new). With `expected_version`,
    /// replaces only if the stored version still matches.
    async fn put_flow(
        &self,
        flow: &Flow,
        expected_version: Option<&str>,
        now_unix_ns: i64,
    ) -> Result<PutFlow>;
    /// Removes a flow row whose segments are all deleted. False if it did not exist.
    async fn delete_flow(&self, id: Id) -> Result<bool>;
    /// The hull of the flow's segments that overlap `within`; `NEVER` when none do.
    async fn flow_timerange(&self, id: Id, within: &TimeRange) -> Result<TimeRange>;

    /// Registers a batch of segments atomically per segment: each either is stored or gets
    /// a rejection, in input order. Overlap with stored segments or an earlier one of the
    /// batch is a rejection, decided under the flow's write lock.
    async fn register_segments(
        &self,
        flow_id: Id,
        segments: &[SegmentRow],
        now_unix_ns: i64,
    ) -> Result<Vec<Result<(), SegmentRejection>>>;
    /// [`Index::register_segments`], first marking `stored` objects (allocated ones whose
    /// bytes the caller wrote) and keeping their sample tables (as
    /// [`Index::put_sample_tables`]) in the same transaction: one round of locking for
    /// ingest, and a segment's tables are there exactly when it is.
    async fn register_stored_segments(
        &self,
        flow_id: Id,
        stored: &[(String, i64)],
        tables: &[SampleTables],
        segments: &[SegmentRow],
        now_unix_ns: i64,
    ) -> Result<Vec<Result<(), SegmentRejection>>>;
    /// [`Index::register_stored_segments`] and [`Index::finish_job_chunk`] in one
    /// transaction, so a writer's chunk is done exactly when its grains are registered;
    /// the flag says whether `chunk.owner` still held the chunk (it is marked done only
    /// then; the registration stands either way).
    async fn register_job_chunk(
        &self,
        flow_id: Id,
        stored: &[(String, i64)],
        segments: &[SegmentRow],
        chunk: &JobChunk<'_>,
        now_unix_ns: i64,
    ) -> Result<(Vec<Result<(), SegmentRejection>>, bool)>;
    async fn list_segments(&self, flow_id: Id, q: &SegmentQuery) -> Result<Vec<SegmentRow>>;
    /// Deletes up to `max` segments wholly inside `range`, in time order. Objects left
    /// unreferenced become garbage-collection candidates.
    async fn delete_segments(
        &self,
        flow_id: Id,
        range: &TimeRange,
        object_id: Option<&str>,
        max: usize,
        now_unix_ns: i64,
    ) -> Result<DeleteChunk>;

    /// Records new object ids for a flow. Fails with [`IndexError::ObjectExists`] (and
    /// records none) if any id is taken.
    async fn allocate_objects(
        &self,
        flow_id: Id,
        ids: &[String],
        content_type: Option<&str>,
        now_unix_ns: i64,
        gc_after_unix_ns: i64,
    ) -> Result<()>;
    async fn get_objects(&self, ids: &[String]) -> Result<Vec<ObjectRow>>;
    /// Marks allocated objects as stored once their bytes are verified, with their sizes.
    async fn mark_objects_stored(&self, stored: &[(String, i64)]) -> Result<()>;
    /// Flows with at least one segment referencing the object (as media or init).
    async fn object_flows(&self, id: &str, limit: usize) -> Result<Vec<Id>>;
    /// Kept sample tables ([`SampleTables`]) of the given objects, whatever their init
    /// object; missing ones are left out.
    async fn get_sample_tables(&self, object_ids: &[String]) -> Result<Vec<SampleTables>>;
    /// Keeps sample tables (replacing any for the same object and init object). Rows of
    /// objects no longer in the index are skipped.
    async fn put_sample_tables(&self, rows: &[SampleTables]) -> Result<()>;

    /// Claims up to `limit` objects due for collection: unreferenced ones are moved to
    /// `deleting` and returned; referenced ones are taken off the candidate list.
    async fn claim_gc_candidates(&self, now_unix_ns: i64, limit: usize) -> Result<Vec<ObjectRow>>;
    /// Drops the row of an object in `deleting` state after its bytes were removed.
    async fn forget_object(&self, id: &str) -> Result<()>;

    async fn put_delete_request(&self, r: &DeletionRequest, lease_until_unix_ns: i64)
    -> Result<()>;
    async fn get_delete_request(&self, id: Id) -> Result<Option<DeletionRequest>>;
    async fn list_delete_requests(&self) -> Result<Vec<DeletionRequest>>;
    /// Takes an unfinished delete request whose lease has expired (another instance died,
    /// or this one restarted), extending the lease.
    async fn claim_delete_request(
        &self,
        now_unix_ns: i64,
        lease_until_unix_ns: i64,
    ) -> Result<Option<DeletionRequest>>;

    /// Appends webhook deliveries to the outbox, in the given order.
    async fn enqueue_webhook_events(&self, rows: &[OutboxRow]) -> Result<()>;
    /// The oldest `limit` deliveries pending for a webhook, in order.
    async fn pending_webhook_events(
        &self,
        webhook_id: &str,
        limit: usize,
    ) -> Result<Vec<OutboxRow>>;
    /// Removes a webhook's deliveries up to and including `seq` (delivered, or dropped).
    async fn ack_webhook_events(&self, webhook_id: &str, upto_seq: i64) -> Result<u64>;
    /// How many deliveries are pending for a webhook.
    async fn count_webhook_events(&self, webhook_id: &str) -> Result<i64>;
    /// Takes or renews the delivery lease of a webhook for `owner` until `until`: true if
    /// `owner` holds it now (it was free, expired, or already `owner`'s).
    async fn claim_webhook_lease(
        &self,
        webhook_id: &str,
        owner: &str,
        now_unix_ns: i64,
        until_unix_ns: i64,
    ) -> Result<bool>;
    /// Forgets a deleted webhook: its pending deliveries, its lease and its registration
    /// (the `meta` entry `meta_key`), in one transaction.
    async fn forget_webhook(&self, webhook_id: &str, meta_key: &str) -> Result<()>;

    /// Creates a writer job with `chunks` chunks unless it exists; answers the stored
    /// job's flow id and spec (the caller compares them with its own). `None` makes an
    /// open job (a live stream of unknown length): it has no chunks until
    /// [`Index::add_job_chunks`] adds them, and no end until [`Index::end_job`] says it.
    async fn create_job(
        &self,
        id: &str,
        flow_id: Id,
        spec: &str,
        chunks: Option<i64>,
        now_unix_ns: i64,
    ) -> Result<(Id, String)>;
    /// Adds chunks `first..=last` (at most 100,000 at once) to a job, those it has
    /// already left as they are (so receivers of one stream may all add what they hold).
    async fn add_job_chunks(&self, id: &str, first: i64, last: i64) -> Result<()>;
    /// Gives an open job its end: `chunks` chunks in all. A job whose end is known is
    /// left as it is.
    async fn end_job(&self, id: &str, chunks: i64) -> Result<()>;
    /// Claims the first chunk of a job that is neither done nor leased by a live writer,
    /// leasing it to `owner` until `lease_until`.
    async fn claim_job_chunk(
        &self,
        id: &str,
        owner: &str,
        now_unix_ns: i64,
        lease_until_unix_ns: i64,
    ) -> Result<Option<i64>> {
        self.claim_job_chunk_in(id, owner, now_unix_ns, lease_until_unix_ns, 0, i64::MAX)
            .await
    }
    /// [`Index::claim_job_chunk`] among chunks `first..=last` (those a stream receiver
    /// holds the frames of).
    async fn claim_job_chunk_in(
        &self,
        id: &str,
        owner: &str,
        now_unix_ns: i64,
        lease_until_unix_ns: i64,
        first: i64,
        last: i64,
    ) -> Result<Option<i64>>;
    /// Chunks of `first..=last` not done yet (leased or not).
    async fn pending_job_chunks(&self, id: &str, first: i64, last: i64) -> Result<i64>;
    /// Marks a chunk done if `owner` still holds it: false if its lease passed to another.
    async fn finish_job_chunk(
        &self,
        id: &str,
        chunk: i64,
        owner: &str,
        now_unix_ns: i64,
    ) -> Result<bool>;
    /// How far a job is; `None` when there is no such job.
    async fn job_progress(&self, id: &str) -> Result<Option<JobProgress>>;
}

/// Opens the index named by a database URL and applies migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Index>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteIndex::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgIndex::open(url).await?))
    } else {
        Err(IndexError::BadUrl(url.to_owned()))
    }
}
