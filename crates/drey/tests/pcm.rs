//! Uncompressed audio grains end to end with the real binary and real ffmpeg: a WAV file
//! and the same samples as raw PCM are ingested by parallel writers into flows of PCM
//! grains (40 ms each, the last one shorter, exact contiguous timeranges), exported back
//! bit for bit (`format=raw`) and as a WAV file that ffprobe reads with the right length
//! (`format=wav`, byte ranges included); broken files are refused with nothing stored.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Backend, Drey};
use serde_json::Value;

/// 10.01 s of a two-channel tone (440 and 660 Hz) at 48 kHz, 24-bit: 480,480 samples, so
/// the last 40 ms grain holds 10 ms.
fn tone(path: &Path, container: &str) {
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
        ])
        .args([
            "-i",
            "aevalsrc=0.5*sin(440*2*PI*t)|0.5*sin(660*2*PI*t):s=48000:d=10.01",
        ])
        .args(["-c:a", "pcm_s24le", "-f", container])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ingest(d: &Drey, args: &[&str]) -> Value {
    let mut all = vec!["ingest", "raw"];
    all.extend_from_slice(args);
    all.extend(["--writers", "4", "--quiet"]);
    let (ok, out, err) = d.run_cli_output(&all);
    assert!(ok, "drey ingest: {err}");
    serde_json::from_str(out.trim()).unwrap()
}

fn ffprobe_audio(target: &str) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The samples of an audio file as raw s24le, decoded by ffmpeg.
fn decoded(path: &Path) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "s24le", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

async fn check_flow(d: &Drey, flow: &str) {
    let f = common::media::get_json(&d.url(&format!("/flows/{flow}"))).await;
    assert_eq!(f["format"], "urn:x-nmos:format:audio", "{f}");
    assert_eq!(f["codec"], "audio/x-raw-int");
    let e = &f["essence_parameters"];
    assert_eq!(
        (&e["sample_rate"], &e["channels"], &e["bit_depth"]),
        (&Value::from(48000), &Value::from(2), &Value::from(24)),
        "{e}"
    );
    assert_eq!(e["unc_parameters"]["unc_type"], "interleaved");
    let ranges = common::grains::ranges(d, flow).await;
    assert_eq!(ranges.len(), 251, "480480 samples in grains of 1920");
    for w in ranges.windows(2) {
        assert_eq!(w[0].end_nanos(), w[1].start_nanos(), "contiguous grains");
    }
    for r in &ranges[..250] {
        assert_eq!(r.duration_nanos(), Some(40_000_000), "1920 samples: {r}");
    }
    assert_eq!(
        ranges[250].duration_nanos(),
        Some(10_000_000),
        "the last grain: 480 samples"
    );
}

async fn wav_and_raw_pcm_round_trip(backend: Backend) {
    let Some(d) = Drey::start(backend, "").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    tone(&wav, "wav");
    let raw = dir.path().join("tone.s24le");
    tone(&raw, "s24le");
    let samples = std::fs::read(&raw).unwrap();
    assert_eq!(samples.len(), 480_480 * 6);

    // The WAV file: its header gives the format.
    let v = ingest(&d, &[wav.to_str().unwrap(), "--label", "tone"]);
    assert_eq!(
        (&v["frames"], &v["stored_here"]),
        (&Value::from(251), &Value::from(251))
    );
    let from_wav = v["flow_id"].as_str().unwrap().to_owned();
    check_flow(&d, &from_wav).await;
    // Raw PCM of the same samples, described on the command line.
    let v = ingest(
        &d,
        &[
            raw.to_str().unwrap(),
            "--format",
            "pcm_s24le",
            "--sample-rate",
            "48000",
            "--channels",
            "2",
        ],
    );
    let from_raw = v["flow_id"].as_str().unwrap().to_owned();
    check_flow(&d, &from_raw).await;

    for flow in [&from_wav, &from_raw] {
        // format=raw: the samples, bit for bit (from the store, and over HTTP).
        let back = dir.path().join(format!("{flow}.s24le"));
        assert!(
            common::grains::export(&d, flow, "raw", &back) == samples,
            "raw export differs"
        );
        let http = reqwest::get(d.url(&format!("/flows/{flow}/download?format=raw")))
            .await
            .unwrap();
        assert_eq!(http.status(), 200);
        assert!(
            http.bytes().await.unwrap() == samples,
            "raw over HTTP differs"
        );

        // format=wav: a WAV file ffprobe reads as 10.01 s of 48 kHz stereo 24-bit, whose
        // decoded samples are the input's.
        let url = d.url(&format!("/flows/{flow}/download?format=wav"));
        let p = ffprobe_audio(&url);
        let s = &p["streams"][0];
        assert_eq!(s["codec_name"], "pcm_s24le", "{p}");
        assert_eq!(
            (&s["sample_rate"], &s["channels"]),
            (&Value::from("48000"), &Value::from(2))
        );
        let dur: f64 = p["format"]["duration"].as_str().unwrap().parse().unwrap();
        assert!((dur - 10.01).abs() < 0.001, "duration {dur}");
        let file = dir.path().join(format!("{flow}.wav"));
        let full = reqwest::get(&url).await.unwrap();
        assert_eq!(full.headers()["content-type"], "audio/wav");
        std::fs::write(&file, full.bytes().await.unwrap()).unwrap();
        assert!(decoded(&file) == samples, "the WAV export's samples differ");
        assert!(
            common::grains::export(&d, flow, "wav", &dir.path().join("cli.wav"))
                == std::fs::read(&file).unwrap(),
            "drey export --format wav differs from the download"
        );
        // Byte ranges across the header and into the samples equal the whole file's.
        let whole = std::fs::read(&file).unwrap();
        for (a, b) in [
            (0u64, 9u64),
            (20, 100),
            (60, 70_000),
            (2_000_000, 2_882_947),
        ] {
            let r = reqwest::Client::new()
                .get(&url)
                .header("range", format!("bytes={a}-{b}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 206, "{a}-{b}");
            let got = r.bytes().await.unwrap();
            let b = (b as usize).min(whole.len() - 1);
            assert!(got[..] == whole[a as usize..=b], "range {a}-{b}");
        }
    }
    // A PCM flow is not HLS or MP4 material: refused naming why.
    let r = reqwest::get(d.url(&format!("/flows/{from_wav}/download?format=ts")))
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(r.text().await.unwrap().contains("format=raw"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wav_and_raw_pcm_round_trip_local() {
    wav_and_raw_pcm_round_trip(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wav_and_raw_pcm_round_trip_scale() {
    wav_and_raw_pcm_round_trip(Backend::Scale).await;
}

/// Broken audio: raw PCM that is not whole sample frames, a truncated WAV file, video
/// flags on audio, a missing sample rate: each refused with a message naming it, and
/// nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_audio_is_refused_with_nothing_stored() {
    let d = Drey::start_with_config("").await;
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    tone(&wav, "wav");
    let raw = dir.path().join("tone.s24le");
    tone(&raw, "s24le");
    let mut bytes = std::fs::read(&raw).unwrap();
    bytes.truncate(bytes.len() - 4);
    let odd = dir.path().join("odd.s24le");
    std::fs::write(&odd, &bytes).unwrap();
    let mut w = std::fs::read(&wav).unwrap();
    w.truncate(w.len() / 2);
    let cut = dir.path().join("cut.wav");
    std::fs::write(&cut, &w).unwrap();
    let (odd, cut, wav, raw) = (
        odd.to_str().unwrap(),
        cut.to_str().unwrap(),
        wav.to_str().unwrap(),
        raw.to_str().unwrap(),
    );
    let pcm = "--format pcm_s24le --sample-rate 48000 --channels 2";
    // (the file and flags, what the refusal must say)
    let cases = [
        (
            format!("{odd} {pcm}"),
            "not a whole number of 6-byte sample frames",
        ),
        (cut.to_owned(), "truncated"),
        (format!("{wav} --width 10"), "--width is for video"),
        (
            format!("{wav} --sample-rate 44100"),
            "its header gives the format",
        ),
        (
            format!("{raw} --format pcm_s24le --channels 2"),
            "--sample-rate",
        ),
        (
            format!("{raw} {pcm} --grain-samples 0"),
            "samples per grain",
        ),
    ];
    for (args, says) in &cases {
        let mut all = vec!["ingest", "raw"];
        all.extend(args.split(' '));
        let (ok, err) = d.run_cli(&all);
        assert!(!ok, "{args}");
        assert!(err.contains(says), "{args}: {err}");
    }

    let flows = common::media::get_json(&d.url("/flows")).await;
    assert_eq!(
        flows.as_array().unwrap().len(),
        0,
        "nothing stored: {flows}"
    );
}
