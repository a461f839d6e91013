//! Helpers for the uncompressed-grain tests: a flow's grain time ranges checked for
//! count, contiguity and duration, and an export through `drey export` read back.

use std::path::Path;

use serde_json::Value;

use super::Drey;

/// Every segment of the flow, in time order (all pages).
pub async fn segments(d: &Drey, flow: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut url = d.url(&format!("/flows/{flow}/segments?limit=1000"));
    loop {
        let r = reqwest::get(&url).await.unwrap();
        assert_eq!(r.status(), 200);
        let next = r
            .headers()
            .get("link")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.split(';').next())
            .map(|l| l.trim().trim_matches(['<', '>']).to_owned());
        let page: Vec<Value> = r.json().await.unwrap();
        out.extend(page);
        match next {
            Some(n) => url = n,
            None => return out,
        }
    }
}

/// The time ranges of every segment of the flow, in time order.
pub async fn ranges(d: &Drey, flow: &str) -> Vec<drey_core::TimeRange> {
    segments(d, flow)
        .await
        .iter()
        .map(|s| s["timerange"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// The flow holds `frames` grains, once each, back to back, each `dur_ns` long.
pub async fn check(d: &Drey, flow: &str, frames: usize, dur_ns: i64) {
    let ranges = ranges(d, flow).await;
    assert_eq!(ranges.len(), frames, "one segment per grain");
    for w in ranges.windows(2) {
        assert_eq!(w[0].end_nanos(), w[1].start_nanos(), "contiguous grains");
    }
    for r in &ranges {
        assert_eq!(r.duration_nanos(), Some(dur_ns), "grain {r}");
    }
}

/// `drey export FLOW --format FORMAT -o OUT` (straight from the store); the file's bytes.
pub fn export(d: &Drey, flow: &str, format: &str, out: &Path) -> Vec<u8> {
    let (ok, err) = d.run_cli(&[
        "export",
        flow,
        "--format",
        format,
        "-o",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(ok, "drey export: {err}");
    std::fs::read(out).unwrap()
}
