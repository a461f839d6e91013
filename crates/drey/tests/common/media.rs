//! Media helpers shared by the end-to-end tests: ffmpeg publishers, ffprobe/ffmpeg
//! checks of what drey stored, and small JSON/metrics readers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drey_core::TimeRange;
use serde_json::{Value, json};

use super::Drey;

/// Starts ffmpeg publishing `secs` of testsrc2 + sine as H.264/AAC (GOP 2 s, B-frames) to
/// `url`; `realtime` paces it like a live encoder.
pub fn publish(url: &str, secs: u32, realtime: bool) -> Child {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error"]);
    for input in [
        "testsrc2=size=320x180:rate=25",
        "sine=frequency=440:sample_rate=48000",
    ] {
        if realtime {
            cmd.arg("-re");
        }
        cmd.args(["-f", "lavfi", "-i", input]);
    }
    cmd.args(["-t", &secs.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-bf",
            "2",
        ])
        .args([
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg is installed (scripts/test.sh installs it)")
}

pub fn wait_ok(child: Child) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub async fn get_json(url: &str) -> Value {
    let r = reqwest::get(url).await.unwrap();
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.json().await.unwrap()
}

/// The multiplexed flow of a stream key, once it exists.
pub async fn mux_flow(d: &Drey, key: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let flows = get_json(&d.url(&format!(
            "/flows?label={key}&format=urn:x-nmos:format:multi"
        )))
        .await;
        if let Some(f) = flows.as_array().and_then(|a| a.first()) {
            return f.clone();
        }
        assert!(Instant::now() < deadline, "no flow for {key}: {}", d.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The multiplexed flows of a stream key, once there are `n` (one per ingest output).
/// ffmpeg may exit before ingest has recorded them: a publish's flows are put with its
/// first stored segment.
pub async fn mux_flows(d: &Drey, key: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let flows = get_json(&d.url(&format!(
            "/flows?label={key}&format=urn:x-nmos:format:multi"
        )))
        .await;
        let flows = flows.as_array().cloned().unwrap_or_default();
        if flows.len() >= n {
            return flows;
        }
        assert!(
            Instant::now() < deadline,
            "{} flows for {key}: {}",
            flows.len(),
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the flow's status says its publish ended and every segment is stored.
pub async fn wait_idle(d: &Drey, flow_id: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let f = get_json(&d.url(&format!("/flows/{flow_id}"))).await;
        if f["status"] == "awaiting_content" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "flow still {}: {}",
            f["status"],
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn segments(d: &Drey, flow_id: &str) -> Vec<Value> {
    let v = get_json(&d.url(&format!("/flows/{flow_id}/segments?limit=10000"))).await;
    v.as_array().unwrap().clone()
}

pub fn range_ns(seg: &Value) -> (i64, i64) {
    let tr: TimeRange = seg["timerange"].as_str().unwrap().parse().unwrap();
    (tr.start_nanos().unwrap(), tr.end_nanos().unwrap())
}

/// Downloads every segment (through its get_urls) and concatenates them into a file.
pub async fn download(segs: &[Value], path: &std::path::Path) {
    let mut all = Vec::new();
    for s in segs {
        let url = s["get_urls"][0]["url"].as_str().unwrap();
        let r = reqwest::get(url).await.unwrap();
        assert_eq!(r.status(), 200, "GET {url}");
        all.extend_from_slice(&r.bytes().await.unwrap());
    }
    std::fs::write(path, all).unwrap();
}

pub struct Probe {
    pub duration: f64,
    pub video_frames: u64,
    pub audio_frames: u64,
}

pub fn probe(path: &std::path::Path) -> Probe {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-of", "json"])
        .args([
            "-show_entries",
            "stream=codec_type,nb_read_frames:format=duration",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let frames = |kind: &str| {
        v["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["codec_type"] == kind)
            .and_then(|s| s["nb_read_frames"].as_str())
            .map_or(0, |n| n.parse().unwrap())
    };
    Probe {
        duration: v["format"]["duration"].as_str().unwrap().parse().unwrap(),
        video_frames: frames("video"),
        audio_frames: frames("audio"),
    }
}

/// What ffmpeg reports while decoding every frame (empty when the file is clean).
pub fn decode_errors(path: &std::path::Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the segments are contiguous (each ends where the next starts).
pub fn assert_contiguous(segs: &[Value]) {
    for w in segs.windows(2) {
        assert_eq!(
            range_ns(&w[0]).1,
            range_ns(&w[1]).0,
            "gap or overlap between {} and {}",
            w[0]["timerange"],
            w[1]["timerange"]
        );
    }
}

pub async fn metric(d: &Drey, name: &str) -> f64 {
    let text = reqwest::get(d.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What `encode_segments` cuts.
#[derive(Clone, Copy, PartialEq)]
pub enum Streams {
    /// testsrc2 + sine, multiplexed.
    Both,
    VideoOnly,
    AudioOnly,
}

/// Cuts `secs` of testsrc2 and/or sine (H.264/AAC) into HLS segments with ffmpeg: MPEG-TS,
/// or fMP4 with an init section. Returns the init file (fMP4) and the segment files in
/// order.
pub fn encode_segments(
    dir: &Path,
    secs: u32,
    streams: Streams,
    fmp4: bool,
) -> (Option<PathBuf>, Vec<PathBuf>) {
    let ext = if fmp4 { "m4s" } else { "ts" };
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error"]);
    let (video, audio) = (streams != Streams::AudioOnly, streams != Streams::VideoOnly);
    // Inputs first: options before an -i apply to that input.
    if video {
        cmd.args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25"]);
    }
    if audio {
        cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    }
    if video {
        cmd.args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "50"])
            .args(["-pix_fmt", "yuv420p"]);
    }
    if audio {
        cmd.args(["-c:a", "aac"]);
    }
    cmd.args(["-t", &secs.to_string()])
        .args(["-f", "hls", "-hls_time", "2", "-hls_list_size", "0"])
        .args(["-hls_segment_filename"])
        .arg(dir.join(format!("seg%03d.{ext}")));
    if fmp4 {
        cmd.args(["-hls_segment_type", "fmp4"])
            .args(["-hls_fmp4_init_filename", "init.mp4"]);
    }
    let out = cmd.arg(dir.join("ffmpeg.m3u8")).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    segs.sort();
    let init = fmp4.then(|| dir.join("init.mp4"));
    (init, segs)
}

/// Segment durations from ffmpeg's own playlist (what a packager knows when it registers).
pub fn ffmpeg_durations(dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(dir.join("ffmpeg.m3u8"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|v| v.trim_end_matches(',').parse().unwrap())
        .collect()
}

/// A TAMS client's writes with a plain HTTP client: allocate, PUT to the put_url,
/// register. Returns the object ids.
pub async fn upload(http: &reqwest::Client, d: &Drey, flow: &str, files: &[&Path]) -> Vec<String> {
    let r = http
        .post(d.url(&format!("/flows/{flow}/storage")))
        .json(&json!({"limit": files.len()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let objs = v["media_objects"].as_array().unwrap();
    let mut ids = Vec::new();
    for (m, file) in objs.iter().zip(files) {
        let put = http
            .put(m["put_url"]["url"].as_str().unwrap())
            .header(
                "content-type",
                m["put_url"]["content-type"].as_str().unwrap(),
            )
            .body(std::fs::read(file).unwrap())
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success(), "PUT {}", put.status());
        ids.push(m["object_id"].as_str().unwrap().to_owned());
    }
    ids
}

/// Registers `ids` as back-to-back segments of the given durations (seconds) from an
/// arbitrary TAI instant, each with `init` as its init object if given.
pub async fn register_contiguous(
    http: &reqwest::Client,
    d: &Drey,
    flow: uuid::Uuid,
    ids: &[String],
    durations: &[f64],
    init: Option<&str>,
) {
    let mut t: i64 = 1_800_000_000 * 1_000_000_000;
    let mut body = Vec::new();
    for (id, dur) in ids.iter().zip(durations) {
        let end = t + (dur * 1e9).round() as i64;
        let mut s =
            json!({"object_id": id, "timerange": TimeRange::from_nanos(t, end).to_string()});
        if let Some(i) = init {
            s["init_object_id"] = json!(i);
        }
        body.push(s);
        t = end;
    }
    let r = http
        .post(d.url(&format!("/flows/{flow}/segments")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// A source whose video and audio are separate flows, as a TAMS client may write them:
/// a 10 s H.264 flow ("cam video") and a 10 s AAC flow ("cam audio"), each with its own
/// source, collected by a multiplexed flow of the returned source. Returns (that source,
/// the video flow, the audio flow).
pub async fn separate_av_flows(d: &Drey) -> (uuid::Uuid, uuid::Uuid, uuid::Uuid) {
    let http = reqwest::Client::new();
    let (v, a, m) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    let src_m = uuid::Uuid::new_v4();
    let put = |id: uuid::Uuid, body: Value| {
        let http = http.clone();
        let url = d.url(&format!("/flows/{id}"));
        async move {
            let r = http.put(url).json(&body).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
    };
    put(v, json!({"id": v, "source_id": uuid::Uuid::new_v4(), "format": "urn:x-nmos:format:video",
        "codec": "video/h264", "container": "video/mp2t", "label": "cam video",
        "essence_parameters": {"frame_width": 320, "frame_height": 180, "frame_rate": {"numerator": 25},
            "avc_parameters": {"profile": 100, "level": 12, "flags": 0}}}))
    .await;
    put(
        a,
        json!({"id": a, "source_id": uuid::Uuid::new_v4(), "format": "urn:x-nmos:format:audio",
        "codec": "audio/aac", "container": "video/mp2t", "label": "cam audio",
        "essence_parameters": {"sample_rate": 48000, "channels": 1}}),
    )
    .await;
    put(
        m,
        json!({"id": m, "source_id": src_m, "format": "urn:x-nmos:format:multi",
        "flow_collection": [{"id": v, "role": "video"}, {"id": a, "role": "audio"}]}),
    )
    .await;
    for (flow, video) in [(v, true), (a, false)] {
        let work = tempfile::tempdir().unwrap();
        let streams = if video {
            Streams::VideoOnly
        } else {
            Streams::AudioOnly
        };
        let (_, files) = encode_segments(work.path(), 10, streams, false);
        let durations = ffmpeg_durations(work.path());
        let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
        let ids = upload(&http, d, &flow.to_string(), &paths).await;
        register_contiguous(&http, d, flow, &ids, &durations, None).await;
    }
    (src_m, v, a)
}
