//! The embedded SQLite index: one file in the data directory, WAL mode, one writer
//! connection (SQLite serialises writers anyway; one connection makes that explicit and
//! turns "database is locked" into queueing) and a small pool of readers.

use std::str::FromStr;
use std::time::Duration;

use drey_core::model::{CollectionItem, DeletionRequest, Flow, Source};
use drey_core::{Id, TimeRange};
use sqlx::ConnectOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::sql::{
    ObjectJson, SegmentJson, impl_index, new_version, parse_id, parse_json, pick, to_json,
    unix_ns_to_rfc3339,
};
use super::{
    DeleteChunk, FlowQuery, Index, IndexError, JobChunk, JobProgress, ObjectRow, ObjectState,
    OutboxRow, PutFlow, Result, SampleTables, SegmentQuery, SegmentRejection, SegmentRow,
    SourceQuery, Versioned, plan,
};

pub struct SqliteIndex {
    read: SqlitePool,
    write: SqlitePool,
    /// Stops the background checkpointer when the index is dropped.
    _checkpointer: tokio_util::task::AbortOnDropHandle<()>,
}

/// WAL pages after which the writer checkpoints itself: a safety net, far above what the
/// background checkpointer lets pile up between its runs.
const WRITER_AUTOCHECKPOINT_PAGES: u32 = 16_384;
/// How often the background checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// A checkpoint runs at least this often even when the WAL's modification time says
/// nothing was written (a write in the same clock tick as the last look leaves it as it was).
const CHECKPOINT_ANYWAY: Duration = Duration::from_secs(30);

/// Checkpoints the WAL from a connection of its own, so the checkpoint's fsyncs (tens to
/// hundreds of milliseconds on a disk busy writing back segments or grains) do not hold
/// the one writer connection, and every ingest behind it, up. PASSIVE: it copies what no
/// reader still needs and never blocks the writer or the readers. Skipped while the WAL
/// file (`wal`) is unchanged: an idle server's checkpoints were most of its idle CPU.
async fn checkpoint_forever(pool: SqlitePool, wal: std::path::PathBuf) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + CHECKPOINT_EVERY,
        CHECKPOINT_EVERY,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: Option<std::time::SystemTime> = None;
    let mut last = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        // Read before the checkpoint: a write during it makes the next look differ.
        let modified = std::fs::metadata(&wal).and_then(|m| m.modified()).ok();
        if modified.is_some() && modified == seen && last.elapsed() < CHECKPOINT_ANYWAY {
            continue;
        }
        seen = modified;
        last = tokio::time::Instant::now();
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %e, "background WAL checkpoint failed; retrying");
        }
    }
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
            .connect_with(opts.clone().pragma(
                "wal_autocheckpoint",
                WRITER_AUTOCHECKPOINT_PAGES.to_string(),
            ))
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        // Connected at its first use, half a second in: a short-lived process (`drey
        // export`) never opens it. A checkpoint that waits a second or two for the disk is
        // expected under load: said at debug level, not as a slow-statement warning.
        let checkpoint = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(
                opts.clone()
                    .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1)),
            );
        let mut wal = opts.get_filename().as_os_str().to_owned();
        wal.push("-wal");
        let _checkpointer = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
            checkpoint_forever(checkpoint, wal.into()),
        ));
        let read = SqlitePoolOptions::new()
            // Readers run on sqlx's worker threads; four keeps both cores busy without
            // starving the writer.
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await?;
        Ok(SqliteIndex {
            read,
            write,
            _checkpointer,
        })
    }

    fn read(&self) -> &SqlitePool {
        &self.read
    }

    fn write(&self) -> &SqlitePool {
        &self.write
    }
}

impl_index!(SqliteIndex, sqlx::Sqlite, "sqlite", false);
