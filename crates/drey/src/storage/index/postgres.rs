//! The PostgreSQL index, for scale-out: several drey instances share one database. Writers
//! to one flow serialise on the flow row (`SELECT ... FOR UPDATE`); garbage collection and
//! delete requests are claimed with `FOR UPDATE SKIP LOCKED` so instances share the work.

use std::time::Duration;

use drey_core::model::{CollectionItem, DeletionRequest, Flow, Source};
use drey_core::{Id, TimeRange};
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::sql::{
    ObjectJson, SegmentJson, impl_index, new_version, parse_id, parse_json, pick, to_json,
    unix_ns_to_rfc3339,
};
use super::{
    DeleteChunk, FlowQuery, Index, IndexError, JobChunk, JobProgress, ObjectRow, ObjectState,
    OutboxRow, PutFlow, Result, SampleTables, SegmentQuery, SegmentRejection, SegmentRow,
    SourceQuery, Versioned, plan,
};

pub struct PgIndex {
    pool: PgPool,
}

impl PgIndex {
    /// Connects to `postgres://...` and applies migrations (under PostgreSQL's advisory
    /// migration lock, so instances starting together do not race).
    pub async fn open(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            // Bounded: each instance holds at most this many server connections.
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgIndex { pool })
    }

    fn read(&self) -> &PgPool {
        &self.pool
    }

    fn write(&self) -> &PgPool {
        &self.pool
    }
}

impl_index!(PgIndex, sqlx::Postgres, "postgres", true);
