//! `drey render FLOW`: the parallel renderer. Reads a span of an uncompressed flow, inverts
//! each frame's luma, and writes the result with N writers as a new flow of the same
//! source, recording its provenance (tags `drey.derived_from`, `drey.operation` and the
//! span, and a description saying so).

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, bail};
use drey_core::media::raw::RawFormat;
use drey_core::model::{FlowEssence, TagValue};
use drey_core::{Id, TimeRange};

use crate::config::{FileConfig, StoreArgs, StoreConfig};
use crate::grains::{JobSpec, Render};
use crate::storage::index::SegmentQuery;

#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    /// The uncompressed flow to read.
    pub flow: Id,
    /// The span to render (TAMS timerange; default: the whole flow).
    #[arg(long)]
    pub timerange: Option<String>,
    /// The operation: invert (luma).
    #[arg(long, default_value = "invert", value_parser = ["invert"])]
    pub op: String,
    /// Parallel read-process-write uploads.
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    /// Label of the new flow.
    #[arg(long)]
    pub label: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub async fn run(args: RenderArgs) -> anyhow::Result<()> {
    let cfg = FileConfig::load(args.store.config.as_deref())?;
    let (index, objects) = StoreConfig::resolve(&args.store, &cfg).open().await?;
    let flow = index
        .get_flow(args.flow)
        .await?
        .with_context(|| format!("flow {} does not exist", args.flow))?
        .value;
    let FlowEssence::Video {
        essence_parameters: v,
    } = &flow.essence
    else {
        bail!("flow {} is not video", flow.id);
    };
    if flow.codec.as_ref().map(|c| c.as_str()) != Some("video/raw") {
        bail!("flow {} is not uncompressed (codec video/raw)", flow.id);
    }
    let format = RawFormat::from_essence(v)
        .with_context(|| format!("flow {}'s packing is not one drey renders", flow.id))?;
    let rate = v
        .frame_rate
        .with_context(|| format!("flow {} has no frame_rate", flow.id))?;
    let span: TimeRange = match &args.timerange {
        Some(t) => t.parse().map_err(|e| anyhow::anyhow!("--timerange: {e}"))?,
        None => TimeRange::ETERNITY,
    };
    let rows = index
        .list_segments(
            flow.id,
            &SegmentQuery {
                range: span,
                object_id: None,
                reverse: false,
                after_start_ns: None,
                limit: usize::MAX / 2,
            },
        )
        .await?;
    let (Some(first), true) = (rows.first(), !rows.is_empty()) else {
        bail!("flow {} has no grains in {span}", flow.id);
    };
    let spec = JobSpec {
        flow_id: Id::new_v4(),
        source_id: flow.source_id,
        format: format.name().to_owned(),
        width: v.frame_width,
        height: v.frame_height,
        rate: format!("{}/{}", rate.numerator, rate.denominator_or_one()),
        frames: rows.len() as u64,
        start_ns: first.start_ns,
        chunk_frames: 25,
        audio: None,
        open: false,
    };
    let job = format!("render-{}", uuid::Uuid::new_v4().simple());
    let label = args
        .label
        .clone()
        .or_else(|| flow.label.as_ref().map(|l| format!("{l} ({})", args.op)));
    let spec = crate::grains::prepare(index.as_ref(), &job, &spec, label.as_deref()).await?;
    // Provenance on the new flow.
    let mut out = index
        .get_flow(spec.flow_id)
        .await?
        .context("the rendered flow vanished")?;
    let covered = TimeRange::from_nanos(first.start_ns, rows[rows.len() - 1].end_ns);
    let mut tags = out.value.tags.clone().unwrap_or_default();
    for (k, v) in [
        ("drey.derived_from", flow.id.to_string()),
        ("drey.operation", args.op.clone()),
        ("drey.derived_timerange", covered.to_string()),
    ] {
        tags.insert(k.to_owned(), TagValue::One(v));
    }
    out.value.tags = Some(tags);
    out.value.description = Some(format!(
        "{} of flow {} over {covered}, by drey render",
        args.op, flow.id
    ));
    index
        .put_flow(&out.value, None, crate::util::unix_now_ns())
        .await?;
    let source = Arc::new(Render {
        objects: objects.clone(),
        ids: rows.iter().map(|r| r.object_id.clone()).collect(),
        format,
        width: v.frame_width,
        height: v.frame_height,
        rt: tokio::runtime::Handle::current(),
    });
    let stats = crate::grains::write(
        index.clone(),
        objects,
        &job,
        &spec,
        source,
        args.writers,
        Arc::new(|_| {}),
    )
    .await?;
    let out = serde_json::json!({
        "flow_id": spec.flow_id,
        "source_id": spec.source_id,
        "derived_from": flow.id,
        "frames": rows.len(),
        "stored": stats.stored.load(std::sync::atomic::Ordering::Relaxed),
    });
    writeln!(std::io::stdout().lock(), "{out}")?;
    Ok(())
}
