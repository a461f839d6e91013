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

fn out_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/ui-e2e")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let _ = std::fs::remove_file(e.unwrap().path());
    }
    dir
}

/// Runs `ui/e2e/run.mjs` against `d` while ffmpeg publishes `label` live (to `publish_url`),
/// checks that every step left a screenshot and that the exported range decodes with the
/// selected duration, and returns the script's result.
async fn browse(
    d: &Drey,
    label: &str,
    publish_url: &str,
    out: &str,
    env: &[(&str, &str)],
) -> Value {
    let ui = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ui");
    assert!(
        ui.join("node_modules/playwright-core").exists(),
        "ui/node_modules is missing: scripts/test.sh runs scripts/ui-vendor.sh (npm ci) first"
    );
    let out = out_dir(out);
    // A live publish long enough for the whole browser session.
    let mut ffmpeg = publish(publish_url, 90, true);
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let run = tokio::task::spawn_blocking({
        let (ui, out, base, label) = (ui.clone(), out.clone(), d.base.clone(), label.to_owned());
        move || {
            Command::new("node")
                .current_dir(&ui)
                .arg("e2e/run.mjs")
                .arg(&base)
                .arg(&out)
                .arg(&label)
                .envs(env)
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
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_lists_plays_and_exports() {
    let d = Drey::start_with_config("").await;
    let result = browse(&d, "uicam", &d.rtmp_url("uicam"), "anonymous", &[]).await;
    assert!(
        !result["publish_url"].as_str().unwrap().contains("token="),
        "no token needed: {result}"
    );
}

/// With anonymous access off, the page asks for an access key, refuses a wrong secret, and
/// signed in plays live, plays a range and exports it on presigned URLs; its new-stream
/// view hands out a publish URL whose token drey accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_signs_in_with_an_access_key() {
    let d = Drey::start_with_config("anonymous = \"none\"").await;
    let (ok, out, err) = d.run_cli_output(&["keys", "create", "--grant", "*:write"]);
    assert!(ok, "drey keys create: {err}");
    let key: Value = serde_json::from_str(out.trim()).unwrap();
    let (id, secret) = (
        key["access_key_id"].as_str().unwrap(),
        key["secret_access_key"].as_str().unwrap(),
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let token = drey_core::token::publish_token(id, secret, "live/authcam", now + 600);
    let publish_url = format!("{}?token={token}", d.rtmp_url("authcam"));
    let result = browse(
        &d,
        "authcam",
        &publish_url,
        "signed-in",
        &[("DREY_KEY_ID", id), ("DREY_KEY_SECRET", secret)],
    )
    .await;
    // The URL the page offers (stream key "cam1") carries a token drey accepts for it.
    let url = result["publish_url"].as_str().unwrap();
    let (_, t) = url
        .split_once("?token=")
        .expect("a publish token in the URL");
    let t = drey_core::token::Token::parse(t).unwrap();
    assert_eq!(t.key_id, id);
    assert_eq!(t.verify(secret, "live/cam1", now + 60), Ok(()));
    assert!(t.verify(secret, "live/other", now + 60).is_err());
    // And anonymous requests were refused all along.
    let r = reqwest::get(d.url("/flows")).await.unwrap();
    assert_eq!(r.status(), 401);
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

/// The page's own signing code (ui/src/sign.js, run in Node) against drey's: every URL it
/// presigns (awkward paths and queries, several keys, regions and services) verifies with
/// the server's SigV4 code, and its publish tokens equal `drey token`'s. The script checks
/// known answers (SHA-256, HMAC, the AWS presigned example) first.
#[test]
fn page_signatures_verify_with_drey() {
    use drey_core::{sigv4, token};
    let ui = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ui");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    const PIECES: &[&str] = &[
        "a", "Z9", "-_.~", " ", "+", "%2B", "%20", ":", "[", "]", "(", ")", "é", "雪", "!", "*",
        "'", "$", ",", ";", "=", "@", "%25",
    ];
    let word = |next: &mut dyn FnMut(usize) -> usize| {
        (0..1 + next(4))
            .map(|_| PIECES[next(PIECES.len())])
            .collect::<String>()
    };
    let keys = [
        ("DREYKEYONE", "s3cret/with+odd=chars"),
        ("AKIDEXAMPLE", "x"),
    ];
    let mut urls = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..200 {
        let path: String = (0..1 + next(3))
            .map(|_| format!("/{}", urlencode_path(&word(&mut next))))
            .collect();
        let query: Vec<String> = (0..next(4))
            .map(|_| {
                format!(
                    "{}={}",
                    urlencode_path(&word(&mut next)),
                    urlencode_path(&word(&mut next))
                )
            })
            .collect();
        let url = if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.join("&"))
        };
        let (id, secret) = keys[i % 2];
        urls.push(serde_json::json!({
            "key": {"id": id, "secret": secret}, "url": url,
            "host": if i % 3 == 0 { "127.0.0.1:8080" } else { "drey.example:443" },
            "now": 1_764_000_000 + i as i64 * 7919, "ttl": 60 + i,
            "region": (["us-east-1", "drey", "eu-west-2"][i % 3]),
            "service": (["s3", "execute-api"][i % 2]),
        }));
        tokens.push(serde_json::json!({
            "key": {"id": id, "secret": secret},
            "stream": format!("live/{}", word(&mut next)),
            "expires": 1_764_000_000 + i as i64,
        }));
    }
    let input = serde_json::json!({"urls": urls, "tokens": tokens}).to_string();
    let mut child = Command::new("node")
        .current_dir(&ui)
        .arg("e2e/sign_check.mjs")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node is installed");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sign_check.mjs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (c, signed) in urls.iter().zip(got["urls"].as_array().unwrap()) {
        let signed = signed.as_str().unwrap();
        let (path, query) = signed.split_once('?').unwrap();
        let headers = vec![("host".to_owned(), c["host"].as_str().unwrap().to_owned())];
        let req = sigv4::Request {
            method: "GET",
            path,
            query,
            headers: &headers,
        };
        let s = sigv4::parse(&req)
            .unwrap_or_else(|e| panic!("{signed}: {e}"))
            .unwrap();
        let now = c["now"].as_i64().unwrap();
        let payload = sigv4::declared_payload_hash(&req, &s).unwrap();
        let secret = c["key"]["secret"].as_str().unwrap();
        assert_eq!(
            sigv4::verify(&req, &s, secret, &payload, None, now + 30),
            Ok(()),
            "{c} signed as {signed}"
        );
        // The same URL with a byte of the path changed does not verify.
        let tampered = format!("{path}x");
        let req = sigv4::Request {
            path: &tampered,
            ..req
        };
        assert!(sigv4::verify(&req, &s, secret, &payload, None, now).is_err());
    }
    for (c, t) in tokens.iter().zip(got["tokens"].as_array().unwrap()) {
        let want = token::publish_token(
            c["key"]["id"].as_str().unwrap(),
            c["key"]["secret"].as_str().unwrap(),
            c["stream"].as_str().unwrap(),
            c["expires"].as_i64().unwrap(),
        );
        assert_eq!(t.as_str().unwrap(), want, "{c}");
    }
}

/// Percent-encodes what a browser would not send raw in a path or query part.
fn urlencode_path(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'%' | b'/' | b'?' | b'&' | b'=' | b'#' | b' ' | b'+' => format!("%{b:02X}"),
            b if b.is_ascii_graphic() => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}
