//! End-to-end tests of span export as one MPEG-TS or MP4 file, with real ffmpeg/ffprobe,
//! on SQLite + local directory and on PostgreSQL + Ceph RGW: whole flow and sub-spans
//! decode with the right durations and frame counts, HEAD and random byte ranges agree
//! with the full download, separate audio and video flows make one file, long spans stay
//! right, and bad requests get clear errors.

mod common;

use common::media::*;
use common::{Backend, Drey};
use drey_core::TimeRange;
use serde_json::{Value, json};
use std::path::Path;

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
    // A pipe (as /dev/null, a device) is written in place, not replaced by a file.
    let fifo = dir.path().join("pipe.ts");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read(reader).map_err(|e| e.to_string()));
    });
    let (ok, err) = d.run_cli(&[
        "export",
        id.as_str(),
        "--timerange",
        &span_arg,
        "-o",
        &fifo.to_string_lossy(),
        "-q",
    ]);
    assert!(ok, "drey export to a pipe: {err}");
    let piped = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("nothing was written to the pipe")
        .unwrap();
    assert!(piped == std::fs::read(&part).unwrap());
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(!dir.path().join("pipe.ts.part").exists());

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
    // As MP4: the gap is closed up and said so; 8 s of media, every frame.
    let r = get(&d.url(&format!("/flows/{id}/download?format=mp4")), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["drey-gaps"].to_str().unwrap(), gaps);
    let p = probe_bytes(dir.path(), "gap.mp4", &r.bytes().await.unwrap());
    assert_eq!(p.video_frames, 200);
    assert!((p.duration - 8.0).abs() < 0.2, "{}", p.duration);
}

/// ffprobe's view of an MP4 export written to `dir/name`.
fn probe_bytes(dir: &Path, name: &str, bytes: &[u8]) -> Probe {
    let file = dir.join(name);
    std::fs::write(&file, bytes).unwrap();
    let errors = decode_errors(&file);
    assert!(errors.is_empty(), "{name}: {errors}");
    probe(&file)
}

fn header_len(r: &reqwest::Response) -> u64 {
    r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// MP4 export of a live publish, from its MPEG-TS flow and from its fMP4 flow: the whole
/// flow and a 10 s span starting between keyframes have the right duration (the edit list
/// trims to the exact start) and frame count and decode cleanly; HEAD, ETag and random
/// byte ranges agree with the full file; the CLI writes the same bytes.
async fn export_mp4(backend: Backend) {
    let Some(mut d) = Drey::start(
        backend,
        "rtmp_outputs = [\"ts\", \"fmp4\"]\nexport_read_ahead = 3",
    )
    .await
    else {
        return;
    };
    wait_ok(publish(&d.rtmp_url("mp4"), 20, false));
    let flows = mux_flows(&d, "mp4", 2).await;
    let by_container = |c: &str| {
        flows
            .iter()
            .find(|f| f["container"] == c)
            .unwrap_or_else(|| panic!("no {c} flow: {flows:?}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut sizes = Vec::new();
    let mut planned = Vec::new();
    for (container, name) in [("video/mp2t", "ts"), ("video/mp4", "fmp4")] {
        let id = by_container(container);
        wait_idle(&d, &id).await;
        let segs = segments(&d, &id).await;
        assert_eq!(segs.len(), 10, "{name}");
        let (t0, t_end) = (range_ns(&segs[0]).0, range_ns(&segs[9]).1);
        let base = d.url(&format!("/flows/{id}/download?format=mp4"));

        let r = get(&base, None).await;
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(r.headers()["content-type"], "video/mp4");
        let len = header_len(&r);
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        let covers: TimeRange = r.headers()["drey-timerange"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(covers, TimeRange::from_nanos(t0, t_end), "{name}");
        let full = r.bytes().await.unwrap();
        assert_eq!(full.len() as u64, len);
        assert_eq!(&full[4..8], b"ftyp");
        let p = probe_bytes(dir.path(), &format!("{name}-full.mp4"), &full);
        let want = (t_end - t0) as f64 / 1e9;
        assert!(
            (p.duration - want).abs() < 0.05,
            "{name}: {} vs {want}",
            p.duration
        );
        assert_eq!(p.video_frames, 500, "{name}");
        assert!(
            p.audio_frames > 900,
            "{name}: {} audio frames",
            p.audio_frames
        );
        sizes.push(len);
        planned.push((base.clone(), len, etag.clone()));

        // HEAD and ETag.
        let h = reqwest::Client::new().head(&base).send().await.unwrap();
        assert_eq!(header_len(&h), len);
        assert_eq!(h.headers()["etag"].to_str().unwrap(), etag);
        let r = reqwest::Client::new()
            .get(&base)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304);

        // Many random ranges are exactly those bytes of the full file (the header, chunk
        // edges, single bytes, long spans).
        let mut rng = Lcg(0x6d70_3400 + len);
        for i in 0..60 {
            let a = rng.below(len);
            let b = match i % 3 {
                0 => a + 1,
                1 => a + 1 + rng.below(4096),
                _ => a + 1 + rng.below(len / 2),
            }
            .min(len);
            let r = get(&base, Some(&format!("bytes={a}-{}", b - 1))).await;
            assert_eq!(r.status(), 206);
            let body = r.bytes().await.unwrap();
            assert!(
                body[..] == full[a as usize..b as usize],
                "{name}: range {a}-{b}"
            );
        }

        // 10 s from 4.3 s in (between keyframes): trimmed to exactly 10 s, 250 frames.
        let span = TimeRange::from_nanos(t0 + 4_300_000_000, t0 + 14_300_000_000);
        let url = format!("{base}&timerange={span}");
        let r = get(&url, None).await;
        assert_eq!(r.status(), 200, "{name}");
        let covers: TimeRange = r.headers()["drey-timerange"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(covers, span);
        let part = r.bytes().await.unwrap();
        let p = probe_bytes(dir.path(), &format!("{name}-10s.mp4"), &part);
        assert!((p.duration - 10.0).abs() < 0.05, "{name}: {}", p.duration);
        assert!(
            (249..=251).contains(&p.video_frames),
            "{name}: {} frames",
            p.video_frames
        );

        // The CLI, through the server and straight from the store: the same bytes.
        let span_arg = span.to_string();
        for mode in ["http", "direct"] {
            let out = dir.path().join(format!("cli-{name}-{mode}.mp4"));
            let out_s = out.to_string_lossy().into_owned();
            let mut args = vec![
                "export",
                id.as_str(),
                "--timerange",
                &span_arg,
                "--format",
                "mp4",
                "-o",
                &out_s,
                "-q",
            ];
            if mode == "http" {
                args.extend(["--url", d.base.as_str()]);
            }
            let (ok, err) = d.run_cli(&args);
            assert!(ok, "drey export ({name}, {mode}): {err}");
            assert!(std::fs::read(&out).unwrap() == part[..], "{name} {mode}");
        }
    }
    // The same samples either way, give or take the SPS/PPS the TS flow repeats.
    let diff = sizes[0].abs_diff(sizes[1]);
    assert!(diff < sizes[0] / 50, "{sizes:?}");
    // Each segment was read once for its tables, which the index kept: after a restart
    // (nothing in memory) planning the same files reads none of the 20 segments again.
    let tables_from = |metrics: &str, from: &str| -> u64 {
        let key = format!("drey_export_sample_tables_total{{from=\"{from}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    let metrics_url = d.url("/metrics");
    let metrics = || async {
        reqwest::get(&metrics_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert_eq!(tables_from(&metrics().await, "segment"), 20);
    d.kill_9();
    d.restart().await;
    for (base, len, etag) in &planned {
        let h = reqwest::Client::new().head(base).send().await.unwrap();
        assert_eq!(h.status(), 200);
        assert_eq!(header_len(&h), *len);
        assert_eq!(h.headers()["etag"].to_str().unwrap(), etag);
    }
    let m = metrics().await;
    assert_eq!(
        (tables_from(&m, "index"), tables_from(&m, "segment")),
        (20, 0),
        "{m}"
    );
}

/// A source whose video and audio are separate flows (as a TAMS client may write them)
/// exports as one MP4 with both tracks, aligned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_flows_make_one_mp4() {
    let d = Drey::start_with_config("").await;
    let (source, _, _) = separate_av_flows(&d).await;
    // Off by default: nothing reads registered segments for their tables.
    assert_eq!(metric(&d, "drey_segments_sample_tables_total").await, 0.0);
    let dir = tempfile::tempdir().unwrap();
    let r = get(
        &d.url(&format!("/sources/{source}/download?format=mp4")),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let p = probe_bytes(dir.path(), "both.mp4", &r.bytes().await.unwrap());
    assert_eq!(p.video_frames, 250, "10 s at 25 fps");
    assert!(p.audio_frames >= 460, "audio frames {}", p.audio_frames);
    assert!((p.duration - 10.0).abs() < 0.1, "{}", p.duration);
    // TS cannot combine them: a 415 that says to ask for MP4.
    let r = get(
        &d.url(&format!("/sources/{source}/download?format=ts")),
        None,
    )
    .await;
    assert_eq!(r.status(), 415);
    let v: Value = r.json().await.unwrap();
    assert!(v["summary"].as_str().unwrap().contains("format=mp4"), "{v}");
    let missing = uuid::Uuid::new_v4();
    let r = get(
        &d.url(&format!("/sources/{missing}/download?format=mp4")),
        None,
    )
    .await;
    assert_eq!(r.status(), 404);
}

/// Exports of 10 s, 60 s and 10 min spans of a 10-minute flow written by a TAMS client:
/// durations right (to the edit list's precision, well within one GOP), every frame there,
/// no decode error; a span past the content is a 404 naming where the content is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_spans_export_right() {
    let d = Drey::start_with_config("").await;
    let http = reqwest::Client::new();
    let (flow, source) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let r = http
        .put(d.url(&format!("/flows/{flow}")))
        .json(
            &json!({"id": flow, "source_id": source, "format": "urn:x-nmos:format:multi",
            "container": "video/mp2t"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let work = tempfile::tempdir().unwrap();
    let (_, files) = encode_segments(work.path(), 600, Streams::Both, false);
    let durations = ffmpeg_durations(work.path());
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let ids = upload(&http, &d, &flow.to_string(), &paths).await;
    register_contiguous(&http, &d, flow, &ids, &durations, None).await;
    let t0: i64 = 1_800_000_000 * 1_000_000_000;
    let total: f64 = durations.iter().sum();
    assert!((total - 600.0).abs() < 0.1, "{total}");
    let base = d.url(&format!("/flows/{flow}/download?format=mp4"));
    let dir = tempfile::tempdir().unwrap();
    for (from, secs) in [(123.4f64, 10.0f64), (301.0, 60.0), (0.0, 600.0)] {
        let a = t0 + (from * 1e9) as i64;
        let span = TimeRange::from_nanos(a, a + (secs * 1e9) as i64);
        let r = get(&format!("{base}&timerange={span}"), None).await;
        assert_eq!(r.status(), 200, "{secs} s");
        let p = probe_bytes(
            dir.path(),
            &format!("{secs}.mp4"),
            &r.bytes().await.unwrap(),
        );
        assert!(
            (p.duration - secs).abs() < 0.05,
            "{secs} s span: {}",
            p.duration
        );
        let frames = (secs * 25.0) as u64;
        assert!(
            p.video_frames.abs_diff(frames) <= 1,
            "{secs} s: {} frames",
            p.video_frames
        );
    }
    let past = TimeRange::from_nanos(t0 + 700_000_000_000, t0 + 710_000_000_000);
    let r = get(&format!("{base}&timerange={past}"), None).await;
    assert_eq!(r.status(), 404);
}

/// With `tams_sample_tables`, segments a TAMS client registers get their MP4 sample tables
/// in the background: the first MP4 export of each flow (MPEG-TS and fMP4 segments) plans
/// from the index, reads no segment for them, and decodes right. A segment that is not
/// media is counted and registered all the same.
async fn registered_segments_get_tables(backend: Backend) {
    let Some(d) = Drey::start(backend, "tams_sample_tables = true").await else {
        return;
    };
    let http = reqwest::Client::new();
    let new_flow = |container: &'static str| {
        let (http, d) = (&http, &d);
        async move {
            let flow = uuid::Uuid::new_v4();
            let r = http
                .put(d.url(&format!("/flows/{flow}")))
                .json(&json!({"id": flow, "source_id": uuid::Uuid::new_v4(),
                    "format": "urn:x-nmos:format:multi", "container": container}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            flow
        }
    };
    let kept = r#"drey_segments_sample_tables_total{result="kept"}"#;
    let unreadable = r#"drey_segments_sample_tables_total{result="unreadable"}"#;
    let from = |f: &str| format!("drey_export_sample_tables_total{{from=\"{f}\"}}");
    let dir = tempfile::tempdir().unwrap();
    let mut want_kept = 0.0;
    for fmp4 in [false, true] {
        let container = if fmp4 { "video/mp4" } else { "video/mp2t" };
        let flow = new_flow(container).await;
        let work = tempfile::tempdir().unwrap();
        let (init, files) = encode_segments(work.path(), 8, Streams::Both, fmp4);
        let durations = ffmpeg_durations(work.path());
        let init_id = match &init {
            Some(p) => Some(upload(&http, &d, &flow.to_string(), &[p]).await.remove(0)),
            None => None,
        };
        let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
        let ids = upload(&http, &d, &flow.to_string(), &paths).await;
        register_contiguous(&http, &d, flow, &ids, &durations, init_id.as_deref()).await;
        want_kept += ids.len() as f64;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while metric(&d, kept).await < want_kept && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(
            metric(&d, kept).await,
            want_kept,
            "{container}: tables kept"
        );
        let (index0, segment0) = (
            metric(&d, &from("index")).await,
            metric(&d, &from("segment")).await,
        );
        let r = get(&d.url(&format!("/flows/{flow}/download?format=mp4")), None).await;
        assert_eq!(r.status(), 200, "{container}");
        assert_eq!(
            (
                metric(&d, &from("index")).await - index0,
                metric(&d, &from("segment")).await - segment0
            ),
            (ids.len() as f64, 0.0),
            "{container}: the first export's tables, from the index and from segments"
        );
        let p = probe_bytes(
            dir.path(),
            &format!("{fmp4}.mp4"),
            &r.bytes().await.unwrap(),
        );
        assert!(
            (p.duration - 8.0).abs() < 0.05,
            "{container}: {}",
            p.duration
        );
        assert_eq!(p.video_frames, 200, "{container}");
    }
    // Bytes that are not MPEG-TS: registered (TAMS does not look inside objects), and
    // counted as unreadable; the export then says what is wrong with it.
    let flow = new_flow("video/mp2t").await;
    let junk = dir.path().join("junk.ts");
    std::fs::write(&junk, "not an MPEG-TS segment\n".repeat(200)).unwrap();
    let ids = upload(&http, &d, &flow.to_string(), &[junk.as_path()]).await;
    register_contiguous(&http, &d, flow, &ids, &[2.0], None).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while metric(&d, unreadable).await < 1.0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(metric(&d, unreadable).await, 1.0);
    assert_eq!(metric(&d, kept).await, want_kept);
    let r = get(&d.url(&format!("/flows/{flow}/download?format=mp4")), None).await;
    assert_eq!(r.status(), 415, "junk segment");
}

both_backends! {
    spans => super::export_spans;
    gaps => super::export_reports_gaps;
    mp4 => super::export_mp4;
    registered_tables => super::registered_segments_get_tables;
}
