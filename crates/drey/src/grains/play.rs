//! Parallel stream creation: a span of an uncompressed flow played out as a live stream.
//! The grains' rows come from the index page by page (and, following a flow still being
//! written, as they appear); N readers fetch the objects in parallel, in order, a bounded
//! number ahead; a sender paces them at the flow's rate (each grain due when the grains
//! before it have lasted their time) to every receiver of a frame stream or to a file or
//! pipe. Gaps in the flow are closed up (the stream stays continuous) and counted; a
//! grain that is ready only after its time is sent at once and counted late; at the live
//! edge the clock starts again from the next grain, so a followed flow is not replayed in
//! a burst.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use drey_core::{Id, TimeRange};
use futures::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::broadcast::Broadcast;
use crate::storage::index::{Index, SegmentQuery, SegmentRow};
use crate::storage::objects::Objects;

/// Rows fetched from the index at once.
const PAGE: usize = 500;

/// Where the played grains go.
pub enum Sink {
    /// Receivers of a frame stream (`drey ingest stream`).
    Stream(Broadcast),
    /// The grains' bytes back to back (a file, or standard output for a player).
    Bytes(Box<dyn AsyncWrite + Send + Unpin>),
}

/// How to play.
#[derive(Debug, Clone)]
pub struct Options {
    /// Objects fetched in parallel (and at most twice as many waiting, in order).
    pub readers: usize,
    /// Send at the flow's rate; without, as fast as the readers go.
    pub pace: bool,
    /// Keep following the flow for new grains after the span's last until stopped:
    /// (poll the index this often, wait this long for a hole at the live edge to fill
    /// before taking it for a gap).
    pub follow: Option<(Duration, Duration)>,
    /// Number of the first frame in the stream.
    pub first_frame: u64,
}

/// What a play did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Played {
    pub frames: u64,
    pub bytes: u64,
    /// Frames sent more than one frame period after they were due.
    pub late: u64,
    pub max_late_ms: f64,
    /// Holes in the flow closed up in the stream.
    pub gaps: u64,
    /// Receivers dropped for falling behind.
    pub receivers_dropped: u64,
    pub seconds: f64,
    /// The flow time played, `[first grain's start, last grain's end)`.
    pub timerange: Option<String>,
}

enum Item {
    Grain(Box<SegmentRow>),
    /// The index had nothing newer: the stream is at the live edge.
    Waited,
}

/// The span's rows in time order, then (following) rows as they appear. Parallel
/// writers register chunks out of order, so at the live edge a hole may be a chunk still
/// being written: the rows after it are held back for up to `grace` before the hole is
/// taken for a gap.
fn rows(
    index: Arc<dyn Index>,
    flow: Id,
    span: TimeRange,
    follow: Option<(Duration, Duration)>,
) -> futures::stream::BoxStream<'static, anyhow::Result<Item>> {
    struct State {
        /// Start of the last row handed out (the keyset cursor).
        after: Option<i64>,
        last_end: Option<i64>,
        buf: std::vec::IntoIter<SegmentRow>,
        done: bool,
        /// The live edge was reached once (every row after it is new).
        live: bool,
        /// Since when the next row has been held back behind a hole.
        hole_since: Option<Instant>,
    }
    let st = State {
        after: None,
        last_end: None,
        buf: Vec::new().into_iter(),
        done: false,
        live: false,
        hole_since: None,
    };
    futures::stream::unfold(st, move |mut st| {
        let index = index.clone();
        async move {
            loop {
                if let Some(r) = st.buf.as_slice().first() {
                    let hole = st.last_end.is_some_and(|e| r.start_ns > e);
                    if let (true, true, Some((poll, grace))) = (hole, st.live, follow) {
                        let since = *st.hole_since.get_or_insert_with(Instant::now);
                        if since.elapsed() < grace {
                            // Look again soon, from the last row handed out.
                            st.buf = Vec::new().into_iter();
                            tokio::time::sleep(poll).await;
                            continue;
                        }
                    }
                    st.hole_since = None;
                    let r = st.buf.next().expect("peeked");
                    st.after = Some(r.start_ns);
                    st.last_end = Some(r.end_ns);
                    return Some((Ok(Item::Grain(Box::new(r))), st));
                }
                if st.done {
                    return None;
                }
                let q = SegmentQuery {
                    range: span,
                    object_id: None,
                    reverse: false,
                    after_start_ns: st.after,
                    limit: PAGE,
                };
                let page = match index.list_segments(flow, &q).await {
                    Ok(p) => p,
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e.into()), st));
                    }
                };
                if !page.is_empty() {
                    st.buf = page.into_iter();
                    continue;
                }
                match follow {
                    // Nothing newer yet: wait at the live edge.
                    Some((poll, _)) if span.end_nanos().is_none() => {
                        st.live = true;
                        tokio::time::sleep(poll).await;
                        return Some((Ok(Item::Waited), st));
                    }
                    _ => st.done = true,
                }
            }
        }
    })
    .boxed()
}

/// Plays `span` of `flow` into `sink` until its end (or, following, until `stop`
/// resolves; `stop` also ends a span early). Stream receivers are told the end.
pub async fn play(
    index: Arc<dyn Index>,
    objects: Arc<Objects>,
    flow: Id,
    span: TimeRange,
    opts: &Options,
    mut sink: Sink,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Played> {
    // `readers` fetches in flight, in order, as for the grain download.
    let readers = opts.readers.max(1);
    let mut grains = objects.clone().fetch_in_order(
        rows(index, flow, span, opts.follow),
        readers,
        move |item: anyhow::Result<Item>| {
            let objects = objects.clone();
            async move {
                match item? {
                    Item::Waited => Ok(None),
                    Item::Grain(row) => {
                        let bytes = objects
                            .get_bytes(&row.object_id)
                            .await
                            .with_context(|| format!("reading grain {:?}", row.object_id))?;
                        Ok(Some((*row, bytes)))
                    }
                }
            }
        },
        |m| anyhow::anyhow!(m),
    );
    tokio::pin!(stop);
    let mut out = Played::default();
    let started = Instant::now();
    // The pacing clock: when the current run of grains started, and the media time sent
    // since.
    let mut clock: Option<Instant> = None;
    let mut media_ns: u64 = 0;
    let (mut first_start, mut last_end): (Option<i64>, Option<i64>) = (None, None);
    let mut n = opts.first_frame;
    loop {
        let next: Option<anyhow::Result<Option<(SegmentRow, Bytes)>>> = tokio::select! {
            g = grains.next() => g,
            _ = &mut stop => {
                tracing::info!(frame = n, "stopping: ending the stream");
                break;
            }
        };
        let Some(next) = next else { break };
        let Some((row, bytes)) = next? else {
            // At the live edge: the next grain starts a new run of the clock.
            clock = None;
            continue;
        };
        let dur = u64::try_from(row.end_ns - row.start_ns).unwrap_or(0);
        if last_end.is_some_and(|e| e != row.start_ns) {
            out.gaps += 1;
        }
        first_start.get_or_insert(row.start_ns);
        last_end = Some(row.end_ns);
        if opts.pace {
            let t0 = *clock.get_or_insert_with(|| {
                media_ns = 0;
                Instant::now()
            });
            let due = t0 + Duration::from_nanos(media_ns);
            let now = Instant::now();
            if due > now {
                tokio::select! {
                    _ = tokio::time::sleep_until(due.into()) => {}
                    _ = &mut stop => {
                        tracing::info!(frame = n, "stopping: ending the stream");
                        break;
                    }
                }
            } else if now - due > Duration::from_nanos(dur) {
                out.late += 1;
                out.max_late_ms = out.max_late_ms.max((now - due).as_secs_f64() * 1e3);
            }
            media_ns += dur;
        }
        match &mut sink {
            Sink::Stream(b) => b.send(n, &bytes)?,
            Sink::Bytes(w) => w.write_all(&bytes).await?,
        }
        out.frames += 1;
        out.bytes += bytes.len() as u64;
        n += 1;
    }
    match sink {
        Sink::Stream(b) => {
            out.receivers_dropped = b.dropped();
            b.finish(Some(n)).await;
        }
        Sink::Bytes(mut w) => w.flush().await?,
    }
    out.seconds = started.elapsed().as_secs_f64();
    if let (Some(a), Some(b)) = (first_start, last_end) {
        out.timerange = Some(TimeRange::from_nanos(a, b).to_string());
    }
    Ok(out)
}
