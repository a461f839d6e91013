//! Uncompressed grains end to end with the real binary: `drey signal` makes a test file,
//! `drey ingest raw` stores it with parallel writers (in one process, and in three
//! processes sharing a job, one killed with -9 mid-way), `drey export --format raw` and
//! `GET /flows/{id}/download?format=raw` give back the identical bytes, every frame is in
//! the flow exactly once with exact contiguous timeranges; bad files and foreign job ids
//! are refused with nothing stored; `drey bench` runs and cleans up after itself.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, Drey};
use serde_json::Value;

fn signal(_d: &Drey, file: &Path, size: (u32, u32), format: &str, frames: u64) {
    let out = Command::new(env!("CARGO_BIN_EXE_drey"))
        .args([
            "signal",
            "--width",
            &size.0.to_string(),
            "--height",
            &size.1.to_string(),
            "--format",
            format,
            "--frames",
            &frames.to_string(),
            "-o",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "drey signal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ingest_args<'a>(file: &'a str, size: &'a (String, String), format: &'a str) -> Vec<&'a str> {
    vec![
        "ingest", "raw", file, "--width", &size.0, "--height", &size.1, "--rate", "50", "--format",
        format, "--quiet",
    ]
}

use common::grains::segments;

/// The flow holds `frames` grains, once each, back to back at 50 fps.
async fn check_grains(d: &Drey, flow: &str, frames: usize) {
    common::grains::check(d, flow, frames, 20_000_000).await;
}

fn export(d: &Drey, flow: &str, out: &Path) {
    common::grains::export(d, flow, "raw", out);
}

fn same_file(a: &Path, b: &Path) -> bool {
    let st = Command::new("cmp")
        .arg("-s")
        .arg(a)
        .arg(b)
        .status()
        .unwrap();
    st.success()
}

async fn four_writers_bit_identical(backend: Backend, size: (u32, u32), frames: u64) {
    let Some(d) = Drey::start(backend, "").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.v210");
    signal(&d, &input, size, "v210", frames);
    let s = (size.0.to_string(), size.1.to_string());
    let mut args = ingest_args(input.to_str().unwrap(), &s, "v210");
    args.extend(["--writers", "4", "--label", "steps"]);
    let (ok, out, err) = d.run_cli_output(&args);
    assert!(ok, "drey ingest: {err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["frames"], frames);
    assert_eq!(v["stored_here"], frames);
    let flow = v["flow_id"].as_str().unwrap().to_owned();
    check_grains(&d, &flow, frames as usize).await;
    // The flow describes its frames.
    let f = common::media::get_json(&d.url(&format!("/flows/{flow}"))).await;
    assert_eq!(f["codec"], "video/raw");
    assert_eq!(f["essence_parameters"]["frame_width"], size.0);
    assert_eq!(
        f["essence_parameters"]["unc_parameters"]["unc_type"],
        "v210"
    );
    assert_eq!(f["essence_parameters"]["frame_rate"]["numerator"], 50);
    // Exported back (directly from the store, and over HTTP): the same bytes.
    let back = dir.path().join("back.v210");
    export(&d, &flow, &back);
    assert!(
        same_file(&input, &back),
        "drey export --format raw differs from the input"
    );
    let over_http = dir.path().join("http.v210");
    let st = Command::new("curl")
        .args(["-fsS", "-o"])
        .arg(&over_http)
        .arg(d.url(&format!("/flows/{flow}/download?format=raw")))
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        same_file(&input, &over_http),
        "format=raw over HTTP differs"
    );
    // Give the space back (the test S3 server keeps objects in memory): delete the flow
    // and collect its objects.
    let r = reqwest::Client::new()
        .delete(d.url(&format!("/flows/{flow}")))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let (ok, err) = d.run_cli(&["gc"]);
    assert!(ok, "drey gc: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_writers_bit_identical_local() {
    // 1 s of 1080p50 on the embedded default (the 10 s run is the scale-out test's).
    four_writers_bit_identical(Backend::Local, (1920, 1080), 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_writers_bit_identical_scale() {
    // The case: 10 s of 1080p50 v210 (500 frames, 2.76 GB) into PostgreSQL + RGW.
    four_writers_bit_identical(Backend::Scale, (1920, 1080), 500).await;
}

/// Three writer processes share one job; one is killed with -9 while it holds chunks.
/// The others take its chunks over when their leases pass: every frame is stored exactly
/// once and the export equals the input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_processes_share_a_job_and_survive_a_kill() {
    let d = Drey::start_with_config("").await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.uyvy");
    let frames = 240u64;
    signal(&d, &input, (1280, 720), "uyvy", frames);
    let s = ("1280".to_owned(), "720".to_owned());
    let mut args = ingest_args(input.to_str().unwrap(), &s, "uyvy");
    args.extend([
        "--writers",
        "2",
        "--job",
        "shared-job-1",
        "--chunk-frames",
        "4",
    ]);
    let spawn = || {
        d.cli_command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut victim = spawn();
    // Let the first process create the job and store a few frames, then start the others
    // and kill it while it is writing.
    let deadline = Instant::now() + Duration::from_secs(60);
    let flow = loop {
        let flows = common::media::get_json(&d.url("/flows?codec=video/raw")).await;
        if let Some(f) = flows.as_array().and_then(|a| a.first()) {
            let id = f["id"].as_str().unwrap().to_owned();
            if !segments(&d, &id).await.is_empty() {
                break id;
            }
        }
        assert!(Instant::now() < deadline, "the first writer stored nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let others = [spawn(), spawn()];
    tokio::time::sleep(Duration::from_millis(150)).await;
    let _ = victim.kill();
    let _ = victim.wait();
    let stored_by_victim = segments(&d, &flow).await.len();
    assert!(
        stored_by_victim < frames as usize,
        "the victim finished before it was killed"
    );
    let mut stored = 0;
    for o in others {
        let out = o.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v["flow_id"],
            flow.as_str(),
            "every writer wrote the job's flow"
        );
        stored += v["stored_here"].as_u64().unwrap();
    }
    assert!(stored > 0, "the survivors did part of the work");
    check_grains(&d, &flow, frames as usize).await;
    let back = dir.path().join("back.uyvy");
    export(&d, &flow, &back);
    assert!(same_file(&input, &back), "export differs from the input");
}

/// Bad input: a file that is not whole frames, a job id naming other work, an unknown
/// format: a clear error, nothing stored for the bad part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_and_foreign_jobs_are_refused() {
    let d = Drey::start_with_config("").await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.yuv");
    signal(&d, &input, (320, 180), "yuv420p", 10);
    let s = ("320".to_owned(), "180".to_owned());
    // One byte short of whole frames.
    let short = dir.path().join("short.yuv");
    let mut bytes = std::fs::read(&input).unwrap();
    bytes.pop();
    std::fs::write(&short, &bytes).unwrap();
    let (ok, err) = d.run_cli(&ingest_args(short.to_str().unwrap(), &s, "yuv420p"));
    assert!(!ok);
    assert!(err.contains("not a whole number of"), "{err}");
    // The right file read as another size is not whole frames either.
    let wrong = ("322".to_owned(), "180".to_owned());
    let (ok, err) = d.run_cli(&ingest_args(input.to_str().unwrap(), &wrong, "yuv420p"));
    assert!(!ok, "{err}");
    let (ok, err) = d.run_cli(&ingest_args(input.to_str().unwrap(), &s, "rgb48"));
    assert!(!ok);
    assert!(err.contains("unknown raw format"), "{err}");
    let flows = common::media::get_json(&d.url("/flows")).await;
    assert_eq!(
        flows.as_array().unwrap().len(),
        0,
        "nothing stored: {flows}"
    );
    // A job, then another writer given its id with other work.
    let mut args = ingest_args(input.to_str().unwrap(), &s, "yuv420p");
    args.extend(["--job", "job-a"]);
    let (ok, err) = d.run_cli(&args);
    assert!(ok, "{err}");
    let other = dir.path().join("other.yuv");
    signal(&d, &other, (320, 180), "yuv420p", 12);
    let mut args = ingest_args(other.to_str().unwrap(), &s, "yuv420p");
    args.extend(["--job", "job-a"]);
    let (ok, err) = d.run_cli(&args);
    assert!(!ok);
    assert!(err.contains("job job-a is another job"), "{err}");
    let flows = common::media::get_json(&d.url("/flows")).await;
    assert_eq!(
        flows.as_array().unwrap().len(),
        1,
        "only the first job's flow"
    );
    // Raw export of a flow that is not raw, and TS export of a raw one: 4xx naming format.
    let raw = flows[0]["id"].as_str().unwrap();
    let r = reqwest::get(d.url(&format!("/flows/{raw}/download?format=ts")))
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    assert!(r.text().await.unwrap().contains("format=raw"));
}

/// `drey bench` on the embedded default: every rate measured, ratios computed, and nothing
/// left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runs_and_cleans_up() {
    let d = Drey::start_with_config("").await;
    let (ok, out, err) = d.run_cli_output(&[
        "bench",
        "--sizes",
        "640x360",
        "--frames",
        "30",
        "--workers",
        "2",
        "--json",
        "--quiet",
    ]);
    assert!(ok, "drey bench: {err}");
    let row: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    for k in [
        "raw_put_fps",
        "raw_get_fps",
        "write_fps",
        "read_fps",
        "read_any_fps",
        "stream_fps",
        "process_fps",
        "write_ratio",
        "read_ratio",
        "read_any_ratio",
        "stream_ratio",
        "process_ratio",
    ] {
        assert!(row[k].as_f64().unwrap() > 0.0, "{k}: {row}");
    }
    let flows = common::media::get_json(&d.url("/flows")).await;
    assert_eq!(
        flows.as_array().unwrap().len(),
        0,
        "bench flows removed: {flows}"
    );
}

/// One live stream of frames (`drey signal --listen`), three receiver processes sharing a
/// job, one killed with -9 mid-stream: the other two store its share from the frames they
/// hold, and the flow has every frame exactly once, identical to the signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_receivers_one_killed_every_frame_once() {
    let d = Drey::start_with_config("").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let frames = "300"; // 6 s at 50 fps
    let mut sender = Command::new(env!("CARGO_BIN_EXE_drey"))
        .args([
            "signal",
            "--listen",
            &addr,
            "--wait-clients",
            "3",
            "--width",
            "640",
            "--height",
            "360",
            "--format",
            "uyvy",
            "--rate",
            "50",
            "--frames",
            frames,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let args = [
        "ingest",
        "stream",
        "--connect",
        &addr,
        "--width",
        "640",
        "--height",
        "360",
        "--format",
        "uyvy",
        "--rate",
        "50",
        "--frames",
        frames,
        "--job",
        "live-job",
        "--chunk-frames",
        "5",
        "--lease-secs",
        "2",
        "--quiet",
    ];
    let mut receivers: Vec<std::process::Child> = (0..3)
        .map(|_| {
            d.cli_command(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Two seconds into the stream, one receiver dies.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let mut victim = receivers.remove(0);
    let _ = victim.kill();
    let _ = victim.wait();
    let mut flow = String::new();
    let mut stored = 0;
    for r in receivers {
        let out = r.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "receiver: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["frames_received"], 300, "{v}");
        assert_eq!(v["chunks_done"], v["chunks"], "{v}");
        flow = v["flow_id"].as_str().unwrap().to_owned();
        stored += v["stored_here"].as_u64().unwrap();
    }
    assert!(sender.wait().unwrap().success());
    assert!(stored > 0 && stored <= 300, "{stored}");
    check_grains(&d, &flow, 300).await;
    let dir = tempfile::tempdir().unwrap();
    let expected = dir.path().join("expected.uyvy");
    signal(&d, &expected, (640, 360), "uyvy", 300);
    let back = dir.path().join("back.uyvy");
    export(&d, &flow, &back);
    assert!(
        same_file(&expected, &back),
        "the stored stream differs from the signal"
    );
}

/// The renderer: a flow rendered (luma inverted) is a new flow of the same source with its
/// provenance recorded; its frames differ from the input, and rendering it again gives the
/// input back bit for bit (v210 inversion is its own inverse).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_records_provenance_and_inverts() {
    let d = Drey::start_with_config("").await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.v210");
    signal(&d, &input, (640, 360), "v210", 40);
    let s = ("640".to_owned(), "360".to_owned());
    let mut args = ingest_args(input.to_str().unwrap(), &s, "v210");
    args.extend(["--label", "cam"]);
    let (ok, out, err) = d.run_cli_output(&args);
    assert!(ok, "{err}");
    let orig: Value = serde_json::from_str(out.trim()).unwrap();
    let orig_flow = orig["flow_id"].as_str().unwrap().to_owned();
    let render = |flow: &str| {
        let (ok, out, err) = d.run_cli_output(&["render", flow, "--writers", "3"]);
        assert!(ok, "drey render: {err}");
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["frames"], 40);
        v["flow_id"].as_str().unwrap().to_owned()
    };
    let inverted = render(&orig_flow);
    let f = common::media::get_json(&d.url(&format!("/flows/{inverted}"))).await;
    assert_eq!(f["source_id"], orig["source_id"], "same source");
    assert_eq!(f["tags"]["drey.derived_from"], orig_flow.as_str());
    assert_eq!(f["tags"]["drey.operation"], "invert");
    assert!(f["description"].as_str().unwrap().contains(&orig_flow));
    check_grains(&d, &inverted, 40).await;
    let once = dir.path().join("once.v210");
    export(&d, &inverted, &once);
    assert!(!same_file(&input, &once), "rendering changed the frames");
    let twice_flow = render(&inverted);
    let twice = dir.path().join("twice.v210");
    export(&d, &twice_flow, &twice);
    assert!(
        same_file(&input, &twice),
        "inverting twice gives the input back"
    );
    // Not an uncompressed flow: refused.
    let (ok, err) = d.run_cli(&["render", &uuid::Uuid::new_v4().to_string()]);
    assert!(!ok && err.contains("does not exist"), "{err}");
}
