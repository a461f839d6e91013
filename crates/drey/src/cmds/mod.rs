//! Subcommands, one per file: each has `run(args)`; and the span flags they share.

pub mod bench;
pub mod export;
pub mod gc;
pub mod ingest;
pub mod keys;
pub mod play;
pub mod render;
pub mod serve;
pub mod signal;
pub mod token;

/// The span of a flow a command works on: `--start`/`--end` (ISO 8601 UTC) or a TAMS
/// `--timerange`, read as the HTTP API reads its query.
#[derive(Debug, Clone, clap::Args)]
pub struct SpanArgs {
    /// Start of the span, ISO 8601 UTC (e.g. 2026-11-29T14:00:00Z).
    #[arg(long)]
    pub start: Option<String>,
    /// End of the span, ISO 8601 UTC (exclusive).
    #[arg(long)]
    pub end: Option<String>,
    /// The span as a TAMS timerange instead (e.g. "[1764424837:0_1764424897:0)").
    #[arg(long, conflicts_with_all = ["start", "end"])]
    pub timerange: Option<String>,
}

impl SpanArgs {
    /// The flags as query pairs (what `/flows/{id}/download` takes).
    pub fn append_to(&self, q: &mut form_urlencoded::Serializer<'_, String>) {
        for (k, v) in [
            ("timerange", &self.timerange),
            ("start", &self.start),
            ("end", &self.end),
        ] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
    }

    /// The span; the whole flow when none is given.
    pub fn span(&self) -> anyhow::Result<drey_core::TimeRange> {
        let mut q = form_urlencoded::Serializer::new(String::new());
        self.append_to(&mut q);
        Ok(crate::http::query::Query::parse(Some(&q.finish()))
            .span()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .unwrap_or(drey_core::TimeRange::ETERNITY))
    }
}
