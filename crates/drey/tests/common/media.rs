//! Media helpers shared by the end-to-end tests: ffmpeg publishers, ffprobe/ffmpeg
//! checks of what drey stored, and small JSON/metrics readers.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drey_core::TimeRange;
use serde_json::Value;

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
