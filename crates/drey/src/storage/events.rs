//! Segment-change signals inside one instance: every writer (the TAMS API, live ingest)
//! bumps a flow's version after registering or deleting segments, so playlist caches are
//! invalidated at once and blocked live-playlist requests wake for the new segment.
//! Writes by other instances are seen by polling (cache TTL, blocking-request poll).

use std::collections::HashMap;
use std::sync::Mutex;

use drey_core::Id;
use tokio::sync::watch;

/// Per-flow change counters plus one wake-up channel for waiters.
pub struct SegmentEvents {
    versions: Mutex<HashMap<Id, u64>>,
    tx: watch::Sender<u64>,
}

impl Default for SegmentEvents {
    fn default() -> Self {
        SegmentEvents {
            versions: Mutex::new(HashMap::new()),
            tx: watch::channel(0).0,
        }
    }
}

impl SegmentEvents {
    /// Records that `flow`'s segments changed and wakes every waiter.
    pub fn changed(&self, flow: Id) {
        if let Ok(mut v) = self.versions.lock() {
            *v.entry(flow).or_insert(0) += 1;
        }
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The flow's change counter on this instance (0 until it first changes).
    pub fn version(&self, flow: Id) -> u64 {
        self.versions
            .lock()
            .ok()
            .and_then(|v| v.get(&flow).copied())
            .unwrap_or(0)
    }

    /// A receiver that sees every [`SegmentEvents::changed`] after this call.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn versions_count_and_waiters_wake() {
        let ev = SegmentEvents::default();
        let (a, b) = (Id::new_v4(), Id::new_v4());
        let mut rx = ev.subscribe();
        assert_eq!(ev.version(a), 0);
        ev.changed(a);
        ev.changed(a);
        assert_eq!((ev.version(a), ev.version(b)), (2, 0));
        tokio::time::timeout(std::time::Duration::from_secs(1), rx.changed())
            .await
            .expect("woken")
            .expect("sender alive");
    }
}
