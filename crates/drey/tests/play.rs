//! Live frame streams with the real binary: `drey play` plays a stored flow out, paced and
//! read in parallel, to receivers that store it again (`drey ingest stream`, a stream of
//! unknown length ended by the sender's end header) bit for bit; it follows a flow as it
//! is written and stops cleanly on SIGTERM; receivers of an endless live signal, one
//! joining late and one killed, store every frame exactly once.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Drey;
use serde_json::Value;

const W: &str = "320";
const H: &str = "180";
/// Bytes of one 320x180 UYVY frame.
const FRAME: u64 = 320 * 180 * 2;

fn signal_file(path: &Path, frames: u64, first: u64) {
    let out = Command::new(env!("CARGO_BIN_EXE_drey"))
        .args(["signal", "--width", W, "--height", H, "--format", "uyvy"])
        .args([
            "--frames",
            &frames.to_string(),
            "--first",
            &first.to_string(),
        ])
        .arg("-o")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ingest_file(d: &Drey, path: &Path, flow: Option<&str>) -> String {
    let mut args = vec![
        "ingest",
        "raw",
        path.to_str().unwrap(),
        "--width",
        W,
        "--height",
        H,
        "--rate",
        "50",
        "--format",
        "uyvy",
        "--quiet",
    ];
    if let Some(f) = flow {
        args.extend(["--flow", f]);
    }
    let (ok, out, err) = d.run_cli_output(&args);
    assert!(ok, "drey ingest raw: {err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    v["flow_id"].as_str().unwrap().to_owned()
}

fn receiver(d: &Drey, addr: &str, job: &str) -> Child {
    d.cli_command(&[
        "ingest",
        "stream",
        "--connect",
        addr,
        "--width",
        W,
        "--height",
        H,
        "--format",
        "uyvy",
        "--rate",
        "50",
        "--job",
        job,
        "--chunk-frames",
        "5",
        "--lease-secs",
        "2",
        "--quiet",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

fn finished(child: Child, what: &str) -> Value {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{what} printed {text:?}: {e}"))
}

fn export_raw(d: &Drey, flow: &str, out: &Path) -> Vec<u8> {
    common::grains::export(d, flow, "raw", out)
}

/// The grains of a flow: once each, contiguous, 1/50 s each.
async fn check_grains(d: &Drey, flow: &str, frames: usize) {
    common::grains::check(d, flow, frames, 20_000_000).await;
}

/// A stored flow played out to two receivers that store it as a new flow (a stream of
/// unknown length: the receivers learn its end from the sender): the copy is identical,
/// and the play was paced (it cannot end before the frames' time has passed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn play_to_receivers_stores_an_identical_copy() {
    let d = Drey::start_with_config("").await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.uyvy");
    signal_file(&input, 100, 0);
    let flow = ingest_file(&d, &input, None);
    let addr = format!("127.0.0.1:{}", common::free_port());
    let player = d
        .cli_command(&[
            "play",
            &flow,
            "--listen",
            &addr,
            "--wait-clients",
            "2",
            "--readers",
            "4",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let receivers = [
        receiver(&d, &addr, "copy-job"),
        receiver(&d, &addr, "copy-job"),
    ];
    let mut copy = String::new();
    let mut stored = 0;
    for r in receivers {
        let v = finished(r, "receiver");
        assert_eq!(v["frames_received"], 100, "{v}");
        assert_eq!(v["ended"], true, "the sender's end header: {v}");
        assert_eq!(
            (&v["chunks_done"], &v["chunks"]),
            (&Value::from(20), &Value::from(20)),
            "{v}"
        );
        copy = v["flow_id"].as_str().unwrap().to_owned();
        stored += v["stored_here"].as_u64().unwrap();
    }
    assert_eq!(stored, 100, "every frame stored once between the two");
    let played = finished(player, "drey play");
    assert_eq!(played["frames"], 100, "{played}");
    assert_eq!(played["bytes"], 100 * FRAME);
    assert_eq!(played["gaps"], 0);
    // Paced: 100 frames at 50 fps cannot go out in less than the 99 periods between them.
    assert!(
        played["seconds"].as_f64().unwrap() >= 99.0 / 50.0,
        "{played}"
    );
    assert_ne!(copy, flow);
    check_grains(&d, &copy, 100).await;
    let a = export_raw(&d, &flow, &dir.path().join("a.uyvy"));
    let b = export_raw(&d, &copy, &dir.path().join("b.uyvy"));
    assert!(a == b, "the copy differs from the original");
    assert!(a == std::fs::read(&input).unwrap());
    // A flow that is not uncompressed, and an unknown one: refused.
    let (ok, err) = d.run_cli(&["play", &uuid::Uuid::new_v4().to_string(), "-o", "-"]);
    assert!(!ok && err.contains("does not exist"), "{err}");
}

/// `drey play --follow` keeps playing grains as they are stored (here a second ingest into
/// the same flow, after a gap, which the stream closes up) and ends cleanly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn play_follows_a_flow_being_written() {
    let d = Drey::start_with_config("").await;
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("1.uyvy"), dir.path().join("2.uyvy"));
    signal_file(&first, 30, 0);
    signal_file(&second, 40, 30);
    let flow = ingest_file(&d, &first, None);
    let out = dir.path().join("played.uyvy");
    let player = d
        .cli_command(&["play", &flow, "--follow", "-o", out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first ingest has played out, store more into the same flow.
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let wait_for = |bytes: u64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while size(&out) < bytes {
            assert!(
                Instant::now() < deadline,
                "played {} of {bytes} bytes",
                size(&out)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(30 * FRAME);
    ingest_file(&d, &second, Some(&flow));
    wait_for(70 * FRAME);
    let st = Command::new("kill")
        .args(["-TERM", &player.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let played = finished(player, "drey play --follow");
    assert_eq!(played["frames"], 70, "{played}");
    assert_eq!(
        played["gaps"], 1,
        "the second ingest starts after a gap: {played}"
    );
    let mut expected = std::fs::read(&first).unwrap();
    expected.extend(std::fs::read(&second).unwrap());
    assert!(
        std::fs::read(&out).unwrap() == expected,
        "the followed stream differs"
    );
    let (ok, err) = d.run_cli(&[
        "play",
        &flow,
        "--follow",
        "--timerange",
        "[0:0_1:0)",
        "-o",
        "-",
    ]);
    assert!(!ok && err.contains("without an end"), "{err}");
}

/// An endless live signal (no frame count on either side) received by two receivers; a
/// third joins two seconds late and the first is killed with -9 at four seconds; the
/// sender is stopped with SIGTERM (it sends the end header). Every frame the sender sent
/// is stored exactly once, identical to the signal, and the job knows its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_stream_late_joiner_and_a_kill() {
    let d = Drey::start_with_config("").await;
    let addr = format!("127.0.0.1:{}", common::free_port());
    let sender = Command::new(env!("CARGO_BIN_EXE_drey"))
        .args(["signal", "--listen", &addr, "--wait-clients", "2"])
        .args([
            "--width", W, "--height", H, "--format", "uyvy", "--rate", "50",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut victim = receiver(&d, &addr, "endless");
    let steady = receiver(&d, &addr, "endless");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let late = receiver(&d, &addr, "endless");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = victim.kill();
    let _ = victim.wait();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let st = Command::new("kill")
        .args(["-TERM", &sender.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = sender.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = finished(steady, "steady receiver");
    let b = finished(late, "late receiver");
    let total = a["frames_received"].as_u64().unwrap();
    assert!(total > 250, "about 6 s at 50 fps: {a}");
    let late_got = b["frames_received"].as_u64().unwrap();
    assert!(late_got < total, "the late joiner missed the start: {b}");
    assert_eq!(a["flow_id"], b["flow_id"]);
    assert_eq!(a["ended"], true, "{a}");
    assert_eq!(a["chunks_done"], a["chunks"], "{a}");
    assert_eq!(a["chunks"].as_u64().unwrap(), total.div_ceil(5), "{a}");
    let flow = a["flow_id"].as_str().unwrap().to_owned();
    check_grains(&d, &flow, total as usize).await;
    let dir = tempfile::tempdir().unwrap();
    let expected = dir.path().join("expected.uyvy");
    signal_file(&expected, total, 0);
    let back = export_raw(&d, &flow, &dir.path().join("back.uyvy"));
    assert!(
        back == std::fs::read(&expected).unwrap(),
        "the stored stream differs from the signal"
    );
}
