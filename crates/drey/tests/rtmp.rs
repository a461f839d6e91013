//! End-to-end tests of live RTMP ingest with real ffmpeg publishers, on SQLite + local
//! directory and on PostgreSQL + Ceph RGW: segments decode, timelines are exact, outages of
//! the object store and kill -9 of drey lose nothing that was closed, bad publishers are
//! refused without disturbing good ones.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::media::*;
use common::{Backend, Drey, Gateway};
use serde_json::Value;

async fn publish_20s_decodes(backend: Backend) {
    let Some(d) = Drey::start(backend, "rtmp_sample_tables = true").await else {
        return;
    };
    wait_ok(publish(&d.rtmp_url("cam20"), 20, false));
    let flow = mux_flow(&d, "cam20").await;
    let id = flow["id"].as_str().unwrap();
    wait_idle(&d, id).await;
    assert_eq!(flow["container"], "video/mp2t");
    assert_eq!(flow["label"], "cam20");

    // The collected video and audio flows describe the codecs.
    let coll = flow["flow_collection"].as_array().unwrap();
    assert_eq!(coll.len(), 2);
    let video = get_json(&d.url(&format!("/flows/{}", coll[0]["id"].as_str().unwrap()))).await;
    assert_eq!(video["codec"], "video/h264");
    assert_eq!(video["essence_parameters"]["frame_width"], 320);
    assert_eq!(video["essence_parameters"]["frame_height"], 180);
    let audio = get_json(&d.url(&format!("/flows/{}", coll[1]["id"].as_str().unwrap()))).await;
    assert_eq!(audio["codec"], "audio/aac");
    assert_eq!(audio["essence_parameters"]["sample_rate"], 48000);
    let sources = get_json(&d.url("/sources?label=cam20")).await;
    assert!(
        sources
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == flow["source_id"])
    );

    let segs = segments(&d, id).await;
    assert_eq!(segs.len(), 10, "20 s at GOP 2 s: {segs:?}");
    assert_contiguous(&segs);
    for (i, s) in segs.iter().enumerate() {
        let (a, b) = range_ns(s);
        if i + 1 < segs.len() {
            assert_eq!(b - a, 2_000_000_000, "segment {i} is one GOP");
        }
        assert_eq!(s["key_frame_count"], 1);
        assert_eq!(s["ts_offset"], segs[0]["ts_offset"]);
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.ts");
    download(&segs, &file).await;
    let p = probe(&file);
    assert!((p.duration - 20.0).abs() <= 2.0, "duration {}", p.duration);
    assert_eq!(p.video_frames, 500);
    // 20 s of 48 kHz AAC is 937.5 frames of 1024 samples.
    assert!(
        (930..=945).contains(&p.audio_frames),
        "audio frames {}",
        p.audio_frames
    );
    assert_eq!(decode_errors(&file), "");

    // A segment's media times map onto its timerange through ts_offset.
    let first = range_ns(&segs[0]).0;
    let offset: drey_core::Timestamp = segs[0]["ts_offset"].as_str().unwrap().parse().unwrap();
    let media_start = first - offset.as_nanos();
    assert!(
        (9_900_000_000..=10_200_000_000).contains(&media_start),
        "first segment's media time {media_start} ns"
    );
    assert!(metric(&d, "drey_ingest_segments_stored_total").await >= 10.0);
    assert_tables_kept(&d, id, 10).await;
}

/// Ingest kept every segment's MP4 sample tables: the first MP4 export of the whole flow
/// plans from the index and reads none of its `n` segments for them.
async fn assert_tables_kept(d: &Drey, flow: &str, n: u64) {
    let kept = r#"drey_ingest_sample_tables_total{result="kept"}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(d, kept).await < n as f64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metric(d, kept).await >= n as f64,
        "tables kept for {n} segments"
    );
    let from = |f: &str| format!("drey_export_sample_tables_total{{from=\"{f}\"}}");
    let (index0, segment0) = (
        metric(d, &from("index")).await,
        metric(d, &from("segment")).await,
    );
    let url = d.url(&format!("/flows/{flow}/download?format=mp4"));
    let h = reqwest::Client::new().head(&url).send().await.unwrap();
    assert_eq!(h.status(), 200, "HEAD {url}");
    assert_eq!(
        (
            metric(d, &from("index")).await - index0,
            metric(d, &from("segment")).await - segment0
        ),
        (n as f64, 0.0),
        "an MP4 export's tables, from the index and from segments"
    );
}

async fn republish_continues_after_a_gap(backend: Backend) {
    let Some(d) = Drey::start(backend, "").await else {
        return;
    };
    wait_ok(publish(&d.rtmp_url("again"), 4, true));
    let flow = mux_flow(&d, "again").await;
    let id = flow["id"].as_str().unwrap().to_owned();
    wait_idle(&d, &id).await;
    let first = segments(&d, &id).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_ok(publish(&d.rtmp_url("again"), 4, true));
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_idle(&d, &id).await;
    let all = segments(&d, &id).await;
    assert_eq!(all.len(), 2 * first.len(), "{all:?}");
    let (a, b) = all.split_at(first.len());
    let key = |s: &Value| (s["object_id"].clone(), s["timerange"].clone());
    assert_eq!(
        a.iter().map(key).collect::<Vec<_>>(),
        first.iter().map(key).collect::<Vec<_>>()
    );
    assert_contiguous(a);
    assert_contiguous(b);
    let gap = range_ns(&b[0]).0 - range_ns(a.last().unwrap()).1;
    assert!(
        gap >= 1_500_000_000,
        "the pause between publishes shows: {gap} ns"
    );
    let flows = get_json(&d.url("/flows?label=again&format=urn:x-nmos:format:multi")).await;
    assert_eq!(flows.as_array().unwrap().len(), 1, "one flow for one key");
    // By default ingest keeps no sample tables (`rtmp_sample_tables` is off).
    assert_eq!(metric(&d, "drey_ingest_sample_tables_total").await, 0.0);
}

/// Makes the object store fail and recover: a private gateway for S3, the objects
/// directory replaced by a file for the local backend.
enum Outage {
    S3(Gateway),
    Local(std::path::PathBuf),
}

impl Outage {
    async fn start(d: &mut Option<Drey>, backend: Backend, config: &str) -> Option<Outage> {
        match backend {
            Backend::Local => {
                let drey = Drey::start_with_config(config).await;
                let objects = drey.dir.path().join("data/objects");
                *d = Some(drey);
                Some(Outage::Local(objects))
            }
            Backend::Scale => {
                let gw = Gateway::start().await?;
                let mut cfg = Drey::scale_config().await?;
                cfg.push_str(config);
                let endpoint = gw.endpoint();
                *d = Some(Drey::start_with_env(&cfg, &[("AWS_ENDPOINT_URL", &endpoint)]).await);
                Some(Outage::S3(gw))
            }
        }
    }

    fn begin(&mut self) {
        match self {
            Outage::S3(gw) => gw.stop(),
            Outage::Local(dir) => {
                std::fs::rename(&*dir, dir.with_extension("away")).unwrap();
                std::fs::write(&*dir, b"not a directory").unwrap();
            }
        }
    }

    async fn end(&mut self) {
        match self {
            Outage::S3(gw) => gw.resume().await,
            Outage::Local(dir) => {
                std::fs::remove_file(&*dir).unwrap();
                std::fs::rename(dir.with_extension("away"), &*dir).unwrap();
            }
        }
    }
}

const OUTAGE_CONFIG: &str = "upload_timeout_ms = 2000\ngc_interval_secs = 1\n";

async fn store_outage_loses_nothing(backend: Backend) {
    let mut d = None;
    let Some(mut outage) = Outage::start(&mut d, backend, OUTAGE_CONFIG).await else {
        return;
    };
    let d = d.unwrap();
    let ff = publish(&d.rtmp_url("outage"), 40, true);
    tokio::time::sleep(Duration::from_secs(8)).await;
    outage.begin();
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        metric(&d, "drey_ingest_spool_segments").await >= 3.0,
        "segments spool during the outage"
    );
    outage.end().await;
    wait_ok(ff);
    let flow = mux_flow(&d, "outage").await;
    let id = flow["id"].as_str().unwrap();
    wait_idle(&d, id).await;
    assert_eq!(metric(&d, "drey_ingest_spool_segments").await, 0.0);
    assert!(metric(&d, "drey_ingest_upload_failures_total").await >= 1.0);
    let segs = segments(&d, id).await;
    assert_eq!(segs.len(), 20, "40 s at GOP 2 s, none lost, none twice");
    assert_contiguous(&segs);
    let ids: std::collections::HashSet<_> = segs.iter().map(|s| s["object_id"].clone()).collect();
    assert_eq!(ids.len(), segs.len());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.ts");
    download(&segs, &file).await;
    let p = probe(&file);
    assert_eq!(p.video_frames, 1000);
    assert!((p.duration - 40.0).abs() <= 2.0, "duration {}", p.duration);
    assert_eq!(decode_errors(&file), "");
}

async fn kill_9_during_outage_then_drain(backend: Backend) {
    let mut d = None;
    let config =
        format!("{OUTAGE_CONFIG}upload_allocation_timeout_secs = 8\nrtmp_stale_secs = 4\n");
    let Some(mut outage) = Outage::start(&mut d, backend, &config).await else {
        return;
    };
    let mut d = d.unwrap();
    let ff = publish(&d.rtmp_url("crash"), 30, true);
    tokio::time::sleep(Duration::from_secs(5)).await;
    outage.begin();
    tokio::time::sleep(Duration::from_secs(9)).await;
    let spooled = metric(&d, "drey_ingest_spool_segments").await;
    assert!(spooled >= 2.0, "spooled before the kill: {spooled}");
    d.kill_9();
    let _ = ff.wait_with_output();
    outage.end().await;
    d.restart().await;

    let flow = mux_flow(&d, "crash").await;
    let id = flow["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&d, "drey_ingest_spool_segments").await > 0.0 {
        assert!(Instant::now() < deadline, "spool not drained: {}", d.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The publish died with the process: the flow stops saying `ingesting` (so HLS stops
    // serving it as live) once no segment arrived for rtmp_stale_secs.
    wait_idle(&d, &id).await;
    let before = segments(&d, &id).await;
    // Every segment closed before the kill is there, in one unbroken run: about 14 s of
    // media (one open segment died with the process).
    assert!(before.len() >= 5, "{before:?}");
    assert_contiguous(&before);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("before.ts");
    download(&before, &file).await;
    assert_eq!(decode_errors(&file), "");
    assert_eq!(probe(&file).video_frames, 50 * before.len() as u64);

    // Publishing resumes on the same flow, after the existing segments.
    wait_ok(publish(&d.rtmp_url("crash"), 4, true));
    wait_idle(&d, &id).await;
    let after = segments(&d, &id).await;
    assert_eq!(after.len(), before.len() + 2);
    assert!(range_ns(&after[before.len()]).0 >= range_ns(before.last().unwrap()).1);

    if let Backend::Local = backend {
        // Orphans (bytes written whose segment never registered) are collected once their
        // allocation expires: afterwards every object file belongs to a listed segment.
        tokio::time::sleep(Duration::from_secs(12)).await;
        let listed: std::collections::HashSet<String> = segments(&d, &id)
            .await
            .iter()
            .map(|s| s["object_id"].as_str().unwrap().to_owned())
            .collect();
        // Object keys are `objects/ID` under the objects directory.
        let root = d.dir.path().join("data/objects/objects");
        let mut files = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(p) = stack.pop() {
            for e in std::fs::read_dir(&p).unwrap() {
                let e = e.unwrap().path();
                if e.is_dir() {
                    stack.push(e);
                } else {
                    files.push(
                        e.strip_prefix(&root)
                            .unwrap()
                            .to_string_lossy()
                            .into_owned(),
                    );
                }
            }
        }
        for f in &files {
            assert!(listed.contains(f), "unreferenced object left behind: {f}");
        }
        assert_eq!(files.len(), listed.len());
    }
}

/// Both outputs: an MPEG-TS flow and a fragmented-MP4 flow of one source, cut at the same
/// instants. The MP4 segments reference one init object; init + segments decode to the
/// same 500 frames, and the MP4 flow plays as HLS with EXT-X-MAP.
async fn fmp4_output_beside_ts(backend: Backend) {
    let config = "rtmp_outputs = [\"ts\", \"fmp4\"]\nrtmp_sample_tables = true";
    let Some(d) = Drey::start(backend, config).await else {
        return;
    };
    wait_ok(publish(&d.rtmp_url("cmaf"), 20, false));
    let flows = mux_flows(&d, "cmaf", 2).await;
    assert_eq!(flows.len(), 2, "{flows:?}");
    let ts = flows
        .iter()
        .find(|f| f["container"] == "video/mp2t")
        .unwrap();
    let mp4 = flows
        .iter()
        .find(|f| f["container"] == "video/mp4")
        .unwrap();
    assert_eq!(ts["source_id"], mp4["source_id"]);
    assert_eq!(mp4["essence_parameters"]["init_segments"], true);
    let (ts_id, mp4_id) = (ts["id"].as_str().unwrap(), mp4["id"].as_str().unwrap());
    wait_idle(&d, ts_id).await;
    wait_idle(&d, mp4_id).await;
    let ts_segs = segments(&d, ts_id).await;
    let mp4_segs = segments(&d, mp4_id).await;
    assert_eq!(mp4_segs.len(), 10);
    let ranges = |v: &[Value]| v.iter().map(range_ns).collect::<Vec<_>>();
    assert_eq!(
        ranges(&ts_segs),
        ranges(&mp4_segs),
        "cut at the same instants"
    );
    let init = mp4_segs[0]["init_object"]["object_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(init.ends_with(".mp4"), "{init}");
    for s in &mp4_segs {
        assert_eq!(s["init_object"]["object_id"], init.as_str());
        assert!(s["object_id"].as_str().unwrap().ends_with(".mp4"));
    }
    // init + every segment, as one file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.mp4");
    let init_url = mp4_segs[0]["init_object"]["get_urls"][0]["url"]
        .as_str()
        .unwrap();
    let mut all = reqwest::get(init_url)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let body = dir.path().join("body");
    download(&mp4_segs, &body).await;
    all.extend(std::fs::read(&body).unwrap());
    std::fs::write(&file, all).unwrap();
    let p = probe(&file);
    assert_eq!(p.video_frames, 500);
    assert!(
        (930..=945).contains(&p.audio_frames),
        "audio frames {}",
        p.audio_frames
    );
    // The MP4 timeline is the TS one: media time = stream time + 10 s (PTS_OFFSET_MS), and
    // a file with no edit list counts from zero.
    assert!((p.duration - 30.0).abs() <= 0.5, "duration {}", p.duration);
    assert_eq!(decode_errors(&file), "");
    // HLS over the MP4 flow.
    let url = d.url(&format!("/flows/{mp4_id}/playlist.m3u8"));
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert_eq!(text.matches("#EXT-X-MAP:").count(), 1, "{text}");
    let p = probe(std::path::Path::new(&url));
    assert_eq!(p.video_frames, 500);
    assert_eq!(decode_errors(std::path::Path::new(&url)), "");
    assert_tables_kept(&d, mp4_id, 10).await;
}

both_backends! {
    publish_20s => super::publish_20s_decodes;
    republish => super::republish_continues_after_a_gap;
    store_outage => super::store_outage_loses_nothing;
    kill_9 => super::kill_9_during_outage_then_drain;
    fmp4_output => super::fmp4_output_beside_ts;
}

/// Bad publishers get closed with a logged reason while a good one goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_publishers_are_refused_and_others_unaffected() {
    let d = Drey::start(Backend::Local, "").await.unwrap();
    let good = publish(&d.rtmp_url("good"), 8, true);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Garbage instead of a handshake.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", d.rtmp_port))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(&[0x42u8; 4000]).await.unwrap();
    let mut buf = [0u8; 8192];
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "garbage connection not closed");

    // Unsupported codecs, an unknown application, a key already live, a bad key.
    let flv1 = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x90:rate=25",
            "-t",
            "3",
        ])
        .args(["-c:v", "flv1", "-an", "-f", "flv", &d.rtmp_url("sorenson")])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let _ = flv1;
    let other_app = publish(
        &format!("rtmp://127.0.0.1:{}/other/key1", d.rtmp_port),
        2,
        false,
    );
    let _ = other_app.wait_with_output();
    let dup = publish(&d.rtmp_url("good"), 2, false);
    let _ = dup.wait_with_output();
    let badkey = publish(&d.rtmp_url("bad%20key"), 2, false);
    let _ = badkey.wait_with_output();

    wait_ok(good);
    let flow = mux_flow(&d, "good").await;
    let id = flow["id"].as_str().unwrap();
    wait_idle(&d, id).await;
    let segs = segments(&d, id).await;
    assert_eq!(segs.len(), 4);
    assert_contiguous(&segs);

    let log = d.log();
    for reason in [
        "bad handshake",
        "unsupported video codec id 2",
        "unknown RTMP application \\\"other\\\"",
        "stream live/good is already being published",
        "stream key contains",
    ] {
        assert!(
            log.contains(reason) || log.contains(&reason.replace("\\\"", "\"")),
            "log lacks {reason:?}: {log}"
        );
    }
    for key in ["sorenson", "key1", "bad key"] {
        let flows = get_json(&d.url(&format!("/flows?label={key}"))).await;
        assert_eq!(flows.as_array().unwrap().len(), 0, "{key}");
    }
}
