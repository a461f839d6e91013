//! End-to-end tests of HLS playback generated from the index, with real ffmpeg/ffprobe as
//! the player, on SQLite + local directory and on PostgreSQL + Ceph RGW: a live RTMP
//! publish read live, then as VOD and as a time-shift window; flows built by a plain HTTP
//! client through the TAMS API (MPEG-TS and fMP4 with an init object) played back; bad
//! requests answered with JSON errors.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::media::*;
use common::{Backend, Drey};
use drey_core::TimeRange;
use serde_json::{Value, json};

const TAI_UTC_NS: i64 = 37_000_000_000;

async fn get_text(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

async fn playlist(url: &str) -> String {
    let (status, body) = get_text(url).await;
    assert_eq!(status, 200, "GET {url}: {body}");
    assert!(body.starts_with("#EXTM3U\n"), "{body}");
    body
}

/// (duration, video frames) of what ffprobe reads through a playlist URL.
fn probe_url(url: &str) -> Probe {
    probe(Path::new(url))
}

/// `EXT-X-PROGRAM-DATE-TIME` values as unix nanoseconds.
fn program_date_times(text: &str) -> Vec<i64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
        .map(|v| {
            let dt = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .unwrap();
            i64::try_from(dt.unix_timestamp_nanos()).unwrap()
        })
        .collect()
}

fn extinf_total(text: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|v| v.trim_end_matches(',').parse::<f64>().unwrap())
        .sum()
}

fn unix_now_ns() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

fn tag_value<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(tag))
}

/// A 60 s live publish: ffmpeg plays the live playlist while it runs, the playlist moves
/// (sliding window, sequence numbers), a time-shift window into the live edge is an EVENT;
/// afterwards the VOD decodes fully with the right duration and a 20 s window yields 20 s.
async fn live_publish_plays_live_then_as_vod(backend: Backend) {
    let Some(d) = Drey::start(backend, "hls_live_segments = 4").await else {
        return;
    };
    let started_unix = unix_now_ns();
    let publisher = publish(&d.rtmp_url("hls60"), 60, true);
    let flow = mux_flow(&d, "hls60").await;
    let id = flow["id"].as_str().unwrap().to_owned();
    let live_url = d.url(&format!("/flows/{id}/playlist.m3u8"));

    // Wait for the window to fill, then read the live playlist as a player would.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let (status, body) = get_text(&live_url).await;
        if status == 200 && body.matches("#EXTINF").count() >= 4 {
            break body;
        }
        assert!(Instant::now() < deadline, "{status} {body}\n{}", d.log());
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(!first.contains("#EXT-X-ENDLIST") && !first.contains("PLAYLIST-TYPE"));
    assert!(first.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES"));
    // The 37 s trap: program date-times are UTC, close to the wall clock of the publish.
    let pdt = program_date_times(&first);
    assert_eq!(pdt.len(), 4);
    assert!(
        (pdt[0] - started_unix).abs() < 15_000_000_000,
        "first PROGRAM-DATE-TIME {} s away from the publish start",
        (pdt[0] - started_unix) as f64 / 1e9
    );
    let seq0: i64 = tag_value(&first, "#EXT-X-MEDIA-SEQUENCE:")
        .unwrap()
        .parse()
        .unwrap();
    // Blocking reload: ask for the segment after the last one; it arrives within ~2 s.
    let next = seq0 + 4;
    let t = Instant::now();
    let blocked = playlist(&format!("{live_url}?_HLS_msn={next}")).await;
    let waited = t.elapsed();
    let seq1: i64 = tag_value(&blocked, "#EXT-X-MEDIA-SEQUENCE:")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        seq1 > seq0,
        "window slid: {seq0} -> {seq1} after {waited:?}"
    );
    assert_eq!(blocked.matches("#EXTINF").count(), 4, "{blocked}");
    // The sliding window keeps its segments' program date-times.
    let pdt1 = program_date_times(&blocked);
    let shift = usize::try_from(seq1 - seq0).unwrap();
    if shift < 4 {
        assert_eq!(pdt1[0], pdt[shift]);
    }

    // ffmpeg as a live player: starts near the live edge, reloads, reads 8 s.
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i", &live_url])
        .args(["-t", "8", "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg reading the live playlist: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A time-shift window from the start to beyond the live edge is an EVENT playlist.
    let segs = segments(&d, &id).await;
    let t0 = range_ns(&segs[0]).0;
    let open = TimeRange::from_nanos(t0, t0 + 600_000_000_000);
    let event = playlist(&format!("{live_url}?timerange={open}")).await;
    assert!(event.contains("#EXT-X-PLAYLIST-TYPE:EVENT") && !event.contains("ENDLIST"));
    assert_eq!(tag_value(&event, "#EXT-X-MEDIA-SEQUENCE:"), Some("0"));

    wait_ok(publisher);
    wait_idle(&d, &id).await;
    let segs = segments(&d, &id).await;
    assert_contiguous(&segs);
    let vod = playlist(&live_url).await;
    assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD") && vod.ends_with("#EXT-X-ENDLIST\n"));
    assert_eq!(vod.matches("#EXTINF").count(), segs.len());
    // Clients that accept gzip get the same playlist compressed, under its own ETag.
    let r = reqwest::Client::new()
        .get(&live_url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.headers()["vary"], "accept-encoding");
    assert!(r.headers()["etag"].to_str().unwrap().ends_with("-gz\""));
    let gz = r.bytes().await.unwrap();
    assert!(gz.len() * 4 < vod.len(), "{} -> {}", vod.len(), gz.len());
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
    assert_eq!(plain, vod);
    // Every segment's date-time is its TAI start converted to UTC.
    let expected: Vec<i64> = segs.iter().map(|s| range_ns(s).0 - TAI_UTC_NS).collect();
    let got = program_date_times(&vod);
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert!(
            (g - e).abs() <= 1_000_000,
            "PDT {g} vs TAI start - 37 s {e}"
        );
    }
    let p = probe_url(&live_url);
    assert!(
        (p.duration - 60.0).abs() < 0.5,
        "VOD duration {}",
        p.duration
    );
    assert_eq!(p.video_frames, 1500, "60 s at 25 fps");
    let errors = decode_errors(Path::new(&live_url));
    assert!(errors.is_empty(), "decoding the VOD: {errors}");

    // Time-shift [t+10 s, t+30 s): 20 s, give or take one segment; same with start/end.
    let window = TimeRange::from_nanos(t0 + 10_000_000_000, t0 + 30_000_000_000);
    let shifted_url = format!("{live_url}?timerange={window}");
    let shifted = playlist(&shifted_url).await;
    assert!(shifted.ends_with("#EXT-X-ENDLIST\n"));
    let listed = extinf_total(&shifted);
    assert!((listed - 20.0).abs() <= 2.0 + 1e-6, "listed {listed} s");
    let p = probe_url(&shifted_url);
    assert!(
        (p.duration - 20.0).abs() <= 2.1,
        "time-shift duration {}",
        p.duration
    );
    let iso = |tai_ns: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(tai_ns - TAI_UTC_NS))
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let by_dates = playlist(&format!(
        "{live_url}?start={}&end={}",
        iso(t0 + 10_000_000_000),
        iso(t0 + 30_000_000_000)
    ))
    .await;
    assert_eq!(by_dates, shifted, "start/end (UTC) select the same window");

    // The source's multivariant playlist points at the flow's, span passed on.
    let src = flow["source_id"].as_str().unwrap();
    let mv = playlist(&d.url(&format!("/sources/{src}/playlist.m3u8?timerange={window}"))).await;
    assert!(mv.contains("#EXT-X-STREAM-INF:BANDWIDTH="), "{mv}");
    assert!(
        mv.contains("CODECS=\"avc1.") && mv.contains("mp4a.40.2"),
        "{mv}"
    );
    assert!(mv.contains("RESOLUTION=320x180"), "{mv}");
    assert!(
        mv.contains(&format!("../../flows/{id}/playlist.m3u8?timerange=")),
        "{mv}"
    );
    let p = probe_url(&d.url(&format!("/sources/{src}/playlist.m3u8?timerange={window}")));
    assert!((p.duration - 20.0).abs() <= 2.1, "{}", p.duration);
}

/// A publisher that reconnects: the second publish continues the flow; its first segment
/// is marked `EXT-X-DISCONTINUITY` (its timestamps restart), the discontinuity sequence
/// counts it once the window has slid past, and the whole recording still decodes.
async fn reconnect_is_a_discontinuity(backend: Backend) {
    let Some(d) = Drey::start(backend, "hls_live_segments = 3").await else {
        return;
    };
    wait_ok(publish(&d.rtmp_url("hlsre"), 6, false));
    let id = mux_flow(&d, "hlsre").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_idle(&d, &id).await;
    let url = d.url(&format!("/flows/{id}/playlist.m3u8"));
    let first = playlist(&url).await;
    assert_eq!(first.matches("#EXT-X-DISCONTINUITY").count(), 0, "{first}");
    let n1 = first.matches("#EXTINF").count();
    assert_eq!(n1, 3);

    let second = publish(&d.rtmp_url("hlsre"), 10, true);
    // While it is live: the window straddles the reconnect, then slides past it.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut saw_straddle = false;
    loop {
        let (status, text) = get_text(&url).await;
        assert_eq!(status, 200, "{text}");
        if text.contains("PLAYLIST-TYPE") {
            // Not yet live again (the flow status flips when the publish is accepted).
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let seq: i64 = tag_value(&text, "#EXT-X-MEDIA-SEQUENCE:")
            .unwrap()
            .parse()
            .unwrap();
        let dseq =
            tag_value(&text, "#EXT-X-DISCONTINUITY-SEQUENCE:").map_or(0, |v| v.parse().unwrap());
        if text.contains("#EXT-X-DISCONTINUITY\n") {
            saw_straddle = true;
            assert_eq!(dseq, 0, "the discontinuity is still in the window\n{text}");
        }
        if seq > 3 {
            // The first segment of the second publish (seq 3) has left the window.
            assert_eq!(dseq, 1, "{text}");
            assert!(!text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "{text}\n{}", d.log());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(saw_straddle, "never saw a window with the reconnect in it");
    wait_ok(second);
    wait_idle(&d, &id).await;
    let vod = playlist(&url).await;
    assert_eq!(vod.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{vod}");
    let p = probe_url(&url);
    assert_eq!(p.video_frames, 400, "6 s + 10 s at 25 fps");
    let errors = decode_errors(Path::new(&url));
    assert!(errors.is_empty(), "{errors}");
}

async fn tams_flow_plays(d: &Drey, fmp4: bool) {
    let http = reqwest::Client::new();
    let work = tempfile::tempdir().unwrap();
    let (init, files) = encode_segments(work.path(), 12, Streams::Both, fmp4);
    let durations = ffmpeg_durations(work.path());
    assert_eq!(durations.len(), files.len());
    let (flow, source) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let container = if fmp4 { "video/mp4" } else { "video/mp2t" };
    let r = http
        .put(d.url(&format!("/flows/{flow}")))
        .json(&json!({
            "id": flow, "source_id": source, "format": "urn:x-nmos:format:multi",
            "container": container, "label": "tams-client",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let init_id = match &init {
        Some(p) => Some(upload(&http, d, &flow.to_string(), &[p]).await.remove(0)),
        None => None,
    };
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let ids = upload(&http, d, &flow.to_string(), &paths).await;
    register_contiguous(&http, d, flow, &ids, &durations, init_id.as_deref()).await;

    let url = d.url(&format!("/flows/{flow}/playlist.m3u8"));
    let text = playlist(&url).await;
    assert!(
        text.ends_with("#EXT-X-ENDLIST\n"),
        "not ingesting: VOD\n{text}"
    );
    assert_eq!(text.matches("#EXTINF").count(), files.len());
    assert_eq!(
        text.matches("#EXT-X-MAP:").count(),
        usize::from(fmp4),
        "{text}"
    );
    let expected: f64 = durations.iter().sum();
    let p = probe_url(&url);
    assert!(
        (p.duration - expected).abs() < 0.3,
        "{container}: duration {} vs {expected}",
        p.duration
    );
    assert_eq!(p.video_frames, 300, "{container}: 12 s at 25 fps");
    let errors = decode_errors(Path::new(&url));
    assert!(errors.is_empty(), "{container}: {errors}");
}

/// Flows written by any TAMS client (MPEG-TS, and fMP4 with an init object) play, with
/// segment URIs presigned where the store can presign.
async fn tams_client_flows_play(backend: Backend) {
    let Some(d) = Drey::start(backend, "hls_segment_urls = \"presigned\"").await else {
        return;
    };
    tams_flow_plays(&d, false).await;
    tams_flow_plays(&d, true).await;
    // Where the segments point: presigned object-store URLs on S3, drey's own otherwise.
    let flows: Value = reqwest::get(d.url("/flows?label=tams-client"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = flows[0]["id"].as_str().unwrap();
    let text = playlist(&d.url(&format!("/flows/{id}/playlist.m3u8"))).await;
    let uri = text.lines().find(|l| !l.starts_with('#')).unwrap();
    match backend {
        Backend::Local => assert!(uri.starts_with("../../media/"), "{uri}"),
        Backend::Scale => assert!(
            uri.starts_with("http") && uri.contains("X-Amz-Signature"),
            "{uri}"
        ),
    }
}

both_backends! {
    live_then_vod => super::live_publish_plays_live_then_as_vod;
    tams_client => super::tams_client_flows_play;
    reconnect => super::reconnect_is_a_discontinuity;
}

/// Two instances sharing PostgreSQL and the bucket number a live flow's segments alike,
/// whichever instance registered them, and a request blocked on one instance for the next
/// segment is answered when the segment is registered through the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_agree_on_live_playlists() {
    let Some(cfg) = Drey::scale_config().await else {
        return;
    };
    let cfg = format!("{cfg}hls_live_segments = 3\nhls_cache_ms = 400\n");
    let (a, b) = (
        Drey::start_with_config(&cfg).await,
        Drey::start_with_config(&cfg).await,
    );
    let http = reqwest::Client::new();
    let flow = uuid::Uuid::new_v4();
    let r = http
        .put(a.url(&format!("/flows/{flow}")))
        .json(&json!({"id": flow, "source_id": uuid::Uuid::new_v4(),
            "format": "urn:x-nmos:format:multi", "container": "video/mp2t",
            "status": "ingesting"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let work = tempfile::tempdir().unwrap();
    let files: Vec<std::path::PathBuf> = (0..8)
        .map(|i| {
            let p = work.path().join(format!("{i}.ts"));
            std::fs::write(&p, vec![0x47u8; 188]).unwrap();
            p
        })
        .collect();
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let ids = upload(&http, &a, &flow.to_string(), &paths).await;
    let register = |d: &Drey, i: usize| {
        let url = d.url(&format!("/flows/{flow}/segments"));
        let body = json!({"object_id": ids[i],
            "timerange": format!("[{}:0_{}:0)", 1000 + 2 * i, 1002 + 2 * i)});
        let http = http.clone();
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 201);
        }
    };
    let live = |d: &Drey| d.url(&format!("/flows/{flow}/playlist.m3u8"));
    for i in 0..5 {
        register(if i % 2 == 0 { &a } else { &b }, i).await;
    }
    // Within the cache time both instances serve the same window, same numbers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (pa, pb) = (playlist(&live(&a)).await, playlist(&live(&b)).await);
    assert_eq!(pa, pb);
    assert_eq!(tag_value(&pa, "#EXT-X-MEDIA-SEQUENCE:"), Some("2"), "{pa}");
    // b blocks for segment 5; it is registered through a.
    let blocked = tokio::spawn({
        let url = format!("{}?_HLS_msn=5", live(&b));
        async move {
            let t = Instant::now();
            let text = playlist(&url).await;
            (text, t.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    register(&a, 5).await;
    let (text, waited) = blocked.await.unwrap();
    assert!(
        text.contains(&ids[5]),
        "b saw the segment registered through a\n{text}"
    );
    assert_eq!(
        tag_value(&text, "#EXT-X-MEDIA-SEQUENCE:"),
        Some("3"),
        "{text}"
    );
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");
    // Deleting the oldest segments does not renumber the rest.
    let r = http
        .delete(a.url(&format!("/flows/{flow}/segments?timerange=[1000:0_1004:0)")))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    register(&b, 6).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pb = playlist(&live(&b)).await;
    assert_eq!(tag_value(&pb, "#EXT-X-MEDIA-SEQUENCE:"), Some("4"), "{pb}");
}

/// A source whose video and audio are separate flows (each its own source, collected by a
/// multi flow): its multivariant playlist pairs the video variant with an audio rendition,
/// and a player gets both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_audio_and_video_flows_become_renditions() {
    let d = Drey::start_with_config("").await;
    let (src_m, v, a) = separate_av_flows(&d).await;
    let url = d.url(&format!("/sources/{src_m}/playlist.m3u8"));
    let text = playlist(&url).await;
    assert!(
        text.contains(&format!(
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"cam audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"1\",URI=\"../../flows/{a}/playlist.m3u8\""
        )),
        "{text}"
    );
    assert!(
        text.contains(
            "CODECS=\"avc1.64000C,mp4a.40.2\",RESOLUTION=320x180,FRAME-RATE=25.000,AUDIO=\"audio\""
        ),
        "{text}"
    );
    assert!(
        text.ends_with(&format!("../../flows/{v}/playlist.m3u8\n")),
        "{text}"
    );
    assert_eq!(text.matches("#EXT-X-STREAM-INF").count(), 1, "{text}");
    // A player opening the multivariant playlist gets the video and the audio rendition.
    let p = probe_url(&url);
    assert_eq!(p.video_frames, 250, "10 s at 25 fps");
    assert!(p.audio_frames >= 460, "audio frames {}", p.audio_frames);
}

async fn json_error(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap();
    assert!(v["summary"].is_string(), "{v}");
    (status, v)
}

/// Bad requests get a 4xx with a JSON body naming what is wrong; caching headers hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_and_caching() {
    let d = Drey::start_with_config("").await;
    let http = reqwest::Client::new();
    let missing = uuid::Uuid::new_v4();
    let (s, _) = json_error(
        http.get(d.url(&format!("/flows/{missing}/playlist.m3u8")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = json_error(
        http.get(d.url(&format!("/sources/{missing}/playlist.m3u8")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 404);

    // Flows HLS cannot carry: 415 naming the field.
    let put = |id: uuid::Uuid, v: Value| {
        let http = http.clone();
        let url = d.url(&format!("/flows/{id}"));
        async move {
            let r = http.put(url).json(&v).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
    };
    for (container, codec, field) in [
        (Some("video/x-matroska"), "video/h264", "container"),
        (None, "video/h264", "container"),
        (Some("video/mp2t"), "video/jxsv", "codec"),
    ] {
        let id = uuid::Uuid::new_v4();
        let mut v = json!({"id": id, "source_id": uuid::Uuid::new_v4(),
            "format": "urn:x-nmos:format:video", "codec": codec,
            "essence_parameters": {"frame_width": 16, "frame_height": 16, "frame_rate": {"numerator": 25}}});
        if let Some(c) = container {
            v["container"] = json!(c);
        }
        put(id, v).await;
        let (s, body) = json_error(
            http.get(d.url(&format!("/flows/{id}/playlist.m3u8")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((s, body["field"].as_str()), (415, Some(field)), "{body}");
    }

    // A playable flow with one segment.
    let work = tempfile::tempdir().unwrap();
    let (_, files) = encode_segments(work.path(), 2, Streams::Both, false);
    let flow = uuid::Uuid::new_v4();
    put(
        flow,
        json!({"id": flow, "source_id": uuid::Uuid::new_v4(), "format": "urn:x-nmos:format:multi",
            "container": "video/mp2t"}),
    )
    .await;
    // The client names the object, without a file extension.
    let oid = format!("noext-{}", uuid::Uuid::new_v4());
    let r = http
        .post(d.url(&format!("/flows/{flow}/storage")))
        .json(&json!({"object_ids": [oid]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let r = http
        .put(v["media_objects"][0]["put_url"]["url"].as_str().unwrap())
        .body(std::fs::read(&files[0]).unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let ids = [oid.clone()];
    let r = http
        .post(d.url(&format!("/flows/{flow}/segments")))
        .json(&json!({"object_id": ids[0], "timerange": "[100:0_102:0)"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let url = d.url(&format!("/flows/{flow}/playlist.m3u8"));
    for (query, status, field) in [
        ("?timerange=garbage", 400, Some("timerange")),
        ("?start=yesterday", 400, Some("start")),
        ("?timerange=[200:0_300:0)", 404, None),
        ("?timerange=[101:0_101:0)", 404, None),
    ] {
        let (s, body) = json_error(http.get(format!("{url}{query}")).send().await.unwrap()).await;
        assert_eq!(s, status, "{query}: {body}");
        assert_eq!(body["field"].as_str(), field, "{query}: {body}");
    }
    // Players want a media extension: drey serves the object under one.
    let text = playlist(&d.url(&format!("/flows/{flow}/playlist.m3u8"))).await;
    let uri = format!("../../hls/objects/{oid}.ts");
    assert!(text.contains(&format!("\n{uri}\n")), "{text}");
    let p = probe_url(&d.url(&format!("/flows/{flow}/playlist.m3u8")));
    assert_eq!(p.video_frames, 50, "2 s at 25 fps");

    // A span that starts inside a segment keeps the whole segment and says where to start.
    let text = playlist(&format!("{url}?timerange=[101:0_102:0)")).await;
    assert!(
        text.contains("#EXT-X-START:TIME-OFFSET=1.000,PRECISE=YES"),
        "{text}"
    );

    // ETag and conditional GET; playlists and segments are cacheable.
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/vnd.apple.mpegurl"
    );
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let r = http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let seg = d.url(&format!("/media/{}", ids[0]));
    let r = http
        .get(&seg)
        .header("range", "bytes=0-187")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(r.bytes().await.unwrap().len(), 188);
}
