//! End-to-end tests of span export as one MPEG-TS file, with real ffmpeg/ffprobe, on
//! SQLite + local directory and on PostgreSQL + Ceph RGW: whole flow and sub-spans decode
//! with the right frame counts, HEAD and random byte ranges agree with the full download,
//! and bad requests get clear errors.

mod common;

use common::media::*;
use common::{Backend, Drey};
use drey_core::TimeRange;
use serde_json::Value;

async fn get(url: &str, range: Option<&str>) -> reqwest::Response {
    let mut r = reqwest::Client::new().get(url);
    if let Some(h) = range {
        r = r.header("range", h);
    }
    r.send().await.unwrap()
}

/// A small deterministic generator for the random ranges (no dependency needed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

async fn export_spans(backend: Backend) {
    let Some(d) = Drey::start(backend, "export_read_ahead = 3").await else {
        return;
    };
    wait_ok(publish(&d.rtmp_url("exp"), 20, false));
    let flow = mux_flow(&d, "exp").await;
    let id = flow["id"].as_str().unwrap().to_owned();
    wait_idle(&d, &id).await;
    let segs = segments(&d, &id).await;
    assert_eq!(segs.len(), 10);
    let base = d.url(&format!("/flows/{id}/download"));
    let dir = tempfile::tempdir().unwrap();

    // The whole flow: the segments back to back, 500 frames, no decode error.
    let r = get(&base, None).await;
    assert_eq!(r.status(), 200);
    let len: u64 = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(r.headers()["content-type"], "video/mp2t");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert!(r.headers().get("drey-gaps").is_none());
    let full = r.bytes().await.unwrap();
    assert_eq!(full.len() as u64, len);
    let joined = dir.path().join("segments.ts");
    download(&segs, &joined).await;
    assert_eq!(&full[..], &std::fs::read(&joined).unwrap()[..]);
    let file = dir.path().join("full.ts");
    std::fs::write(&file, &full).unwrap();
    let p = probe(&file);
    assert_eq!(p.video_frames, 500);
    assert!((p.duration - 20.0).abs() <= 0.5, "{}", p.duration);
    assert_eq!(decode_errors(&file), "");

    // HEAD: the same length and ETag, no body; the ETag is stable.
    let h = reqwest::Client::new().head(&base).send().await.unwrap();
    assert_eq!(
        h.headers()["content-length"].to_str().unwrap(),
        len.to_string()
    );
    assert_eq!(h.headers()["etag"].to_str().unwrap(), etag);
    let r = reqwest::Client::new()
        .get(&base)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // Random byte ranges are exactly those bytes of the full file.
    let mut rng = Lcg(0x5eed);
    for _ in 0..40 {
        let a = rng.below(len);
        let b = (a + 1 + rng.below(len / 3)).min(len);
        let r = get(&base, Some(&format!("bytes={a}-{}", b - 1))).await;
        assert_eq!(r.status(), 206);
        assert_eq!(
            r.headers()["content-range"].to_str().unwrap(),
            format!("bytes {a}-{}/{len}", b - 1)
        );
        let body = r.bytes().await.unwrap();
        assert!(body[..] == full[a as usize..b as usize], "range {a}-{b}");
    }
    let r = get(&base, Some("bytes=-1000")).await;
    assert_eq!(r.bytes().await.unwrap()[..], full[full.len() - 1000..]);
    let r = get(&base, Some(&format!("bytes={len}-"))).await;
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes */{len}")
    );

    // A sub-span: whole segments overlapping [t0+4.5 s, t0+10 s) -> 3 segments, 6 s.
    let t0 = range_ns(&segs[0]).0;
    let span = TimeRange::from_nanos(t0 + 4_500_000_000, t0 + 10_000_000_000);
    let r = get(&format!("{base}?timerange={span}"), None).await;
    assert_eq!(r.status(), 200);
    let covers: TimeRange = r.headers()["drey-timerange"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        covers,
        TimeRange::from_nanos(range_ns(&segs[2]).0, range_ns(&segs[4]).1)
    );
    let part = dir.path().join("part.ts");
    std::fs::write(&part, r.bytes().await.unwrap()).unwrap();
    let p = probe(&part);
    assert_eq!(p.video_frames, 150, "three 2 s segments at 25 fps");
    assert_eq!(decode_errors(&part), "");

    // The CLI writes the same file, through the server or straight from the store.
    let span_arg = span.to_string();
    for mode in ["http", "direct"] {
        let out = dir.path().join(format!("cli-{mode}.ts"));
        let out_s = out.to_string_lossy().into_owned();
        let mut args = vec![
            "export",
            id.as_str(),
            "--timerange",
            &span_arg,
            "-o",
            &out_s,
            "-q",
        ];
        if mode == "http" {
            args.extend(["--url", d.base.as_str()]);
        }
        let (ok, err) = d.run_cli(&args);
        assert!(ok, "drey export ({mode}): {err}");
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(&part).unwrap(),
            "{mode}"
        );
        assert!(!dir.path().join(format!("cli-{mode}.ts.part")).exists());
    }
    let missing_out = dir.path().join("none.ts");
    let (ok, err) = d.run_cli(&[
        "export",
        id.as_str(),
        "--timerange",
        "[1:0_2:0)",
        "-o",
        &missing_out.to_string_lossy(),
        "-q",
    ]);
    assert!(!ok && err.contains("no segments"), "{err}");
    assert!(!missing_out.exists() && !dir.path().join("none.ts.part").exists());

    // Bad requests.
    let json = |r: reqwest::Response| async move {
        let s = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        (s, v)
    };
    let (s, v) = json(get(&format!("{base}?timerange=[1:0_2:0)"), None).await).await;
    assert_eq!(s, 404, "{v}");
    assert!(
        v["summary"].as_str().unwrap().contains("content spans"),
        "{v}"
    );
    let (s, v) = json(get(&format!("{base}?timerange=nonsense"), None).await).await;
    assert_eq!((s, v["field"].as_str()), (400, Some("timerange")), "{v}");
    let (s, v) = json(get(&format!("{base}?format=mkv"), None).await).await;
    assert_eq!((s, v["field"].as_str()), (400, Some("format")), "{v}");
    let (s, v) = json(get(&format!("{base}?format=mp4"), None).await).await;
    assert_eq!((s, v["field"].as_str()), (415, Some("format")), "{v}");
    let video_flow = flow["flow_collection"][0]["id"].as_str().unwrap();
    let (s, v) = json(get(&d.url(&format!("/flows/{video_flow}/download")), None).await).await;
    assert_eq!((s, v["field"].as_str()), (415, Some("container")), "{v}");
    let missing = uuid::Uuid::new_v4();
    let (s, _) = json(get(&d.url(&format!("/flows/{missing}/download")), None).await).await;
    assert_eq!(s, 404);
}

/// Two publishes of one key with a pause: the export says where the gap and the timeline
/// restart are, and still decodes.
async fn export_reports_gaps(backend: Backend) {
    let Some(d) = Drey::start(backend, "").await else {
        return;
    };
    wait_ok(publish(&d.rtmp_url("expgap"), 4, true));
    let id = mux_flow(&d, "expgap").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_idle(&d, &id).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    wait_ok(publish(&d.rtmp_url("expgap"), 4, true));
    wait_idle(&d, &id).await;
    let r = get(&d.url(&format!("/flows/{id}/download")), None).await;
    assert_eq!(r.status(), 200);
    let gaps = r.headers()["drey-gaps"].to_str().unwrap().to_owned();
    let gap: TimeRange = gaps.parse().unwrap();
    assert!(
        gap.end_nanos().unwrap() - gap.start_nanos().unwrap() >= 1_000_000_000,
        "{gaps}"
    );
    assert!(r.headers().get("drey-discontinuities").is_some());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gap.ts");
    std::fs::write(&file, r.bytes().await.unwrap()).unwrap();
    assert_eq!(probe(&file).video_frames, 200);
    assert_eq!(
        decode_errors(&file),
        "",
        "the timeline restart decodes cleanly"
    );
}

both_backends! {
    spans => super::export_spans;
    gaps => super::export_reports_gaps;
}
