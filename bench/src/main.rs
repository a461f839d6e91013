//! drey-bench: measures the index the way the store issue asks — registering 100k segments
//! in batches, and querying a one-hour window in flows of 10k and 1M segments — on SQLite
//! and PostgreSQL in one run, so the figures can be compared side by side. Results go to
//! stdout as a Markdown table for `docs/benchmarks.md`. Also seeds a flow for HTTP load
//! tests with wrk (`seed`).
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use drey::storage::index::{self, Index, SampleTables, SegmentQuery, SegmentRow};
use drey::storage::objects::Objects;
use drey_core::model::Flow;
use drey_core::{Id, TimeRange};

const SEC: i64 = 1_000_000_000;
/// Flow time origin for the benchmark flows (a TAI instant in 2023).
const T0: i64 = 1_700_000_000 * SEC;
/// Segment length: drey's live ingest default.
const SEG: i64 = 2 * SEC;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Register segments in batches and report segments per second.
    Register {
        /// Database URLs to compare (sqlite://..., postgres://...). A postgres URL names an
        /// admin database; a fresh database is created for the run.
        #[arg(long, required = true)]
        database: Vec<String>,
        #[arg(long, default_value_t = 100_000)]
        total: usize,
        #[arg(long, default_value = "100,1000")]
        batches: String,
        /// Sample-table bytes kept with each segment, in its registration transaction
        /// (as RTMP ingest does with `rtmp_sample_tables`); each size is a run of its own.
        #[arg(long, default_value = "0")]
        tables: String,
    },
    /// Query one-hour windows in flows of the given sizes; report p50/p99 latency.
    Query {
        #[arg(long, required = true)]
        database: Vec<String>,
        #[arg(long, default_value = "10000,1000000")]
        sizes: String,
        #[arg(long, default_value_t = 2000)]
        iterations: usize,
    },
    /// MPEG-TS segments demuxed with their sample bytes, as MP4 export does, in memory:
    /// PES payloads converted where they lie (the path export takes) against every PES
    /// packet gathered first, in turns; MB/s of segment bytes and the ratio per round.
    Demux {
        /// MPEG-TS segment files (read once into memory).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        #[arg(long, default_value_t = 6)]
        rounds: usize,
        /// Passes over all the files per measurement.
        #[arg(long, default_value_t = 20)]
        passes: usize,
    },
    /// Create a flow of N segments whose objects exist in the local object directory, for
    /// HTTP load tests against `drey serve` on the same data dir. Prints the flow id.
    Seed {
        #[arg(long)]
        data_dir: std::path::PathBuf,
        #[arg(long, default_value_t = 10_000)]
        segments: usize,
    },
}

fn flow(id: Id) -> Flow {
    serde_json::from_value(serde_json::json!({
        "id": id, "source_id": Id::new_v4(), "format": "urn:x-nmos:format:video", "label": "bench",
        "codec": "video/h264", "container": "video/mp2t",
        "essence_parameters": {"frame_width": 1280, "frame_height": 720, "frame_rate": {"numerator": 30}}
    }))
    .expect("a valid flow")
}

fn seg(i: usize, object: &str) -> SegmentRow {
    let s = T0 + i as i64 * SEG;
    SegmentRow {
        key_frame_count: Some(1),
        ..SegmentRow::new(s, s + SEG, object)
    }
}

/// Opens an index; for PostgreSQL, in a fresh database created through the admin URL.
async fn open(url: &str) -> anyhow::Result<(Arc<dyn Index>, String, Option<sqlx::PgPool>)> {
    if url.starts_with("postgres") {
        let name = format!(
            "drey_bench_{}",
            Id::new_v4().to_string().replace('-', "")[..12].to_owned()
        );
        let pool = sqlx::PgPool::connect(url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await?;
        let mut u = url::Url::parse(url)?;
        u.set_path(&name);
        let direct = sqlx::PgPool::connect(u.as_str()).await?;
        Ok((
            index::open(u.as_str()).await?,
            "PostgreSQL".into(),
            Some(direct),
        ))
    } else {
        let path = url.trim_start_matches("sqlite://");
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(format!("{path}-wal"));
        Ok((index::open(url).await?, "SQLite".into(), None))
    }
}

/// Allocates and marks stored `n` distinct objects (untimed setup).
async fn objects(ix: &dyn Index, flow: Id, n: usize, prefix: &str) -> anyhow::Result<Vec<String>> {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    for chunk in ids.chunks(10_000) {
        ix.allocate_objects(flow, chunk, None, 0, i64::MAX).await?;
        let stored: Vec<(String, i64)> = chunk.iter().map(|i| (i.clone(), 500_000)).collect();
        ix.mark_objects_stored(&stored).await?;
    }
    Ok(ids)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

async fn register(
    databases: &[String],
    total: usize,
    batches: &[usize],
    tables: &[usize],
) -> anyhow::Result<()> {
    println!(
        "| index | batch | tables B | segments | seconds | segments/s | batch p50 ms | batch p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for url in databases {
        for (&batch, &table) in batches
            .iter()
            .flat_map(|b| tables.iter().map(move |t| (b, t)))
        {
            let (ix, name, _) = open(url).await?;
            let f = Id::new_v4();
            ix.put_flow(&flow(f), None, 0).await?;
            let ids = objects(ix.as_ref(), f, total, "r").await?;
            let mut lat = Vec::new();
            let start = Instant::now();
            for (b, chunk) in ids.chunks(batch).enumerate() {
                let segs: Vec<SegmentRow> = chunk
                    .iter()
                    .enumerate()
                    .map(|(j, o)| seg(b * batch + j, o))
                    .collect();
                // Varied bytes, as real tables are (a blob of one value compresses in pages).
                let rows: Vec<SampleTables> = chunk
                    .iter()
                    .filter(|_| table > 0)
                    .map(|o| SampleTables {
                        object_id: o.clone(),
                        init_object_id: String::new(),
                        tables: (0..table).map(|k| (k * 131 + b * 7) as u8).collect(),
                    })
                    .collect();
                let t = Instant::now();
                let v = ix.register_stored_segments(f, &[], &rows, &segs, 1).await?;
                lat.push(t.elapsed());
                anyhow::ensure!(
                    v.iter().all(Result::is_ok),
                    "rejected: {:?}",
                    v.iter().find(|r| r.is_err())
                );
            }
            let secs = start.elapsed().as_secs_f64();
            lat.sort();
            println!(
                "| {name} | {batch} | {table} | {total} | {secs:.2} | {:.0} | {} | {} |",
                total as f64 / secs,
                ms(pct(&lat, 0.5)),
                ms(pct(&lat, 0.99))
            );
        }
    }
    Ok(())
}

/// Fills a flow with `n` segments that all reference one object (edit by reference keeps
/// the setup fast; queries do not read objects).
async fn fill(ix: &dyn Index, f: Id, n: usize) -> anyhow::Result<()> {
    let obj = objects(ix, f, 1, &format!("q{n}")).await?.remove(0);
    for start in (0..n).step_by(10_000) {
        let segs: Vec<SegmentRow> = (start..(start + 10_000).min(n))
            .map(|i| seg(i, &obj))
            .collect();
        let v = ix.register_segments(f, &segs, 1).await?;
        anyhow::ensure!(v.iter().all(Result::is_ok));
    }
    Ok(())
}

async fn query(databases: &[String], sizes: &[usize], iterations: usize) -> anyhow::Result<()> {
    println!(
        "| index | flow segments | page | rows/query | p50 ms | p99 ms | p99 vs smallest flow |"
    );
    println!("|---|---|---|---|---|---|---|");
    for url in databases {
        let (ix, name, pg) = open(url).await?;
        let mut flows = Vec::new();
        for &n in sizes {
            let f = Id::new_v4();
            ix.put_flow(&flow(f), None, 0).await?;
            let t = Instant::now();
            fill(ix.as_ref(), f, n).await?;
            eprintln!(
                "{name}: filled {n} segments in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            flows.push((f, n));
        }
        if let Some(pg) = &pg {
            // What autovacuum does after a bulk load; without current statistics the
            // planner misjudges the range scans (see docs/benchmarks.md).
            sqlx::query("ANALYZE").execute(pg).await?;
        }
        for limit in [100usize, 2000] {
            let mut base_p99 = None;
            for &(f, n) in &flows {
                let hour = 3600 * SEC;
                let span = n as i64 * SEG - hour;
                let mut lat = Vec::with_capacity(iterations);
                let mut rows = 0usize;
                // A cheap deterministic spread of window starts over the whole flow.
                let mut x: u64 = 0x9E3779B97F4A7C15;
                for _ in 0..iterations {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let s = T0 + (x % span.max(1) as u64) as i64;
                    let q = SegmentQuery {
                        range: TimeRange::from_nanos(s, s + hour),
                        object_id: None,
                        reverse: false,
                        after_start_ns: None,
                        limit,
                    };
                    let t = Instant::now();
                    rows += ix.list_segments(f, &q).await?.len();
                    lat.push(t.elapsed());
                }
                lat.sort();
                let p99 = pct(&lat, 0.99);
                let ratio = base_p99.map_or("1.00".to_owned(), |b: Duration| {
                    format!("{:.2}", p99.as_secs_f64() / b.as_secs_f64())
                });
                base_p99.get_or_insert(p99);
                println!(
                    "| {name} | {n} | {limit} | {} | {} | {} | {ratio} |",
                    rows / iterations,
                    ms(pct(&lat, 0.5)),
                    ms(p99)
                );
            }
        }
    }
    Ok(())
}

async fn seed(data_dir: &std::path::Path, n: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let url = format!("sqlite://{}", data_dir.join("index.db").display());
    let ix = index::open(&url).await.context("opening the index")?;
    let objs = Objects::local(data_dir.join("objects"))?;
    let f = Id::new_v4();
    ix.put_flow(&flow(f), None, 0).await?;
    let ids = objects(ix.as_ref(), f, n, "w").await?;
    for id in &ids {
        objs.put(id, vec![0x47u8; 188 * 10].into()).await?;
    }
    for (b, chunk) in ids.chunks(10_000).enumerate() {
        let segs: Vec<SegmentRow> = chunk
            .iter()
            .enumerate()
            .map(|(j, o)| seg(b * 10_000 + j, o))
            .collect();
        ix.register_segments(f, &segs, 1).await?;
    }
    println!("{f}");
    Ok(())
}

fn list(s: &str) -> Vec<usize> {
    s.split(',').filter_map(|x| x.trim().parse().ok()).collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Register {
            database,
            total,
            batches,
            tables,
        } => register(&database, total, &list(&batches), &list(&tables)).await,
        Cmd::Query {
            database,
            sizes,
            iterations,
        } => query(&database, &list(&sizes), iterations).await,
        Cmd::Seed { data_dir, segments } => seed(&data_dir, segments).await,
        Cmd::Demux {
            files,
            rounds,
            passes,
        } => demux(&files, rounds, passes),
    }
}

fn demux(files: &[std::path::PathBuf], rounds: usize, passes: usize) -> anyhow::Result<()> {
    use drey_core::media::samples;
    let segs = files
        .iter()
        .map(|f| std::fs::read(f).with_context(|| format!("reading {}", f.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let total: usize = segs.iter().map(Vec::len).sum::<usize>() * passes;
    for s in &segs {
        anyhow::ensure!(
            samples::from_ts(s, true)? == samples::from_ts_gathered(s, Vec::new(), Vec::new())?,
            "the two paths disagree"
        );
    }
    // Export recycles its buffers: so do both here.
    let run = |gathered: bool, bufs: &mut (Vec<u8>, Vec<u8>)| -> anyhow::Result<f64> {
        let t = Instant::now();
        for _ in 0..passes {
            for s in &segs {
                let (v, a) = std::mem::take(bufs);
                let mut out = if gathered {
                    samples::from_ts_gathered(s, v, a)?
                } else {
                    samples::from_ts_into(s, v, a)?
                };
                let mut tracks = out.tracks.drain(..);
                bufs.0 = tracks.next().map(|t| t.data).unwrap_or_default();
                bufs.1 = tracks.next().map(|t| t.data).unwrap_or_default();
            }
        }
        Ok(total as f64 / t.elapsed().as_secs_f64() / 1e6)
    };
    // Each path keeps its own buffers.
    let mut bufs = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    println!("| round | direct MB/s | gathered MB/s | direct / gathered |");
    println!("|---|---|---|---|");
    for r in 1..=rounds {
        // Which goes first alternates.
        let mut mbps = [0.0; 2];
        for p in [r % 2, 1 - r % 2] {
            mbps[p] = run(p == 1, &mut bufs[p])?;
        }
        let [d, g] = mbps;
        println!("| {r} | {d:.0} | {g:.0} | {:.2} |", d / g);
    }
    Ok(())
}
