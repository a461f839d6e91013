//! Publish callbacks with real ffmpeg publishers and a real HTTP receiver: `on_publish`
//! allows (2xx), denies (403), renames (302 + Location) and, when it does not answer in
//! time, denies (or allows with `on_publish_unreachable = "allow"`); `on_publish_done` and
//! `on_segment` report what happened without holding ingest up.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use common::Drey;
use common::media::{mux_flow, publish, wait_ok};
use serde_json::Value;

#[derive(Clone, Debug)]
struct Call {
    path: String,
    content_type: String,
    body: String,
}

/// The operator's callback service: decides by stream name, records every call.
async fn receiver() -> (String, Arc<Mutex<Vec<Call>>>) {
    let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
    let app = axum::Router::new().route(
        "/{*path}",
        axum::routing::post({
            let calls = calls.clone();
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| async move {
                let body = String::from_utf8_lossy(&body).into_owned();
                calls.lock().unwrap().push(Call {
                    path: uri.path().to_owned(),
                    content_type: headers
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned(),
                    body: body.clone(),
                });
                let name = form_urlencoded::parse(body.as_bytes())
                    .find(|(k, _)| k == "name")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                if uri.path() != "/publish" {
                    return StatusCode::OK.into_response();
                }
                match name.as_str() {
                    "bad" => StatusCode::FORBIDDEN.into_response(),
                    "alias" => (StatusCode::FOUND, [(header::LOCATION, "renamed")]).into_response(),
                    "elsewhere" => (
                        StatusCode::FOUND,
                        [(header::LOCATION, "rtmp://other.example/live/x")],
                    )
                        .into_response(),
                    "slow" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        StatusCode::OK.into_response()
                    }
                    _ => StatusCode::OK.into_response(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, calls)
}

fn refused(url: &str) {
    let out = publish(url, 3, false).wait_with_output().unwrap();
    assert!(!out.status.success(), "{url} was accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_callbacks_allow_deny_rename_and_report() {
    let (base, calls) = receiver().await;
    let d = Drey::start_with_config(&format!(
        "on_publish = \"{base}/publish\"\non_publish_done = \"{base}/done\"\n\
         on_segment = \"{base}/segment\"\ncallback_timeout_ms = 1000\n"
    ))
    .await;
    // Allowed, with the publisher's arguments passed on.
    wait_ok(publish(&format!("{}?user=ann", d.rtmp_url("ok")), 5, false));
    let flow = mux_flow(&d, "ok").await;
    // Denied, renamed, not understood, too slow.
    refused(&d.rtmp_url("bad"));
    wait_ok(publish(&d.rtmp_url("alias"), 3, false));
    let renamed = mux_flow(&d, "renamed").await;
    refused(&d.rtmp_url("elsewhere"));
    let t = Instant::now();
    refused(&d.rtmp_url("slow"));
    assert!(t.elapsed() < Duration::from_secs(5), "the timeout decided");
    let log = d.log();
    for reason in [
        "on_publish answered 403",
        "only a new stream key",
        "on_publish did not answer within",
    ] {
        assert!(log.contains(reason), "no {reason:?} in the log:\n{log}");
    }

    // The background calls arrive: publish_done after each accepted publish ends, one
    // segment call per segment stored.
    let flow_id = flow["id"].as_str().unwrap().to_owned();
    common::media::wait_idle(&d, &flow_id).await;
    common::media::wait_idle(&d, renamed["id"].as_str().unwrap()).await;
    let listed = common::media::get_json(&d.url(&format!("/flows/{flow_id}/segments"))).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (done, segs) = {
            let c = calls.lock().unwrap();
            (
                c.iter().filter(|c| c.path == "/done").count(),
                c.iter()
                    .filter(|c| c.path == "/segment" && c.body.contains(&flow_id))
                    .count(),
            )
        };
        if (done >= 2 && segs >= listed.as_array().unwrap().len()) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = calls.lock().unwrap().clone();
    let form = |c: &Call| -> Vec<(String, String)> {
        form_urlencoded::parse(c.body.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    };
    let publishes: Vec<Vec<(String, String)>> = calls
        .iter()
        .filter(|c| c.path == "/publish")
        .map(form)
        .collect();
    let first = &publishes[0];
    for pair in [
        ("call", "publish"),
        ("app", "live"),
        ("name", "ok"),
        ("user", "ann"),
        ("addr", "127.0.0.1"),
    ] {
        assert!(
            first.contains(&(pair.0.to_owned(), pair.1.to_owned())),
            "{pair:?} in {first:?}"
        );
    }
    assert!(
        calls
            .iter()
            .all(|c| c.path == "/segment" || c.content_type == "application/x-www-form-urlencoded")
    );
    let done: Vec<String> = calls
        .iter()
        .filter(|c| c.path == "/done")
        .map(|c| {
            let f = form(c);
            assert!(f.contains(&("call".into(), "publish_done".into())), "{f:?}");
            f.iter().find(|(k, _)| k == "name").unwrap().1.clone()
        })
        .collect();
    assert_eq!(
        done,
        ["ok", "renamed"],
        "one publish_done per accepted publish"
    );
    // on_segment: every segment of the first flow, as JSON, with its flow and timerange.
    let segs: Vec<Value> = calls
        .iter()
        .filter(|c| c.path == "/segment")
        .map(|c| {
            assert_eq!(c.content_type, "application/json");
            serde_json::from_str(&c.body).unwrap()
        })
        .collect();
    let of_ok: Vec<&Value> = segs.iter().filter(|s| s["flow_id"] == flow["id"]).collect();
    assert_eq!(of_ok.len(), listed.as_array().unwrap().len(), "{segs:?}");
    for s in &of_ok {
        assert_eq!(s["call"], "segment");
        assert_eq!(s["stream"], "live/ok");
        assert_eq!(s["format"], "ts");
        assert!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["object_id"] == s["object_id"] && l["timerange"] == s["timerange"]),
            "{s}"
        );
    }
    assert!(segs.iter().any(|s| s["flow_id"] == renamed["id"]));
}

/// `on_publish_unreachable = "allow"`: a callback service that is down does not stop
/// publishing (the default would deny).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_on_publish_can_allow() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let d = Drey::start_with_config(&format!(
        "on_publish = \"http://127.0.0.1:{dead}/publish\"\non_publish_unreachable = \"allow\"\n"
    ))
    .await;
    wait_ok(publish(&d.rtmp_url("anyway"), 3, false));
    mux_flow(&d, "anyway").await;
    let strict = Drey::start_with_config(&format!(
        "on_publish = \"http://127.0.0.1:{dead}/publish\"\n"
    ))
    .await;
    refused(&strict.rtmp_url("anyway"));
    assert!(
        strict.log().contains("on_publish unreachable"),
        "{}",
        strict.log()
    );
}
