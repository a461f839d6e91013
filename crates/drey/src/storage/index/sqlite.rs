//! The embedded SQLite index: one file in the data directory, WAL mode, one writer
//! connection (SQLite serialises writers anyway; one connection makes that explicit and
//! turns "database is locked" into queueing) and a small pool of readers.

use std::str::FromStr;
use std::time::Duration;

use drey_core::model::{CollectionItem, DeletionRequest, Flow, Source};
use drey_core::{Id, TimeRange};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::sql::{
    SegmentJson, impl_index, new_version, parse_id, parse_json, pick, to_json, unix_ns_to_rfc3339,
};
use super::{
    DeleteChunk, FlowQuery, Index, IndexError, JobProgress, ObjectRow, ObjectState, OutboxRow,
    PutFlow, Result, SegmentQuery, SegmentRejection, SegmentRow, SourceQuery, Versioned, plan,
};

pub struct SqliteIndex {
    read: SqlitePool,
    write: SqlitePool,
}

impl SqliteIndex {
    /// Opens (creating if needed) `sqlite://PATH` and applies migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|_| IndexError::BadUrl(url.to_owned()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: a committed transaction survives a process crash; a power loss
            // may lose the last transactions but never corrupts the file.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        let read = SqlitePoolOptions::new()
            // Readers run on sqlx's worker threads; four keeps both cores busy without
            // starving the writer.
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await?;
        Ok(SqliteIndex { read, write })
    }

    fn read(&self) -> &SqlitePool {
        &self.read
    }

    fn write(&self) -> &SqlitePool {
        &self.write
    }
}

impl_index!(SqliteIndex, sqlx::Sqlite, "sqlite", false);
