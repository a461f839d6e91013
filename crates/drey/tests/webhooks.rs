//! End-to-end tests of TAMS webhooks with the real binary and a real HTTP receiver: a
//! receiver that is down for 30 s (while drey is also killed with -9 and restarted) gets
//! every event afterwards, once per event id, in order per flow, signed; a webhook filtered
//! to one flow gets only that flow's events; the API refuses bad bodies and SSRF targets.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use common::{Backend, Drey};
use serde_json::{Value, json};

#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: String,
}

/// A port of the test's own, bound but not listening: connections to it are refused until
/// `receiver` listens on it, and no other socket (another test's server, an outgoing
/// connection's ephemeral port) can take it meanwhile.
fn reserve_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// A webhook receiver on a reserved port: records every POST and answers 200.
async fn receiver(
    socket: tokio::net::TcpSocket,
) -> (Arc<Mutex<Vec<Received>>>, tokio::task::JoinHandle<()>) {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let app = axum::Router::new().route(
        "/{*path}",
        axum::routing::post({
            let got = got.clone();
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| async move {
                got.lock().unwrap().push(Received {
                    path: uri.path().to_owned(),
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                "ok"
            }
        }),
    );
    let listener = socket.listen(1024).unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (got, task)
}

async fn put_flow(http: &reqwest::Client, d: &Drey, flow: &str, source: &str, label: &str) {
    let r = http
        .put(d.url(&format!("/flows/{flow}")))
        .json(&json!({"id": flow, "source_id": source, "label": label,
            "format": "urn:x-nmos:format:multi", "container": "video/mp2t"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "PUT flow: {}", r.status());
}

/// Registers one 2 s segment at `[i*2, i*2+2)` s with a fresh object.
async fn add_segment(http: &reqwest::Client, d: &Drey, flow: &str, i: i64) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("obj");
    std::fs::write(&file, format!("segment {i}")).unwrap();
    let ids = common::media::upload(http, d, flow, &[file.as_path()]).await;
    let r = http
        .post(d.url(&format!("/flows/{flow}/segments")))
        .json(&json!({"object_id": ids[0], "timerange": format!("[{}:0_{}:0)", i * 2, i * 2 + 2)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

async fn register(http: &reqwest::Client, d: &Drey, body: Value) -> (u16, Value) {
    let r = http
        .post(d.url("/service/webhooks"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn receiver_down_for_30s_gets_every_event_in_order(backend: Backend) {
    let Some(mut d) = Drey::start(backend, "").await else {
        return;
    };
    let http = reqwest::Client::new();
    let (reserved, port) = reserve_port();
    let started = Instant::now();
    let all = [
        "flows/created",
        "flows/updated",
        "flows/deleted",
        "flows/segments_added",
        "flows/segments_deleted",
        "sources/created",
        "sources/updated",
    ];
    let (status, hook) = register(
        &http,
        &d,
        json!({"url": format!("http://127.0.0.1:{port}/all"), "events": all,
            "api_key_name": "X-Api-Key", "api_key_value": "hook-secret"}),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    assert_eq!(hook["status"], "created");
    assert!(
        hook.get("api_key_value").is_none(),
        "the secret is never shown"
    );
    let (a, b) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let (sa, sb) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let (status, only_a) = register(
        &http,
        &d,
        json!({"url": format!("http://127.0.0.1:{port}/only-a"), "events": &all[..5], "flow_ids": [a]}),
    )
    .await;
    assert_eq!(status, 201, "{only_a}");

    // The receiver is down: write to two flows, interleaved, with a kill -9 half way.
    put_flow(&http, &d, &a, &sa, "a").await;
    put_flow(&http, &d, &b, &sb, "b").await;
    for i in 0..6 {
        add_segment(&http, &d, &a, i).await;
        add_segment(&http, &d, &b, i).await;
        if i == 2 {
            d.kill_9();
            d.restart().await;
        }
    }
    put_flow(&http, &d, &a, &sa, "a, renamed").await;
    let r = http
        .delete(d.url(&format!("/flows/{b}/segments?timerange=[0:0_4:0)")))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = http
        .delete(d.url(&format!("/flows/{a}")))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    // Down for 30 s in all; then it comes up on the same port.
    let down = Duration::from_secs(30).saturating_sub(started.elapsed());
    tokio::time::sleep(down).await;
    let (got, _server) = receiver(reserved).await;
    let want_a = [
        "flows/created",
        "flows/segments_added",
        "flows/segments_added",
        "flows/segments_added",
        "flows/segments_added",
        "flows/segments_added",
        "flows/segments_added",
        "flows/updated",
        "flows/segments_deleted",
        "flows/deleted",
    ];
    let want_b = [
        "flows/created",
        "flows/segments_added",
        "flows/segments_added",
        "flows/segments_added",
        "flows/segments_added",
        "flows/segments_added",
        "flows/segments_added",
        "flows/segments_deleted",
    ];
    let want_total = 2 + want_a.len() + want_b.len() + want_a.len();
    let deadline = Instant::now() + Duration::from_secs(120);
    while got.lock().unwrap().len() < want_total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing more arrives (no duplicates).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = got.lock().unwrap().clone();
    let mut ids = std::collections::HashSet::new();
    let mut per_flow: std::collections::HashMap<(String, String), Vec<Value>> = Default::default();
    let mut sources = Vec::new();
    for r in &got {
        let event_id = r.headers["x-drey-event-id"].to_str().unwrap().to_owned();
        assert!(
            ids.insert((r.path.clone(), event_id.clone())),
            "event {event_id} delivered twice to {}",
            r.path
        );
        let body: Value = serde_json::from_str(&r.body).unwrap();
        if r.path == "/all" {
            assert_eq!(r.headers["x-api-key"], "hook-secret");
            let ts: i64 = r.headers["x-drey-timestamp"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let mac = drey_core::sigv4::hmac(
                b"hook-secret",
                format!("{ts}.{event_id}.{}", r.body).as_bytes(),
            );
            assert_eq!(
                r.headers["x-drey-signature"].to_str().unwrap(),
                format!("sha256={}", drey_core::sigv4::hex(&mac))
            );
        } else {
            assert!(r.headers.get("x-drey-signature").is_none());
        }
        let kind = body["event_type"].as_str().unwrap().to_owned();
        if kind.starts_with("sources/") {
            assert_eq!(r.path, "/all", "sources are not flows: filtered out");
            sources.push(body["event"]["source"]["id"].as_str().unwrap().to_owned());
            continue;
        }
        let flow = body["event"]["flow_id"]
            .as_str()
            .or(body["event"]["flow"]["id"].as_str())
            .unwrap()
            .to_owned();
        per_flow
            .entry((r.path.clone(), flow))
            .or_default()
            .push(body);
    }
    sources.sort();
    let mut want_sources = vec![sa.clone(), sb.clone()];
    want_sources.sort();
    assert_eq!(sources, want_sources, "one sources/created per new source");
    let kinds = |path: &str, flow: &str| -> Vec<String> {
        per_flow
            .get(&(path.to_owned(), flow.to_owned()))
            .map(|v| {
                v.iter()
                    .map(|e| e["event_type"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(kinds("/all", &a), want_a, "flow a, in order");
    assert_eq!(kinds("/all", &b), want_b, "flow b, in order");
    assert_eq!(
        kinds("/only-a", &a),
        want_a,
        "the filtered webhook gets flow a"
    );
    assert!(kinds("/only-a", &b).is_empty(), "and nothing of flow b");
    // Segments arrive in the order they were added, with their timeranges.
    let ranges: Vec<String> = per_flow[&("/all".to_owned(), b.clone())]
        .iter()
        .filter(|e| e["event_type"] == "flows/segments_added")
        .map(|e| {
            e["event"]["segments"][0]["timerange"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let want: Vec<String> = (0..6)
        .map(|i| format!("[{}:0_{}:0)", i * 2, i * 2 + 2))
        .collect();
    assert_eq!(ranges, want);
    let deleted = per_flow[&("/all".to_owned(), b.clone())].last().unwrap();
    assert_eq!(deleted["event"]["timerange"], "[0:0_4:0)");
    assert_eq!(got.len(), want_total, "no more than the events written");
    // Delivered: the webhook is started and its outbox is empty.
    let h: Value = http
        .get(d.url(&format!(
            "/service/webhooks/{}",
            hook["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "started", "{h}");
    let _ = only_a;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_for_30s_gets_every_event_in_order_local() {
    receiver_down_for_30s_gets_every_event_in_order(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_for_30s_gets_every_event_in_order_scale() {
    receiver_down_for_30s_gets_every_event_in_order(Backend::Scale).await;
}

/// The API: registration checks (URL scheme, SSRF guard, event names, unsupported
/// filters, header names), listing without secrets, PUT (id, status rules, secret kept),
/// DELETE; `/service` announces webhooks; with anonymous access limited to reads, webhooks
/// need an administrator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_api_and_ssrf_guard() {
    let d = Drey::start_with_config("").await;
    let http = reqwest::Client::new();
    let svc: Value = http
        .get(d.url("/service"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(svc["event_stream_mechanisms"][0]["name"], "webhooks");
    for (body, field) in [
        (
            json!({"url": "http://169.254.169.254/latest/meta-data", "events": ["flows/created"]}),
            "url",
        ),
        (
            json!({"url": "http://[::ffff:169.254.169.254]/", "events": ["flows/created"]}),
            "url",
        ),
        (
            json!({"url": "http://[fe80::1]/", "events": ["flows/created"]}),
            "url",
        ),
        (
            json!({"url": "http://0.0.0.0:80/", "events": ["flows/created"]}),
            "url",
        ),
        (
            json!({"url": "ftp://127.0.0.1/", "events": ["flows/created"]}),
            "url",
        ),
        (
            json!({"url": "http://u:p@127.0.0.1/", "events": ["flows/created"]}),
            "url",
        ),
        (
            json!({"url": "not a url", "events": ["flows/created"]}),
            "url",
        ),
        (
            json!({"url": "http://127.0.0.1/", "events": ["flows/exploded"]}),
            "events",
        ),
        (json!({"url": "http://127.0.0.1/", "events": []}), "events"),
        (
            json!({"url": "http://127.0.0.1/", "events": ["flows/created"], "source_collected_by_ids": []}),
            "source_collected_by_ids",
        ),
        (
            json!({"url": "http://127.0.0.1/", "events": ["flows/created"], "accept_get_urls": ["x"]}),
            "accept_get_urls",
        ),
        (
            json!({"url": "http://127.0.0.1/", "events": ["flows/created"], "api_key_name": "bad header"}),
            "api_key_name",
        ),
        (
            json!({"url": "http://127.0.0.1/", "events": ["flows/created"], "api_key_value": "v"}),
            "api_key_name",
        ),
        (
            json!({"url": "http://127.0.0.1/", "events": ["flows/created"], "status": "started"}),
            "status",
        ),
        (json!({"events": ["flows/created"]}), "url"),
    ] {
        let (status, err) = register(&http, &d, body.clone()).await;
        assert_eq!(status, 400, "{body} -> {err}");
        assert!(
            err.to_string().contains(field),
            "{body}: the error names {field}: {err}"
        );
    }
    let (status, hook) = register(
        &http,
        &d,
        json!({"url": "http://localhost:9/x", "events": ["flows/created"],
            "api_key_name": "X-Key", "api_key_value": "s1", "tags": {"team": "ops"}}),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let id = hook["id"].as_str().unwrap().to_owned();
    let list: Value = http
        .get(d.url("/service/webhooks?tag.team=ops"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(
        !list.to_string().contains("s1"),
        "no secret in lists: {list}"
    );
    let url = d.url(&format!("/service/webhooks/{id}"));
    let r = http
        .put(&url)
        .json(
            &json!({"id": uuid::Uuid::new_v4(), "url": "http://localhost:9/x",
            "events": ["flows/created"], "status": "disabled"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "another id in the body");
    let r = http
        .put(&url)
        .json(
            &json!({"id": id, "url": "http://localhost:9/y", "api_key_name": "X-Key",
            "events": ["flows/created", "flows/deleted"], "status": "disabled"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let h: Value = r.json().await.unwrap();
    assert_eq!(
        (h["status"].as_str(), h["url"].as_str()),
        (Some("disabled"), Some("http://localhost:9/y"))
    );
    let r = http.delete(&url).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 404);
    assert_eq!(http.delete(&url).send().await.unwrap().status(), 404);

    // Reads are not enough to see or make webhooks.
    let ro = Drey::start_with_config("anonymous = \"read\"").await;
    assert_eq!(
        http.get(ro.url("/service/webhooks"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let (status, _) = register(
        &http,
        &ro,
        json!({"url": "http://127.0.0.1/", "events": ["flows/created"]}),
    )
    .await;
    assert_eq!(status, 401);
}
