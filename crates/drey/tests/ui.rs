//! End-to-end test of the web UI in headless Debian Chromium (driven by playwright-core from
//! `ui/e2e/run.mjs`): ffmpeg publishes live, the page lists the flow, plays it live past
//! 3 s, a range dragged on the timeline is exported and ffprobe decodes the file. Screenshots
//! of every step are kept in `target/ui-e2e/`. Plus: `/` serves the page to browsers and the
//! TAMS root to API clients; the assets are embedded.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Drey;
use common::media::*;
use serde_json::Value;

fn out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/ui-e2e")
        .canonicalize()
        .unwrap_or_else(|_| {
            let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-e2e");
            std::fs::create_dir_all(&d).unwrap();
            d.canonicalize().unwrap()
        });
    for e in std::fs::read_dir(&dir).unwrap() {
        let _ = std::fs::remove_file(e.unwrap().path());
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_lists_plays_and_exports() {
    let d = Drey::start_with_config("").await;
    let ui = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ui");
    assert!(
        ui.join("node_modules/playwright-core").exists(),
        "ui/node_modules is missing: scripts/test.sh runs scripts/ui-vendor.sh (npm ci) first"
    );
    let out = out_dir();
    // A live publish long enough for the whole browser session.
    let mut ffmpeg = publish(&d.rtmp_url("uicam"), 90, true);
    let run = tokio::task::spawn_blocking({
        let (ui, out, base) = (ui.clone(), out.clone(), d.base.clone());
        move || {
            Command::new("node")
                .current_dir(&ui)
                .arg("e2e/run.mjs")
                .arg(&base)
                .arg(&out)
                .arg("uicam")
                .output()
                .expect("node is installed")
        }
    })
    .await
    .unwrap();
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    let log = String::from_utf8_lossy(&run.stderr).into_owned();
    std::fs::write(out.join("browser.log"), &log).unwrap();
    assert!(
        run.status.success(),
        "browser run failed (screenshots in {}):\n{log}",
        out.display()
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for n in 1..=7 {
        let shot = std::fs::read_dir(&out)
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{n}-"))
            });
        assert!(shot, "no screenshot of step {n} in {}", out.display());
    }
    // The exported range decodes and lasts about what was selected.
    let file = PathBuf::from(result["file"].as_str().unwrap());
    assert_eq!(decode_errors(&file), "");
    let p = probe(&file);
    let start = time::OffsetDateTime::parse(
        result["start"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let end = time::OffsetDateTime::parse(
        result["end"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let want = (end - start).as_seconds_f64();
    assert!(p.video_frames > 0, "no video in the export");
    assert!(
        (p.duration - want).abs() < 0.5,
        "export lasts {} s, the selection {want} s",
        p.duration
    );
    assert!(
        result["publish_url"]
            .as_str()
            .unwrap()
            .starts_with("rtmp://127.0.0.1:"),
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_serves_the_page_to_browsers_and_json_to_clients() {
    let d = Drey::start_with_config("").await;
    let http = reqwest::Client::new();
    let page = http
        .get(d.url("/"))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("/ui/app.js"));
    for accept in ["application/json", "*/*"] {
        let r = http
            .get(d.url("/"))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert!(v.as_array().unwrap().contains(&"flows".into()), "{accept}");
    }
    for (path, ct) in [
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
        ("/ui/vendor/hls.min.js", "text/javascript"),
        ("/ui/config.json", "application/json"),
    ] {
        let r = http.get(d.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(ct),
            "{path}"
        );
    }
    let cfg: Value = http
        .get(d.url("/ui/config.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        cfg["auth"], false,
        "loopback default: publishes need no token"
    );
    let r = http.get(d.url("/ui/nothing.js")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

/// `/flows/{id}/timeline` merges contiguous segments into runs, keeps gaps, and closes up
/// gaps shorter than the resolution asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_runs_and_gaps() {
    let d = Drey::start_with_config("").await;
    let http = reqwest::Client::new();
    let (flow, source) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let r = http
        .put(d.url(&format!("/flows/{flow}")))
        .json(&serde_json::json!({"id": flow, "source_id": source,
            "format": "urn:x-nmos:format:multi", "container": "video/mp2t"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Segments (seconds): 0-2, 2-4, then a 10 s gap, 14-16, then 0.5 s gap, 16.5-18.
    let spans = [(0, 2000), (2000, 4000), (14000, 16000), (16500, 18000)];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("obj");
    std::fs::write(&file, b"x").unwrap();
    let paths: Vec<&std::path::Path> = spans.iter().map(|_| file.as_path()).collect();
    let ids = upload(&http, &d, &flow.to_string(), &paths).await;
    let body: Vec<Value> = ids
        .iter()
        .zip(spans)
        .map(|(id, (a, b))| {
            serde_json::json!({"object_id": id,
                "timerange": drey_core::TimeRange::from_nanos(a * 1_000_000, b * 1_000_000).to_string()})
        })
        .collect();
    let r = http
        .post(d.url(&format!("/flows/{flow}/segments")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let get = |q: &str| {
        let url = d.url(&format!("/flows/{flow}/timeline{q}"));
        async move { reqwest::get(url).await.unwrap() }
    };
    let v: Value = get("").await.json().await.unwrap();
    assert_eq!(
        v["runs"],
        serde_json::json!(["[0:0_4:0)", "[14:0_16:0)", "[16:500000000_18:0)"])
    );
    assert_eq!(v["segments"], 4);
    let v: Value = get("?resolution=1").await.json().await.unwrap();
    assert_eq!(v["runs"], serde_json::json!(["[0:0_4:0)", "[14:0_18:0)"]));
    let v: Value = get("?timerange=[15:0_17:0)").await.json().await.unwrap();
    assert_eq!(v["segments"], 2);
    let r = get("?resolution=-1").await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["field"], "resolution");
    let r = reqwest::get(d.url(&format!("/flows/{}/timeline", uuid::Uuid::new_v4())))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
