//! End-to-end tests of the TAMS API: the real binary, a real HTTP client, and the real
//! backends (SQLite + local directory; PostgreSQL + Ceph RGW).

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Drey};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn video_flow(id: &str, source: &str) -> Value {
    json!({
        "id": id, "source_id": source, "format": "urn:x-nmos:format:video",
        "codec": "video/h264", "container": "video/mp2t", "label": "e2e",
        "essence_parameters": {"frame_width": 1280, "frame_height": 720, "frame_rate": {"numerator": 25}}
    })
}

struct Api {
    c: Client,
    d: Drey,
}

impl Api {
    async fn start(b: Backend, cfg: &str) -> Option<Api> {
        Some(Api {
            c: Client::new(),
            d: Drey::start(b, cfg).await?,
        })
    }

    async fn put_flow(&self, id: &str) {
        let r = self
            .c
            .put(self.d.url(&format!("/flows/{id}")))
            .json(&video_flow(id, &new_id()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
    }

    /// Allocates `n` objects, uploads `payload(i)` to each put URL, returns the ids.
    async fn upload(
        &self,
        flow: &str,
        n: usize,
        payload: impl Fn(usize) -> Vec<u8>,
    ) -> Vec<String> {
        let r = self
            .c
            .post(self.d.url(&format!("/flows/{flow}/storage")))
            .json(&json!({"limit": n}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let body: Value = r.json().await.unwrap();
        let mut ids = Vec::new();
        for (i, m) in body["media_objects"].as_array().unwrap().iter().enumerate() {
            let url = m["put_url"]["url"].as_str().unwrap();
            let ct = m["put_url"]["content-type"].as_str().unwrap();
            let r = self
                .c
                .put(url)
                .header("content-type", ct)
                .body(payload(i))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "PUT {url}: {}", r.status());
            ids.push(m["object_id"].as_str().unwrap().to_owned());
        }
        ids
    }

    async fn post_segments(&self, flow: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .c
            .post(self.d.url(&format!("/flows/{flow}/segments")))
            .json(body)
            .send()
            .await
            .unwrap();
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let r = self.c.get(self.d.url(path)).send().await.unwrap();
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}

fn seg(obj: &str, start: i64, end: i64) -> Value {
    json!({"object_id": obj, "timerange": format!("[{start}:0_{end}:0)"), "key_frame_count": 1})
}

/// The workflow a TAMS client follows: flow, storage, upload, register, read back, delete.
async fn spec_client_round_trip(b: Backend) {
    let Some(api) = Api::start(b, "").await else {
        return;
    };
    let flow = new_id();
    api.put_flow(&flow).await;
    let ids = api
        .upload(&flow, 5, |i| format!("segment {i}").into_bytes())
        .await;
    let batch: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, o)| seg(o, 10 * i as i64, 10 * i as i64 + 10))
        .collect();
    let (s, body) = api.post_segments(&flow, &Value::Array(batch)).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");

    let (s, segs) = api
        .get_json(&format!("/flows/{flow}/segments?timerange=[15:0_35:0)"))
        .await;
    assert_eq!(s, StatusCode::OK);
    let segs = segs.as_array().unwrap().clone();
    assert_eq!(
        segs.iter()
            .map(|s| s["timerange"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["[10:0_20:0)", "[20:0_30:0)", "[30:0_40:0)"]
    );
    // Every get_url returns the bytes that were uploaded.
    for (s, i) in segs.iter().zip(1..) {
        let urls = s["get_urls"].as_array().unwrap();
        assert!(!urls.is_empty());
        for u in urls {
            let body = api.c.get(u["url"].as_str().unwrap()).send().await.unwrap();
            assert_eq!(body.status(), StatusCode::OK, "{u}");
            assert_eq!(body.text().await.unwrap(), format!("segment {i}"));
        }
    }
    // The flow's extent, and the object's references.
    let (_, f) = api
        .get_json(&format!("/flows/{flow}?include_timerange=true"))
        .await;
    assert_eq!(f["timerange"], "[0:0_50:0)");
    let (s, o) = api.get_json(&format!("/objects/{}", ids[0])).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(o["referenced_by_flows"], json!([flow]));
    // Delete a range: only wholly covered segments go.
    let r = api
        .c
        .delete(
            api.d
                .url(&format!("/flows/{flow}/segments?timerange=[5:0_30:0)")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (_, left) = api.get_json(&format!("/flows/{flow}/segments")).await;
    let left: Vec<&str> = left
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["timerange"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["[0:0_10:0)", "[30:0_40:0)", "[40:0_50:0)"]);
    // Source created with the flow; listing filters.
    let (_, flows) = api
        .get_json("/flows?label=e2e&format=urn:x-nmos:format:video")
        .await;
    assert_eq!(flows.as_array().unwrap().len(), 1);
}

/// Pages follow `Link: rel=next` until the end, in order, without repeats.
async fn paging(b: Backend) {
    let Some(api) = Api::start(b, "").await else {
        return;
    };
    let flow = new_id();
    api.put_flow(&flow).await;
    let ids = api.upload(&flow, 25, |_| b"x".to_vec()).await;
    let batch: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, o)| seg(o, i as i64, i as i64 + 1))
        .collect();
    assert_eq!(
        api.post_segments(&flow, &Value::Array(batch)).await.0,
        StatusCode::CREATED
    );
    for reverse in [false, true] {
        let mut url = api.d.url(&format!(
            "/flows/{flow}/segments?limit=10&reverse_order={reverse}"
        ));
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let r = api.c.get(&url).send().await.unwrap();
            assert_eq!(r.headers()["x-paging-limit"], "10");
            let next = r.headers().get("link").map(|l| {
                l.to_str()
                    .unwrap()
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_owned()
            });
            let body: Value = r.json().await.unwrap();
            seen.extend(
                body.as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["timerange"].as_str().unwrap().to_owned()),
            );
            pages += 1;
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        assert_eq!(pages, 3);
        let mut expected: Vec<String> = (0..25).map(|i| format!("[{i}:0_{}:0)", i + 1)).collect();
        if reverse {
            expected.reverse();
        }
        assert_eq!(seen, expected);
    }
}

/// Two writers racing for overlapping ranges over HTTP: exactly one 201, one 400.
async fn racing_posts(b: Backend) {
    let Some(api) = Api::start(b, "").await else {
        return;
    };
    let flow = new_id();
    api.put_flow(&flow).await;
    let ids = api.upload(&flow, 40, |_| b"x".to_vec()).await;
    for r in 0..20 {
        let base = 100 * r as i64;
        let a = seg(&ids[2 * r], base, base + 10);
        let b = seg(&ids[2 * r + 1], base + 5, base + 15);
        let (ra, rb) = tokio::join!(api.post_segments(&flow, &a), api.post_segments(&flow, &b));
        let codes = [ra.0.as_u16(), rb.0.as_u16()];
        assert!(
            codes == [201, 400] || codes == [400, 201],
            "round {r}: {codes:?}"
        );
        let loser = if ra.0 == 400 { ra.1 } else { rb.1 };
        assert_eq!(loser["field"], "timerange", "{loser}");
    }
    let (_, segs) = api
        .get_json(&format!("/flows/{flow}/segments?limit=100"))
        .await;
    assert_eq!(segs.as_array().unwrap().len(), 20);
}

/// Malformed requests: 4xx with a JSON body naming the field; nothing stored.
async fn bad_input(b: Backend) {
    let Some(api) = Api::start(b, "").await else {
        return;
    };
    let flow = new_id();
    api.put_flow(&flow).await;
    let ids = api.upload(&flow, 2, |_| b"x".to_vec()).await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"object_id": ids[0], "timerange": "[0:0_x)"}),
            "timerange",
        ),
        (json!({"object_id": ids[0], "timerange": "_"}), "timerange"),
        (
            json!({"object_id": ids[0], "timerange": "[0:0_1:0)", "ts_offset": "1.5"}),
            "ts_offset",
        ),
        (
            json!({"object_id": "nope", "timerange": "[0:0_1:0)"}),
            "object_id",
        ),
        (
            json!({"object_id": "../etc/passwd", "timerange": "[0:0_1:0)"}),
            "object_id",
        ),
        (json!({"timerange": "[0:0_1:0)"}), "object_id"),
        (json!(["not a segment"]), "[0]"),
    ];
    for (body, field) in cases {
        let (s, e) = api.post_segments(&flow, &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {e}");
        assert_eq!(e["field"], field, "{body}: {e}");
        assert!(e["summary"].as_str().unwrap().len() > 5);
    }
    // A batch with one bad element: 200 with failed_segments; the good one is stored.
    let (s, e) = api
        .post_segments(
            &flow,
            &json!([seg(&ids[0], 0, 1), {"object_id": ids[1], "timerange": "bad"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["failed_segments"].as_array().unwrap().len(), 1);
    assert_eq!(e["failed_segments"][0]["object_id"], ids[1]);
    let (_, segs) = api.get_json(&format!("/flows/{flow}/segments")).await;
    assert_eq!(segs.as_array().unwrap().len(), 1);
    // A batch in which every segment is refused by the index: 400, all listed.
    let (s, e) = api
        .post_segments(&flow, &json!([seg(&ids[0], 0, 1), seg(&ids[0], 0, 2)]))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["failed_segments"].as_array().unwrap().len(), 2, "{e}");
    // Flow bodies.
    let mut bad_flow = video_flow(&flow, &new_id());
    bad_flow["essence_parameters"]["frame_width"] = json!("wide");
    let r = api
        .c
        .put(api.d.url(&format!("/flows/{flow}")))
        .json(&bad_flow)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let other = new_id();
    let r = api
        .c
        .put(api.d.url(&format!("/flows/{other}")))
        .json(&video_flow(&flow, &new_id()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "id");
    let r = api
        .c
        .put(api.d.url(&format!("/flows/{flow}")))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Non-UUID ids, bad query values, unknown objects.
    assert_eq!(
        api.get_json("/flows/NOT-A-UUID").await.0,
        StatusCode::NOT_FOUND
    );
    let (s, e) = api
        .get_json(&format!("/flows/{flow}/segments?reverse_order=maybe"))
        .await;
    assert_eq!(
        (s, e["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("reverse_order"))
    );
    assert_eq!(
        api.get_json("/objects/does-not-exist").await.0,
        StatusCode::NOT_FOUND
    );
    // Object ids allocated to another flow.
    let g = new_id();
    api.put_flow(&g).await;
    let (s, e) = api.post_segments(&g, &seg(&ids[1], 0, 1)).await;
    assert_eq!(
        (s, e["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("object_id")),
        "{e}"
    );
    // A flow without a container cannot take segments.
    let mut no_container = video_flow(&g, &new_id());
    no_container.as_object_mut().unwrap().remove("container");
    let h = new_id();
    no_container["id"] = json!(h);
    api.c
        .put(api.d.url(&format!("/flows/{h}")))
        .json(&no_container)
        .send()
        .await
        .unwrap();
    let (s, e) = api.post_segments(&h, &seg(&ids[1], 0, 1)).await;
    assert_eq!(
        (s, e["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("container"))
    );
    // NUL characters (which PostgreSQL cannot store) are refused, not a 500.
    let src = api.get_json(&format!("/flows/{flow}")).await.1["source_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = api
        .c
        .put(api.d.url(&format!("/sources/{src}/label")))
        .json(&"a\u{0}b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        api.get_json("/flows?label=%00").await.0,
        StatusCode::BAD_REQUEST
    );
    // Oversized bodies are refused from their declared length, before they are read.
    // (A client sending the whole body may see the connection closed under it, so this
    // speaks HTTP by hand: headers only, then the answer.)
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = api.d.base.trim_start_matches("http://").to_owned();
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /flows/{flow}/segments HTTP/1.1\r\nHost: {addr}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            40 * 1024 * 1024
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("answered without the body")
            .unwrap();
        let status = String::from_utf8_lossy(&buf[..n]);
        assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    }
    // Objects are immutable once uploaded.
    let r = api
        .c
        .put(api.d.url(&format!("/media/{}", ids[0])))
        .body("again")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
}

/// Read-only flows refuse writes with 403 until read_only is cleared.
async fn read_only(b: Backend) {
    let Some(api) = Api::start(b, "").await else {
        return;
    };
    let flow = new_id();
    api.put_flow(&flow).await;
    let ids = api.upload(&flow, 1, |_| b"x".to_vec()).await;
    let ro = |v: bool| {
        api.c
            .put(api.d.url(&format!("/flows/{flow}/read_only")))
            .json(&v)
            .send()
    };
    assert_eq!(ro(true).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(
        api.post_segments(&flow, &seg(&ids[0], 0, 1)).await.0,
        StatusCode::FORBIDDEN
    );
    let r = api
        .c
        .put(api.d.url(&format!("/flows/{flow}/label")))
        .json(&"new")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = api
        .c
        .delete(api.d.url(&format!("/flows/{flow}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = api
        .c
        .post(api.d.url(&format!("/flows/{flow}/storage")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(ro(false).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(
        api.post_segments(&flow, &seg(&ids[0], 0, 1)).await.0,
        StatusCode::CREATED
    );
}

/// Deleting segments frees their objects: the bytes disappear from the store.
async fn deleted_objects_are_collected(b: Backend) {
    let Some(api) = Api::start(b, "gc_interval_secs = 1").await else {
        return;
    };
    let (f, g) = (new_id(), new_id());
    api.put_flow(&f).await;
    api.put_flow(&g).await;
    let ids = api.upload(&f, 2, |_| b"bytes".to_vec()).await;
    assert_eq!(
        api.post_segments(&f, &json!([seg(&ids[0], 0, 1), seg(&ids[1], 1, 2)]))
            .await
            .0,
        StatusCode::CREATED
    );
    // ids[1] is also used by g: it must survive f's deletion.
    assert_eq!(
        api.post_segments(&g, &seg(&ids[1], 0, 1)).await.0,
        StatusCode::CREATED
    );
    let r = api
        .c
        .delete(api.d.url(&format!("/flows/{f}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        api.get_json(&format!("/flows/{f}")).await.0,
        StatusCode::NOT_FOUND
    );
    let media = |id: &str| api.c.get(api.d.url(&format!("/media/{id}"))).send();
    let deadline = Instant::now() + Duration::from_secs(20);
    while media(&ids[0]).await.unwrap().status() != StatusCode::NOT_FOUND {
        assert!(
            Instant::now() < deadline,
            "object was not collected: {}",
            api.d.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = media(&ids[1]).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "bytes");
    let (_, o) = api.get_json(&format!("/objects/{}", ids[1])).await;
    assert_eq!(o["referenced_by_flows"], json!([g]));
}

/// A delete that outlasts its time budget answers 202 with a delete request that finishes.
async fn slow_deletes_are_asynchronous(b: Backend) {
    let Some(api) = Api::start(b, "delete_timeout_ms = 0\ndelete_chunk = 5").await else {
        return;
    };
    let flow = new_id();
    api.put_flow(&flow).await;
    let ids = api.upload(&flow, 30, |_| b"x".to_vec()).await;
    let batch: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, o)| seg(o, i as i64, i as i64 + 1))
        .collect();
    assert_eq!(
        api.post_segments(&flow, &Value::Array(batch)).await.0,
        StatusCode::CREATED
    );
    let r = api
        .c
        .delete(api.d.url(&format!("/flows/{flow}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let req: Value = r.json().await.unwrap();
    assert_eq!(req["delete_flow"], true);
    assert_eq!(
        location,
        format!("/flow-delete-requests/{}", req["id"].as_str().unwrap())
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, st) = api.get_json(&location).await;
        assert_eq!(s, StatusCode::OK);
        if st["status"] == "done" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "delete request did not finish: {st}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        api.get_json(&format!("/flows/{flow}")).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = api.get_json("/flow-delete-requests").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

/// drey's own object URLs serve byte ranges.
async fn media_ranges(b: Backend) {
    let Some(api) = Api::start(b, "").await else {
        return;
    };
    let flow = new_id();
    api.put_flow(&flow).await;
    let ids = api.upload(&flow, 1, |_| b"0123456789".to_vec()).await;
    assert_eq!(
        api.post_segments(&flow, &seg(&ids[0], 0, 1)).await.0,
        StatusCode::CREATED
    );
    let url = api.d.url(&format!("/media/{}", ids[0]));
    let r = api
        .c
        .get(&url)
        .header("range", "bytes=2-5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], "bytes 2-5/10");
    assert_eq!(r.text().await.unwrap(), "2345");
    let r = api
        .c
        .get(&url)
        .header("range", "bytes=20-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()["content-range"], "bytes */10");
    let r = api.c.head(&url).send().await.unwrap();
    assert_eq!(r.headers()["content-length"], "10");
}

/// Flow and source properties, tags, and HEAD on every GET.
async fn properties_and_head(b: Backend) {
    let Some(api) = Api::start(b, "").await else {
        return;
    };
    let flow = new_id();
    api.put_flow(&flow).await;
    let put = |path: String, v: Value| api.c.put(api.d.url(&path)).json(&v).send();
    assert_eq!(
        put(format!("/flows/{flow}/tags/genre"), json!("news"))
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        put(format!("/flows/{flow}/max_bit_rate"), json!(5000))
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        put(format!("/flows/{flow}/description"), json!("desc"))
            .await
            .unwrap()
            .status(),
        204
    );
    let (_, f) = api.get_json(&format!("/flows/{flow}")).await;
    assert_eq!(
        (f["tags"]["genre"].as_str(), f["max_bit_rate"].as_u64()),
        (Some("news"), Some(5000))
    );
    let (_, found) = api.get_json("/flows?tag.genre=news,sport").await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    let (_, found) = api.get_json("/flows?tag_exists.genre=false").await;
    assert_eq!(found.as_array().unwrap().len(), 0);
    let src = f["source_id"].as_str().unwrap().to_owned();
    assert_eq!(
        put(format!("/sources/{src}/label"), json!("studio"))
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        api.get_json(&format!("/sources/{src}/label")).await.1,
        json!("studio")
    );
    let r = api
        .c
        .delete(api.d.url(&format!("/flows/{flow}/tags/genre")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        api.get_json(&format!("/flows/{flow}/tags/genre")).await.0,
        StatusCode::NOT_FOUND
    );
    for path in [
        "/",
        "/service",
        "/flows",
        "/sources",
        &format!("/flows/{flow}"),
        "/flow-delete-requests",
    ] {
        let r = api.c.head(api.d.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "HEAD {path}");
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let r = api.c.get(api.d.url("/metrics")).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("drey_http_requests_total"));
    let (s, doc) = api.get_json("/openapi.json").await;
    assert_eq!(
        (s, doc["info"]["version"].as_str()),
        (StatusCode::OK, Some("8.2"))
    );
}

/// Two instances sharing one PostgreSQL database and one bucket: what one writes the other
/// serves, and writers racing through different instances still get exactly one winner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_instances_share_the_store() {
    let Some(cfg) = Drey::scale_config().await else {
        return;
    };
    let a = Api {
        c: Client::new(),
        d: Drey::start_with_config(&cfg).await,
    };
    let b = Api {
        c: Client::new(),
        d: Drey::start_with_config(&cfg).await,
    };
    let flow = new_id();
    a.put_flow(&flow).await;
    let ids = a
        .upload(&flow, 20, |i| format!("object {i}").into_bytes())
        .await;
    // Registered through b, although a allocated them.
    assert_eq!(
        b.post_segments(&flow, &seg(&ids[0], 0, 10)).await.0,
        StatusCode::CREATED
    );
    for r in 1..10 {
        let base = 100 * r as i64;
        let (sa, sb) = (
            seg(&ids[2 * r], base, base + 10),
            seg(&ids[2 * r + 1], base + 5, base + 15),
        );
        let (ra, rb) = tokio::join!(a.post_segments(&flow, &sa), b.post_segments(&flow, &sb));
        let codes = [ra.0.as_u16(), rb.0.as_u16()];
        assert!(
            codes == [201, 400] || codes == [400, 201],
            "round {r}: {codes:?}"
        );
    }
    // Both instances list the same segments, and b serves bytes a stored.
    let (_, from_a) = a.get_json(&format!("/flows/{flow}/segments")).await;
    let (_, from_b) = b.get_json(&format!("/flows/{flow}/segments")).await;
    let tr = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["timerange"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(tr(&from_a), tr(&from_b));
    assert_eq!(from_b.as_array().unwrap().len(), 10);
    let first = &from_b[0]["get_urls"];
    for u in first.as_array().unwrap() {
        let body =
            b.c.get(u["url"].as_str().unwrap())
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
        assert_eq!(body, "object 0");
    }
    // A delete through b is seen by a.
    let r =
        b.c.delete(b.d.url(&format!("/flows/{flow}")))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        a.get_json(&format!("/flows/{flow}")).await.0,
        StatusCode::NOT_FOUND
    );
}

/// kill -9 while a writer allocates, uploads and registers: after a restart the store is
/// consistent: every listed segment's object serves exactly the bytes uploaded for it, no
/// segments overlap, and writing continues where it left off.
async fn crash_during_writes(b: Backend) {
    let Some(mut api) = Api::start(b, "").await else {
        return;
    };
    let flow = new_id();
    api.put_flow(&flow).await;
    let writer = {
        let (c, base, flow) = (api.c.clone(), api.d.base.clone(), flow.clone());
        tokio::spawn(async move {
            let mut t = 0i64;
            loop {
                let alloc = c
                    .post(format!("{base}/flows/{flow}/storage"))
                    .json(&json!({"limit": 4}))
                    .send()
                    .await;
                let Ok(alloc) = alloc else { return t };
                let Ok(body) = alloc.json::<Value>().await else {
                    return t;
                };
                let mut batch = Vec::new();
                for m in body["media_objects"].as_array().into_iter().flatten() {
                    let oid = m["object_id"].as_str().unwrap();
                    let put = c
                        .put(m["put_url"]["url"].as_str().unwrap())
                        .body(format!("bytes of {oid}"))
                        .send()
                        .await;
                    if put.is_err() {
                        return t;
                    }
                    batch.push(seg(oid, t, t + 1));
                    t += 1;
                }
                if c.post(format!("{base}/flows/{flow}/segments"))
                    .json(&batch)
                    .send()
                    .await
                    .is_err()
                {
                    return t;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    api.d.kill_9();
    let written = writer.await.unwrap();
    assert!(
        written > 8,
        "the writer made progress before the crash ({written})"
    );
    api.d.restart().await;

    let (s, segs) = api
        .get_json(&format!("/flows/{flow}/segments?limit=10000"))
        .await;
    assert_eq!(s, StatusCode::OK);
    let segs = segs.as_array().unwrap().clone();
    assert!(!segs.is_empty(), "committed segments survive the crash");
    let mut last_end = i64::MIN;
    for g in &segs {
        let start: i64 = g["timerange"].as_str().unwrap()[1..]
            .split(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(start >= last_end, "overlap at {g}");
        last_end = start + 1;
        let oid = g["object_id"].as_str().unwrap();
        let url = g["get_urls"][0]["url"].as_str().unwrap();
        let r = api.c.get(url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "object of {g} is readable");
        assert_eq!(
            r.text().await.unwrap(),
            format!("bytes of {oid}"),
            "whole object for {g}"
        );
    }
    // Writing resumes after the last committed segment.
    let ids = api.upload(&flow, 1, |_| b"after".to_vec()).await;
    assert_eq!(
        api.post_segments(&flow, &seg(&ids[0], last_end, last_end + 1))
            .await
            .0,
        StatusCode::CREATED
    );
    // And an allocated-but-unregistered object from before the crash is just an object
    // awaiting collection: it is not visible as a segment.
    assert_eq!(
        api.get_json(&format!("/flows/{flow}/segments?limit=10000"))
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        segs.len() + 1
    );
    let _ = &mut api;
}

both_backends! {
    crash_during_writes => super::crash_during_writes;
    spec_client_round_trip => super::spec_client_round_trip;
    paging => super::paging;
    racing_posts => super::racing_posts;
    bad_input => super::bad_input;
    read_only => super::read_only;
    deleted_objects_are_collected => super::deleted_objects_are_collected;
    slow_deletes_are_asynchronous => super::slow_deletes_are_asynchronous;
    media_ranges => super::media_ranges;
    properties_and_head => super::properties_and_head;
}
