//! The local spool: segments that cannot reach the object store or the index right away
//! wait here, on disk, in order, bounded in bytes. Each file holds one segment and
//! everything needed to store it (its job and its flows), so a restarted drey drains what a
//! previous run left behind.
//!
//! Layout: `SPOOL/PUBLISH_ID/SEQ.seg`, written as `.tmp` then renamed (a reader never sees
//! half a file). File format: `DREYSPL1`, u32 big-endian header length, JSON header, payload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use drey_core::model::Flow;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::SegmentJob;

const MAGIC: &[u8; 8] = b"DREYSPL1";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool full: {used} of {max} bytes used, {need} more needed")]
    Full { used: u64, max: u64, need: u64 },
    #[error("spool I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt spool file {0}")]
    Corrupt(PathBuf),
}

/// What a spool file's header records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpoolHeader {
    pub job: SegmentJob,
    pub flows: Vec<Flow>,
}

/// A spooled segment: where it is and how many bytes it holds.
#[derive(Debug, Clone)]
pub struct Spooled {
    pub path: PathBuf,
    pub bytes: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    used: AtomicU64,
    files: AtomicU64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Spool {
    /// Opens (creating) the spool directory and counts what an earlier run left in it.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Arc<Self>, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let spool = Spool {
            dir: dir.to_owned(),
            max_bytes,
            used: AtomicU64::new(0),
            files: AtomicU64::new(0),
        };
        for publish in std::fs::read_dir(dir).map_err(io(dir))? {
            let publish = publish.map_err(io(dir))?.path();
            if !publish.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&publish).map_err(io(&publish))? {
                let f = f.map_err(io(&publish))?;
                let p = f.path();
                if p.extension().is_some_and(|e| e == "tmp") {
                    // Half-written when the previous run died: never renamed, never counted.
                    let _ = std::fs::remove_file(&p);
                    continue;
                }
                if p.extension().is_none_or(|e| e != "seg") {
                    continue;
                }
                let len = f.metadata().map_err(io(&p))?.len();
                spool.used.fetch_add(len, Ordering::Relaxed);
                spool.files.fetch_add(1, Ordering::Relaxed);
            }
        }
        spool.publish_metrics();
        Ok(Arc::new(spool))
    }

    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub fn files(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }

    fn publish_metrics(&self) {
        metrics::gauge!("drey_ingest_spool_bytes").set(self.used_bytes() as f64);
        metrics::gauge!("drey_ingest_spool_segments").set(self.files() as f64);
    }

    /// Publish directories present now, oldest name first (left by earlier runs when called
    /// at startup).
    pub fn publishes(&self) -> Result<Vec<PathBuf>, SpoolError> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(io(&self.dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        Ok(dirs)
    }

    /// The segment files of one publish directory, in sequence order.
    pub fn segments(&self, publish_dir: &Path) -> Result<Vec<Spooled>, SpoolError> {
        let mut out: Vec<Spooled> = std::fs::read_dir(publish_dir)
            .map_err(io(publish_dir))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
            .map(|e| Spooled {
                bytes: e.metadata().map(|m| m.len()).unwrap_or(0),
                path: e.path(),
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Writes one segment (durably: fsync before the rename), reserving its bytes first.
    pub async fn write(
        &self,
        job: &SegmentJob,
        flows: &[Flow],
        data: &Bytes,
    ) -> Result<Spooled, SpoolError> {
        let header = serde_json::to_vec(&SpoolHeader {
            job: job.clone(),
            flows: flows.to_vec(),
        })
        .expect("spool header serialises");
        let total = (MAGIC.len() + 4 + header.len() + data.len()) as u64;
        let before = self.used.fetch_add(total, Ordering::Relaxed);
        if before + total > self.max_bytes {
            self.used.fetch_sub(total, Ordering::Relaxed);
            return Err(SpoolError::Full {
                used: before,
                max: self.max_bytes,
                need: total,
            });
        }
        let result = self.write_file(job, &header, data).await;
        match result {
            Ok(path) => {
                self.files.fetch_add(1, Ordering::Relaxed);
                self.publish_metrics();
                Ok(Spooled { path, bytes: total })
            }
            Err(e) => {
                self.used.fetch_sub(total, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    async fn write_file(
        &self,
        job: &SegmentJob,
        header: &[u8],
        data: &Bytes,
    ) -> Result<PathBuf, SpoolError> {
        let dir = self.dir.join(job.publish_id.to_string());
        tokio::fs::create_dir_all(&dir).await.map_err(io(&dir))?;
        let path = dir.join(format!("{:012}.seg", job.seq));
        let tmp = path.with_extension("tmp");
        let mut f = tokio::fs::File::create(&tmp).await.map_err(io(&tmp))?;
        let mut head = Vec::with_capacity(12 + header.len());
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&(header.len() as u32).to_be_bytes());
        head.extend_from_slice(header);
        f.write_all(&head).await.map_err(io(&tmp))?;
        f.write_all(data).await.map_err(io(&tmp))?;
        f.sync_all().await.map_err(io(&tmp))?;
        drop(f);
        tokio::fs::rename(&tmp, &path).await.map_err(io(&path))?;
        Ok(path)
    }

    /// Reads a spooled segment back.
    pub async fn read(&self, s: &Spooled) -> Result<(SpoolHeader, Bytes), SpoolError> {
        let raw = tokio::fs::read(&s.path).await.map_err(io(&s.path))?;
        let corrupt = || SpoolError::Corrupt(s.path.clone());
        if raw.len() < 12 || &raw[..8] != MAGIC {
            return Err(corrupt());
        }
        let hlen = u32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]) as usize;
        let header = raw.get(12..12 + hlen).ok_or_else(corrupt)?;
        let header: SpoolHeader = serde_json::from_slice(header).map_err(|_| corrupt())?;
        let data = Bytes::from(raw).slice(12 + hlen..);
        Ok((header, data))
    }

    /// Takes a file that left the spool out of the accounting.
    fn forget(&self, s: &Spooled) {
        self.used
            .fetch_sub(s.bytes.min(self.used_bytes()), Ordering::Relaxed);
        self.files.fetch_sub(1, Ordering::Relaxed);
        self.publish_metrics();
    }

    /// Removes a segment once it is stored (and its publish directory once empty).
    pub async fn remove(&self, s: &Spooled) {
        match tokio::fs::remove_file(&s.path).await {
            Ok(()) => self.forget(s),
            Err(e) => {
                tracing::warn!(path = %s.path.display(), error = %e, "removing a spooled segment failed")
            }
        }
        if let Some(dir) = s.path.parent() {
            // Fails while other segments remain; that is fine.
            let _ = tokio::fs::remove_dir(dir).await;
        }
    }

    /// Moves a file that cannot be read aside, so it neither blocks draining nor is lost.
    pub async fn quarantine(&self, s: &Spooled) {
        let bad = s.path.with_extension("corrupt");
        if tokio::fs::rename(&s.path, &bad).await.is_ok() {
            self.forget(s);
        }
    }
}
