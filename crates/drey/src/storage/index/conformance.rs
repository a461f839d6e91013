//! The index conformance suite: each case is one async function over `&dyn Index`, and the
//! `conformance!` macro runs it against SQLite (a temporary file) and PostgreSQL (a fresh
//! database on the server named by `DREY_TEST_POSTGRES`).
#![cfg(test)]

use std::sync::Arc;

use drey_core::model::{DeletionRequest, DeletionStatus, Flow};
use drey_core::{Id, TimeRange};

use super::*;

const SEC: i64 = 1_000_000_000;

fn flow(id: Id, source: Id, label: &str) -> Flow {
    serde_json::from_value(serde_json::json!({
        "id": id, "source_id": source, "format": "urn:x-nmos:format:video",
        "codec": "video/h264", "container": "video/mp2t", "label": label,
        "essence_parameters": {"frame_width": 1920, "frame_height": 1080, "frame_rate": {"numerator": 50}}
    }))
    .unwrap()
}

fn seg(start_s: i64, end_s: i64, object: &str) -> SegmentRow {
    SegmentRow {
        key_frame_count: Some(1),
        ..SegmentRow::new(start_s * SEC, end_s * SEC, object)
    }
}

/// A flow with `n` one-second segments `[i, i+1)` on objects `"{prefix}{i}"`.
async fn flow_with_segments(ix: &dyn Index, n: i64, prefix: &str) -> Id {
    let f = Id::new_v4();
    ix.put_flow(&flow(f, Id::new_v4(), "f"), None, 1)
        .await
        .unwrap();
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    ix.allocate_objects(f, &ids, None, 1, i64::MAX)
        .await
        .unwrap();
    let stored: Vec<(String, i64)> = ids.iter().map(|i| (i.clone(), 10)).collect();
    ix.mark_objects_stored(&stored).await.unwrap();
    let batch: Vec<SegmentRow> = (0..n).map(|i| seg(i, i + 1, &ids[i as usize])).collect();
    let v = ix.register_segments(f, &batch, 2).await.unwrap();
    assert!(v.iter().all(Result::is_ok), "{v:?}");
    f
}

fn q(range: &str) -> SegmentQuery {
    SegmentQuery {
        range: range.parse().unwrap(),
        object_id: None,
        reverse: false,
        after_start_ns: None,
        limit: 1000,
    }
}

fn starts(v: &[SegmentRow]) -> Vec<i64> {
    v.iter().map(|s| s.start_ns / SEC).collect()
}

async fn check_flows_and_sources(ix: &dyn Index) {
    let (f, s) = (Id::new_v4(), Id::new_v4());
    assert_eq!(
        ix.put_flow(&flow(f, s, "a"), None, 10).await.unwrap(),
        PutFlow::Created
    );
    let got = ix.get_flow(f).await.unwrap().unwrap();
    assert_eq!(got.value.label.as_deref(), Some("a"));
    assert!(got.value.created.is_some());
    // The source was created with the flow's format and label.
    let src = ix.get_source(s).await.unwrap().unwrap();
    assert_eq!(src.value.format.urn(), "urn:x-nmos:format:video");
    assert_eq!(src.value.label.as_deref(), Some("a"));
    // Compare-and-swap: the stale version loses.
    let mut changed = got.value.clone();
    changed.label = Some("b".into());
    assert_eq!(
        ix.put_flow(&changed, Some(&got.version), 11).await.unwrap(),
        PutFlow::Updated
    );
    assert_eq!(
        ix.put_flow(&changed, Some(&got.version), 12).await.unwrap(),
        PutFlow::Conflict
    );
    // A flow of another format cannot join the source.
    let mut audio: Flow = serde_json::from_value(serde_json::json!({
        "id": Id::new_v4(), "source_id": s, "format": "urn:x-nmos:format:audio", "codec": "audio/aac",
        "essence_parameters": {"sample_rate": 48000, "channels": 2}
    }))
    .unwrap();
    assert!(matches!(
        ix.put_flow(&audio, None, 13).await.unwrap(),
        PutFlow::SourceFormatMismatch { .. }
    ));
    // Collections: a multi flow collecting two flows of other sources.
    audio.source_id = Id::new_v4();
    ix.put_flow(&audio, None, 14).await.unwrap();
    let multi: Flow = serde_json::from_value(serde_json::json!({
        "id": Id::new_v4(), "source_id": Id::new_v4(), "format": "urn:x-nmos:format:multi",
        "container": "video/mp2t", "flow_collection": [{"id": f, "role": "video"}, {"id": audio.id, "role": "audio"}]
    }))
    .unwrap();
    ix.put_flow(&multi, None, 15).await.unwrap();
    let child = ix.get_flow(f).await.unwrap().unwrap().value;
    assert_eq!(child.collected_by, Some(vec![multi.id]));
    let msrc = ix.get_source(multi.source_id).await.unwrap().unwrap().value;
    let mut members: Vec<Id> = msrc
        .source_collection
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    members.sort();
    let mut expected = vec![s, audio.source_id];
    expected.sort();
    assert_eq!(members, expected);
    assert_eq!(
        ix.get_source(s).await.unwrap().unwrap().value.collected_by,
        Some(vec![multi.source_id])
    );
    // Filters the index applies.
    let by_label = ix
        .list_flows(&FlowQuery {
            label: Some("b".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_label.iter().map(|f| f.id).collect::<Vec<_>>(), vec![f]);
    let by_size = ix
        .list_flows(&FlowQuery {
            frame_width: Some(1920),
            frame_height: Some(1080),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_size.len(), 1);
    // Source metadata updates are compare-and-swap too.
    let v = ix.get_source(s).await.unwrap().unwrap();
    let mut src = v.value.clone();
    src.description = Some("d".into());
    assert!(ix.update_source(&src, &v.version, 20).await.unwrap());
    assert!(!ix.update_source(&src, &v.version, 21).await.unwrap());
    assert_eq!(
        ix.get_source(s)
            .await
            .unwrap()
            .unwrap()
            .value
            .description
            .as_deref(),
        Some("d")
    );
    assert!(ix.delete_flow(multi.id).await.unwrap());
    assert!(!ix.delete_flow(multi.id).await.unwrap());
    assert!(
        ix.get_flow(f)
            .await
            .unwrap()
            .unwrap()
            .value
            .collected_by
            .is_none()
    );
}

async fn check_range_queries(ix: &dyn Index) {
    let f = flow_with_segments(ix, 10, "rq").await;
    let all = ix.list_segments(f, &q("_")).await.unwrap();
    assert_eq!(starts(&all), (0..10).collect::<Vec<_>>());
    // A range starting inside a segment includes that segment.
    assert_eq!(
        starts(&ix.list_segments(f, &q("[2:500000000_4:0)")).await.unwrap()),
        vec![2, 3]
    );
    // Exclusive/inclusive ends.
    assert_eq!(
        starts(&ix.list_segments(f, &q("[2:0_4:0]")).await.unwrap()),
        vec![2, 3, 4]
    );
    assert_eq!(
        starts(&ix.list_segments(f, &q("(2:0_4:0)")).await.unwrap()),
        vec![2, 3]
    );
    assert!(
        ix.list_segments(f, &q("[20:0_30:0)"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(ix.list_segments(f, &q("()")).await.unwrap().is_empty());
    // Reverse order and keyset pages.
    let mut page = q("_");
    page.reverse = true;
    page.limit = 3;
    let p1 = ix.list_segments(f, &page).await.unwrap();
    assert_eq!(starts(&p1), vec![9, 8, 7]);
    page.after_start_ns = Some(p1.last().unwrap().start_ns);
    assert_eq!(
        starts(&ix.list_segments(f, &page).await.unwrap()),
        vec![6, 5, 4]
    );
    let mut fwd = q("[3:0_");
    fwd.limit = 2;
    fwd.after_start_ns = Some(4 * SEC);
    assert_eq!(
        starts(&ix.list_segments(f, &fwd).await.unwrap()),
        vec![5, 6]
    );
    let mut by_obj = q("_");
    by_obj.object_id = Some("rq7".into());
    assert_eq!(
        starts(&ix.list_segments(f, &by_obj).await.unwrap()),
        vec![7]
    );
    // The flow's extent, whole and within a window.
    assert_eq!(
        ix.flow_timerange(f, &TimeRange::ETERNITY)
            .await
            .unwrap()
            .to_string(),
        "[0:0_10:0)"
    );
    assert_eq!(
        ix.flow_timerange(f, &"[2:500000000_4:0)".parse().unwrap())
            .await
            .unwrap()
            .to_string(),
        "[2:0_4:0)"
    );
    assert!(
        ix.flow_timerange(Id::new_v4(), &TimeRange::ETERNITY)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn check_overlap_rules(ix: &dyn Index) {
    let f = flow_with_segments(ix, 4, "ov").await;
    let ids: Vec<String> = (0..6).map(|i| format!("ov-new{i}")).collect();
    ix.allocate_objects(f, &ids, None, 1, i64::MAX)
        .await
        .unwrap();
    ix.mark_objects_stored(&ids.iter().map(|i| (i.clone(), 1)).collect::<Vec<_>>())
        .await
        .unwrap();
    let v = ix
        .register_segments(
            f,
            &[
                seg(3, 5, &ids[0]),  // overlaps [3,4)
                seg(4, 6, &ids[1]),  // fine
                seg(5, 7, &ids[2]),  // overlaps the previous one in the batch
                seg(7, 8, &ids[3]),  // fine, touching is not overlapping
                seg(-2, 0, &ids[4]), // fine, before the start
            ],
            3,
        )
        .await
        .unwrap();
    assert!(
        matches!(v[0], Err(SegmentRejection::Overlap { .. })),
        "{v:?}"
    );
    assert!(v[1].is_ok());
    assert!(
        matches!(v[2], Err(SegmentRejection::OverlapInBatch { .. })),
        "{v:?}"
    );
    assert!(v[3].is_ok() && v[4].is_ok());
    // A segment inside a stored one, and one spanning several, both overlap.
    let v = ix
        .register_segments(f, &[seg(0, 1, &ids[5]), seg(-10, 100, &ids[5])], 4)
        .await
        .unwrap();
    assert!(
        v.iter().all(|r| matches!(
            r,
            Err(SegmentRejection::Overlap { .. }) | Err(SegmentRejection::OverlapInBatch { .. })
        )),
        "{v:?}"
    );
    assert_eq!(
        starts(&ix.list_segments(f, &q("_")).await.unwrap()),
        vec![-2, 0, 1, 2, 3, 4, 7]
    );
    // Unknown flow.
    assert!(matches!(
        ix.register_segments(Id::new_v4(), &[seg(0, 1, &ids[5])], 5)
            .await,
        Err(IndexError::FlowNotFound(_))
    ));
}

async fn check_racing_writers(ix: Arc<dyn Index>) {
    // Many rounds of two writers racing for overlapping ranges: exactly one wins each time.
    let f = Id::new_v4();
    ix.put_flow(&flow(f, Id::new_v4(), "race"), None, 1)
        .await
        .unwrap();
    let rounds = 40;
    let ids: Vec<String> = (0..rounds * 2).map(|i| format!("race{i}")).collect();
    ix.allocate_objects(f, &ids, None, 1, i64::MAX)
        .await
        .unwrap();
    ix.mark_objects_stored(&ids.iter().map(|i| (i.clone(), 1)).collect::<Vec<_>>())
        .await
        .unwrap();
    for r in 0..rounds {
        let base = r * 10;
        let (a, b) = (ix.clone(), ix.clone());
        let (oa, ob) = (
            ids[(2 * r) as usize].clone(),
            ids[(2 * r + 1) as usize].clone(),
        );
        let ta =
            tokio::spawn(
                async move { a.register_segments(f, &[seg(base, base + 4, &oa)], 2).await },
            );
        let tb = tokio::spawn(async move {
            b.register_segments(f, &[seg(base + 2, base + 6, &ob)], 2)
                .await
        });
        let ra = ta.await.unwrap().unwrap().remove(0);
        let rb = tb.await.unwrap().unwrap().remove(0);
        assert!(ra.is_ok() ^ rb.is_ok(), "round {r}: {ra:?} {rb:?}");
        let loser = if ra.is_ok() { rb } else { ra };
        assert!(
            matches!(loser, Err(SegmentRejection::Overlap { .. })),
            "{loser:?}"
        );
    }
    assert_eq!(
        ix.list_segments(f, &q("_")).await.unwrap().len(),
        rounds as usize
    );
}

async fn check_object_rules(ix: &dyn Index) {
    let (f, g) = (Id::new_v4(), Id::new_v4());
    ix.put_flow(&flow(f, Id::new_v4(), "f"), None, 1)
        .await
        .unwrap();
    ix.put_flow(&flow(g, Id::new_v4(), "g"), None, 1)
        .await
        .unwrap();
    ix.allocate_objects(
        f,
        &["o1".into(), "o2".into(), "init".into()],
        Some("video/mp2t"),
        5,
        100,
    )
    .await
    .unwrap();
    assert!(matches!(
        ix.allocate_objects(g, &["o9".into(), "o1".into()], None, 5, 100).await,
        Err(IndexError::ObjectExists(id)) if id == "o1"
    ));
    assert!(
        ix.get_objects(&["o9".into()]).await.unwrap().is_empty(),
        "a failed allocation records nothing"
    );
    // Not uploaded yet: refused.
    let v = ix
        .register_segments(f, &[seg(0, 1, "o1")], 6)
        .await
        .unwrap();
    assert!(matches!(v[0], Err(SegmentRejection::ObjectNotUploaded(_))));
    // Marked stored, tables kept and registered in one transaction (the ingest path).
    ix.allocate_objects(
        f,
        &["ingest1".into(), "ingest2".into()],
        Some("video/mp2t"),
        5,
        100,
    )
    .await
    .unwrap();
    let tables = |o: &str| SampleTables {
        object_id: o.into(),
        init_object_id: String::new(),
        tables: format!("tables of {o}").into_bytes(),
    };
    // A transaction that fails keeps nothing: no tables, the object still allocated.
    assert!(matches!(
        ix.register_stored_segments(
            Id::new_v4(),
            &[("ingest2".into(), 42)],
            &[tables("ingest2")],
            &[seg(-7, -6, "ingest2")],
            6
        )
        .await,
        Err(IndexError::FlowNotFound(_))
    ));
    assert!(
        ix.get_sample_tables(&["ingest2".into()])
            .await
            .unwrap()
            .is_empty()
    );
    let o = &ix.get_objects(&["ingest2".into()]).await.unwrap()[0];
    assert_eq!(o.state, ObjectState::Allocated);
    let v = ix
        .register_stored_segments(
            f,
            &[("ingest1".into(), 42)],
            &[tables("ingest1"), tables("ghost")],
            &[seg(-5, -4, "ingest1")],
            6,
        )
        .await
        .unwrap();
    assert!(v[0].is_ok(), "{v:?}");
    let o = &ix.get_objects(&["ingest1".into()]).await.unwrap()[0];
    assert_eq!((o.state, o.size), (ObjectState::Stored, Some(42)));
    assert_eq!(
        ix.get_sample_tables(&["ingest1".into(), "ghost".into()])
            .await
            .unwrap(),
        [tables("ingest1")]
    );
    ix.mark_objects_stored(&[("o1".into(), 100), ("o2".into(), 200), ("init".into(), 5)])
        .await
        .unwrap();
    // Allocated to f and never registered: g may not use it.
    let v = ix
        .register_segments(g, &[seg(0, 1, "o2")], 6)
        .await
        .unwrap();
    assert!(matches!(
        v[0],
        Err(SegmentRejection::ObjectOfOtherFlow { .. })
    ));
    let mut with_init = seg(0, 1, "o1");
    with_init.init_object_id = Some("init".into());
    assert!(ix.register_segments(f, &[with_init], 7).await.unwrap()[0].is_ok());
    // Once registered, another flow may reference it (edit by reference)...
    assert!(
        ix.register_segments(g, &[seg(50, 51, "o1")], 8)
            .await
            .unwrap()[0]
            .is_ok()
    );
    // ...but not with different object properties, nor swap init and media roles.
    let mut kfc = seg(60, 61, "o1");
    kfc.key_frame_count = Some(7);
    assert!(matches!(
        ix.register_segments(g, &[kfc], 8).await.unwrap()[0],
        Err(SegmentRejection::ObjectPropertyDiffers { .. })
    ));
    assert!(matches!(
        ix.register_segments(f, &[seg(5, 6, "init")], 9)
            .await
            .unwrap()[0],
        Err(SegmentRejection::InitUsedAsMedia(_))
    ));
    let mut flows = ix.object_flows("o1", 10).await.unwrap();
    flows.sort();
    let mut expected = vec![f, g];
    expected.sort();
    assert_eq!(flows, expected);
    assert_eq!(ix.object_flows("init", 10).await.unwrap(), vec![f]);
    let row = ix.get_objects(&["o1".into()]).await.unwrap().remove(0);
    assert_eq!(
        (row.state, row.size, row.first_flow_id.clone()),
        (ObjectState::Stored, Some(100), Some(f.to_string()))
    );
    // Uncontrolled objects come with their URLs and need no allocation.
    let mut ext = seg(10, 11, "external-1");
    ext.external_urls = Some(vec![drey_core::model::GetUrl {
        url: "https://example.com/x.ts".into(),
        presigned: None,
        label: Some("elsewhere".into()),
        storage_id: None,
        controlled: Some(false),
        store_type: None,
        provider: None,
        region: None,
        store_product: None,
    }]);
    assert!(ix.register_segments(f, &[ext.clone()], 10).await.unwrap()[0].is_ok());
    let listed = ix.list_segments(f, &q("[10:0_11:0)")).await.unwrap();
    assert_eq!(
        listed[0].external_urls.as_ref().unwrap()[0].url,
        "https://example.com/x.ts"
    );
    // Every field of an object comes back, whichever way the backend hands rows over
    // (SQLite: one JSON value for the lot), and unknown ids are left out.
    let mut got = ix
        .get_objects(&[
            "init".into(),
            "external-1".into(),
            "o1".into(),
            "nope".into(),
        ])
        .await
        .unwrap();
    got.sort_by(|a, b| a.id.cmp(&b.id));
    let ids: Vec<&str> = got.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["external-1", "init", "o1"]);
    let (e, i, o) = (&got[0], &got[1], &got[2]);
    assert_eq!(
        (e.controlled, e.state, &e.external_urls, e.key_frame_count),
        (false, ObjectState::Stored, &ext.external_urls, Some(1))
    );
    assert_eq!(
        (i.is_init, i.size, i.controlled),
        (Some(true), Some(5), true)
    );
    assert_eq!(
        (
            o.is_init,
            o.flow_id.as_str(),
            o.key_frame_count,
            o.external_urls.is_none()
        ),
        (Some(false), f.to_string().as_str(), Some(1), true)
    );
    assert_eq!(
        (o.created_unix_ns, o.content_type.as_deref()),
        (5, Some("video/mp2t"))
    );
}

async fn check_deletion_and_gc(ix: &dyn Index) {
    let f = flow_with_segments(ix, 10, "del").await;
    // Share one object with a second flow.
    let g = Id::new_v4();
    ix.put_flow(&flow(g, Id::new_v4(), "g"), None, 1)
        .await
        .unwrap();
    assert!(
        ix.register_segments(g, &[seg(0, 1, "del3")], 3)
            .await
            .unwrap()[0]
            .is_ok()
    );
    // Only wholly covered segments go: [2.5, 6) deletes 3, 4, 5.
    let c = ix
        .delete_segments(f, &"[2:500000000_6:0)".parse().unwrap(), None, 100, 50)
        .await
        .unwrap();
    assert_eq!(
        c,
        DeleteChunk {
            deleted: 3,
            more: false
        }
    );
    assert_eq!(
        starts(&ix.list_segments(f, &q("_")).await.unwrap()),
        vec![0, 1, 2, 6, 7, 8, 9]
    );
    // Chunks: two at a time.
    let c = ix
        .delete_segments(f, &"[6:0_".parse().unwrap(), None, 2, 60)
        .await
        .unwrap();
    assert_eq!(
        c,
        DeleteChunk {
            deleted: 2,
            more: true
        }
    );
    let c = ix
        .delete_segments(f, &"[6:0_".parse().unwrap(), None, 2, 60)
        .await
        .unwrap();
    assert_eq!(
        c,
        DeleteChunk {
            deleted: 2,
            more: false
        }
    );
    // del4, del5 (and del6..9) are due; del3 is still used by g.
    let claimed = ix.claim_gc_candidates(100, 100).await.unwrap();
    let mut ids: Vec<String> = claimed.iter().map(|o| o.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["del4", "del5", "del6", "del7", "del8", "del9"]);
    assert!(claimed.iter().all(|o| o.state == ObjectState::Deleting));
    // A claimed object can no longer be referenced.
    let v = ix
        .register_segments(f, &[seg(4, 5, "del4")], 101)
        .await
        .unwrap();
    assert!(matches!(v[0], Err(SegmentRejection::ObjectBeingDeleted(_))));
    for id in &ids {
        ix.forget_object(id).await.unwrap();
    }
    assert!(ix.get_objects(&ids).await.unwrap().is_empty());
    // del3 goes once g lets go of it too.
    ix.delete_segments(g, &TimeRange::ETERNITY, None, 100, 200)
        .await
        .unwrap();
    let claimed = ix.claim_gc_candidates(300, 100).await.unwrap();
    assert_eq!(
        claimed.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        ["del3"]
    );
    // Unregistered allocations are due after their time, not before.
    ix.allocate_objects(f, &["late".into()], None, 1000, 5000)
        .await
        .unwrap();
    assert!(
        ix.claim_gc_candidates(4999, 100)
            .await
            .unwrap()
            .iter()
            .all(|o| o.id != "late")
    );
    assert!(
        ix.claim_gc_candidates(5000, 100)
            .await
            .unwrap()
            .iter()
            .any(|o| o.id == "late")
    );
    // A flow whose segments are gone can be deleted.
    ix.delete_segments(f, &TimeRange::ETERNITY, None, 100, 400)
        .await
        .unwrap();
    assert!(ix.delete_flow(f).await.unwrap());
}

async fn check_sample_tables(ix: &dyn Index) {
    let f = flow_with_segments(ix, 3, "tab").await;
    let row = |o: &str, i: &str, t: &[u8]| SampleTables {
        object_id: o.into(),
        init_object_id: i.into(),
        tables: t.to_vec(),
    };
    let get = async |ids: &[&str]| {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let mut v = ix.get_sample_tables(&ids).await.unwrap();
        v.sort_by(|a, b| (&a.object_id, &a.init_object_id).cmp(&(&b.object_id, &b.init_object_id)));
        v
    };
    assert!(get(&["tab0"]).await.is_empty());
    // Every byte value survives; a row for an object the index does not hold is skipped.
    let all: Vec<u8> = (0..=255).collect();
    ix.put_sample_tables(&[
        row("tab0", "", &all),
        row("tab1", "tab2", b"fmp4"),
        row("tab1", "", &[]),
        row("ghost", "", b"x"),
    ])
    .await
    .unwrap();
    assert_eq!(
        get(&["tab0", "tab1", "ghost"]).await,
        [
            row("tab0", "", &all),
            row("tab1", "", &[]),
            row("tab1", "tab2", b"fmp4")
        ]
    );
    // Replacing, and the same key twice in one batch: the last one wins.
    ix.put_sample_tables(&[row("tab0", "", b"old"), row("tab0", "", b"new")])
        .await
        .unwrap();
    assert_eq!(get(&["tab0"]).await, [row("tab0", "", b"new")]);
    // One row at a time (ingest's case): the same rules.
    ix.put_sample_tables(&[row("tab0", "", &all)])
        .await
        .unwrap();
    ix.put_sample_tables(&[row("ghost", "", b"x")])
        .await
        .unwrap();
    assert_eq!(get(&["tab0", "ghost"]).await, [row("tab0", "", &all)]);
    ix.put_sample_tables(&[]).await.unwrap();
    // The tables go with their object.
    ix.delete_segments(f, &TimeRange::ETERNITY, None, 100, 10)
        .await
        .unwrap();
    for o in ix.claim_gc_candidates(20, 100).await.unwrap() {
        ix.forget_object(&o.id).await.unwrap();
    }
    assert!(get(&["tab0", "tab1"]).await.is_empty());
}

async fn check_delete_requests(ix: &dyn Index) {
    let mut r = DeletionRequest {
        id: Id::new_v4(),
        flow_id: Id::new_v4(),
        timerange_to_delete: TimeRange::ETERNITY,
        timerange_remaining: None,
        delete_flow: true,
        created: None,
        created_by: None,
        updated: None,
        expiry: None,
        status: DeletionStatus::Started,
        error: None,
    };
    ix.put_delete_request(&r, 1000).await.unwrap();
    assert_eq!(ix.get_delete_request(r.id).await.unwrap().unwrap(), r);
    // Leased until 1000: not claimable before.
    assert!(ix.claim_delete_request(999, 2000).await.unwrap().is_none());
    assert_eq!(
        ix.claim_delete_request(1000, 2000)
            .await
            .unwrap()
            .map(|x| x.id),
        Some(r.id)
    );
    assert!(
        ix.claim_delete_request(1500, 3000).await.unwrap().is_none(),
        "lease extended"
    );
    r.status = DeletionStatus::Done;
    ix.put_delete_request(&r, 0).await.unwrap();
    assert!(
        ix.claim_delete_request(i64::MAX, 0)
            .await
            .unwrap()
            .is_none(),
        "done requests are not claimed"
    );
    assert_eq!(ix.list_delete_requests().await.unwrap().len(), 1);
    ix.set_meta("k", "v1").await.unwrap();
    ix.set_meta("k", "v2").await.unwrap();
    assert_eq!(ix.get_meta("k").await.unwrap().as_deref(), Some("v2"));
    ix.set_meta("p/b", "2").await.unwrap();
    ix.set_meta("p/a", "1").await.unwrap();
    ix.set_meta("q/a", "3").await.unwrap();
    assert_eq!(
        ix.list_meta("p/").await.unwrap(),
        vec![
            ("p/a".to_owned(), "1".to_owned()),
            ("p/b".to_owned(), "2".to_owned())
        ]
    );
    assert!(ix.list_meta("zz").await.unwrap().is_empty());
}

/// HLS numbering: `seq` counts registrations, `disc` changes exactly where a segment does
/// not continue its predecessor (gap, other ts_offset, other init object), and neither goes
/// back when old segments are deleted.
async fn check_hls_numbering(ix: &dyn Index) {
    let f = flow_with_segments(ix, 3, "hls-a-").await; // [0,1) [1,2) [2,3)
    let store = |ids: &[&str]| {
        let ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        async move {
            ix.allocate_objects(f, &ids, None, 1, i64::MAX)
                .await
                .unwrap();
            let st: Vec<(String, i64)> = ids.iter().map(|i| (i.clone(), 1)).collect();
            ix.mark_objects_stored(&st).await.unwrap();
        }
    };
    store(&["hls-b0", "hls-b1", "hls-b2", "hls-b3", "hls-b4", "hls-b5"]).await;
    // A gap, then contiguous; then a ts_offset change without a gap; then a batch that
    // fills the gap and appends in one go, given out of time order.
    let mut shifted = seg(7, 8, "hls-b2");
    shifted.ts_offset_ns = Some(5 * SEC);
    let batches = vec![
        vec![seg(5, 6, "hls-b0")],
        vec![seg(6, 7, "hls-b1")],
        vec![shifted],
        vec![seg(9, 10, "hls-b4"), seg(3, 4, "hls-b3")],
    ];
    for b in batches {
        let v = ix.register_segments(f, &b, 2).await.unwrap();
        assert!(v.iter().all(Result::is_ok), "{v:?}");
    }
    let all = ix.list_segments(f, &q("_")).await.unwrap();
    let got: Vec<(i64, i64, i64)> = all
        .iter()
        .map(|s| (s.start_ns / SEC, s.seq, s.disc))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 0, 0),
            (1, 1, 0),
            (2, 2, 0),
            (3, 6, 0), // registered later, continues [2,3)
            (5, 3, 1),
            (6, 4, 1),
            (7, 5, 2),
            (9, 7, 3),
        ],
        "seq/disc of {got:?}"
    );
    // Deleting the oldest segments keeps the counters going.
    ix.delete_segments(f, &"[0:0_3:0)".parse().unwrap(), None, 100, 3)
        .await
        .unwrap();
    let v = ix
        .register_segments(f, &[seg(10, 11, "hls-b5")], 4)
        .await
        .unwrap();
    assert!(v.iter().all(Result::is_ok), "{v:?}");
    let last = ix.list_segments(f, &q("[10:0_")).await.unwrap();
    assert_eq!((last[0].seq, last[0].disc), (8, 3), "continues [9,10)");
}

/// The webhook outbox: per-webhook order, acknowledgement up to a position, counts,
/// leases held by one owner at a time until they expire, and forgetting a webhook.
async fn check_webhook_outbox(ix: &dyn Index) {
    use super::OutboxRow;
    let (h1, h2) = (Id::new_v4().to_string(), Id::new_v4().to_string());
    let row = |hook: &str, n: i64| OutboxRow {
        seq: 0,
        webhook_id: hook.to_owned(),
        event_id: format!("e{n}"),
        body: format!("{{\"n\":{n}}}"),
        created_unix_ns: n,
    };
    let rows: Vec<OutboxRow> = (0..5).flat_map(|n| [row(&h1, n), row(&h2, n)]).collect();
    ix.enqueue_webhook_events(&rows).await.unwrap();
    let p = ix.pending_webhook_events(&h1, 3).await.unwrap();
    assert_eq!(
        p.iter().map(|r| r.event_id.as_str()).collect::<Vec<_>>(),
        ["e0", "e1", "e2"]
    );
    assert!(p.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(ix.ack_webhook_events(&h1, p[1].seq).await.unwrap(), 2);
    assert_eq!(ix.count_webhook_events(&h1).await.unwrap(), 3);
    assert_eq!(
        ix.count_webhook_events(&h2).await.unwrap(),
        5,
        "other hooks untouched"
    );
    assert_eq!(
        ix.pending_webhook_events(&h1, 10).await.unwrap()[0].event_id,
        "e2"
    );
    // Leases: one owner until expiry; the owner renews.
    assert!(ix.claim_webhook_lease(&h1, "a", 100, 200).await.unwrap());
    assert!(!ix.claim_webhook_lease(&h1, "b", 150, 250).await.unwrap());
    assert!(ix.claim_webhook_lease(&h1, "a", 150, 300).await.unwrap());
    assert!(!ix.claim_webhook_lease(&h1, "b", 299, 400).await.unwrap());
    assert!(ix.claim_webhook_lease(&h1, "b", 300, 400).await.unwrap());
    ix.set_meta(&format!("webhook/{h1}"), "{}").await.unwrap();
    ix.forget_webhook(&h1, &format!("webhook/{h1}"))
        .await
        .unwrap();
    assert_eq!(ix.count_webhook_events(&h1).await.unwrap(), 0);
    assert_eq!(ix.get_meta(&format!("webhook/{h1}")).await.unwrap(), None);
    assert!(
        ix.claim_webhook_lease(&h1, "c", 0, 1).await.unwrap(),
        "lease gone too"
    );
}

/// Writer jobs: created once (a second create answers the first spec), chunks claimed
/// once each until their lease expires, finished only by their holder.
/// Two allocated 7-byte grains `{prefix}0`, `{prefix}1` at [1000 s, 1002 s) of `flow`: their
/// ids, their (id, size) as stored and their segment rows.
async fn two_grains(
    ix: &dyn Index,
    flow: Id,
    prefix: &str,
) -> (Vec<String>, Vec<(String, i64)>, [SegmentRow; 2]) {
    let ids: Vec<String> = (0..2).map(|i| format!("{prefix}{i}")).collect();
    ix.allocate_objects(flow, &ids, None, 10, i64::MAX)
        .await
        .unwrap();
    let stored = ids.iter().map(|i| (i.clone(), 7)).collect();
    let rows = [seg(1000, 1001, &ids[0]), seg(1001, 1002, &ids[1])];
    (ids, stored, rows)
}

async fn check_jobs(ix: &dyn Index) {
    let (job, flow) = (Id::new_v4().to_string(), Id::new_v4());
    let (f, spec) = ix
        .create_job(&job, flow, "spec-1", Some(3), 1)
        .await
        .unwrap();
    assert_eq!((f, spec.as_str()), (flow, "spec-1"));
    let (f, spec) = ix
        .create_job(&job, Id::new_v4(), "spec-2", Some(9), 2)
        .await
        .unwrap();
    assert_eq!((f, spec.as_str()), (flow, "spec-1"), "the first job stays");
    assert_eq!(
        ix.job_progress(&job).await.unwrap(),
        Some(JobProgress {
            done: 0,
            chunks: 3,
            ended: true
        })
    );
    assert_eq!(
        ix.claim_job_chunk(&job, "a", 10, 100).await.unwrap(),
        Some(0)
    );
    assert_eq!(
        ix.claim_job_chunk(&job, "b", 10, 100).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        ix.claim_job_chunk(&job, "a", 10, 100).await.unwrap(),
        Some(2)
    );
    assert_eq!(
        ix.claim_job_chunk(&job, "b", 50, 150).await.unwrap(),
        None,
        "all leased"
    );
    assert!(ix.finish_job_chunk(&job, 0, "a", 20).await.unwrap());
    assert!(
        !ix.finish_job_chunk(&job, 1, "a", 20).await.unwrap(),
        "not a's chunk"
    );
    // b died: its chunk is claimed again once the lease passes; b can no longer finish it.
    assert_eq!(
        ix.claim_job_chunk(&job, "c", 100, 200).await.unwrap(),
        Some(1)
    );
    assert!(!ix.finish_job_chunk(&job, 1, "b", 120).await.unwrap());
    assert!(ix.finish_job_chunk(&job, 1, "c", 120).await.unwrap());
    assert_eq!(
        ix.job_progress(&job).await.unwrap(),
        Some(JobProgress {
            done: 2,
            chunks: 3,
            ended: true
        })
    );
    assert_eq!(ix.job_progress("no-such-job").await.unwrap(), None);
    // Ranged claims (a stream receiver's window) and pending counts.
    assert_eq!(ix.pending_job_chunks(&job, 0, 2).await.unwrap(), 1);
    assert_eq!(
        ix.claim_job_chunk_in(&job, "d", 300, 400, 0, 1)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        ix.claim_job_chunk_in(&job, "d", 300, 400, 2, 2)
            .await
            .unwrap(),
        Some(2)
    );
    // Many chunks are made in one statement.
    let big = Id::new_v4().to_string();
    ix.create_job(&big, flow, "s", Some(20_000), 1)
        .await
        .unwrap();
    assert_eq!(
        ix.job_progress(&big).await.unwrap(),
        Some(JobProgress {
            done: 0,
            chunks: 20_000,
            ended: true
        })
    );
    // An open job (a live stream): chunks appear as receivers add what they hold, the
    // end once one says it; adding again changes nothing, and the end is set once.
    let open = Id::new_v4().to_string();
    ix.create_job(&open, flow, "live", None, 1).await.unwrap();
    assert_eq!(
        ix.job_progress(&open).await.unwrap(),
        Some(JobProgress {
            done: 0,
            chunks: 0,
            ended: false
        })
    );
    assert_eq!(ix.claim_job_chunk(&open, "a", 10, 100).await.unwrap(), None);
    ix.add_job_chunks(&open, 5, 7).await.unwrap();
    assert_eq!(
        ix.claim_job_chunk(&open, "a", 10, 100).await.unwrap(),
        Some(5)
    );
    assert!(ix.finish_job_chunk(&open, 5, "a", 20).await.unwrap());
    ix.add_job_chunks(&open, 4, 8).await.unwrap();
    assert_eq!(
        ix.pending_job_chunks(&open, 0, 100).await.unwrap(),
        4,
        "4, 6, 7, 8"
    );
    assert_eq!(
        ix.job_progress(&open).await.unwrap(),
        Some(JobProgress {
            done: 1,
            chunks: 5,
            ended: false
        })
    );
    ix.end_job(&open, 9).await.unwrap();
    ix.end_job(&open, 50).await.unwrap();
    // Chunks 0-3 were held by no receiver: not the job's (a gap in the flow).
    let p = ix.job_progress(&open).await.unwrap().unwrap();
    assert_eq!(
        p,
        JobProgress {
            done: 1,
            chunks: 5,
            ended: true
        }
    );
    assert!(!p.finished());
    ix.add_job_chunks("no-such-job", 0, 3).await.unwrap();
    assert_eq!(ix.job_progress("no-such-job").await.unwrap(), None);

    // A writer's chunk: its grains registered and the chunk done in one transaction; a
    // writer whose lease passed on still registers (the index refuses what was stored
    // twice) but does not finish the chunk.
    let reg = Id::new_v4().to_string();
    ix.put_flow(&self::flow(flow, Id::new_v4(), "jobs"), None, 1)
        .await
        .unwrap();
    ix.create_job(&reg, flow, "reg", Some(2), 1).await.unwrap();
    assert_eq!(
        ix.claim_job_chunk(&reg, "a", 10, 100).await.unwrap(),
        Some(0)
    );
    let (ids, stored, rows) = two_grains(ix, flow, &format!("{reg}/g")).await;
    let chunk = JobChunk {
        job: &reg,
        chunk: 0,
        owner: "a",
    };
    let (v, held) = ix
        .register_job_chunk(flow, &stored, &rows, &chunk, 20)
        .await
        .unwrap();
    assert!(held && v.iter().all(|r| r.is_ok()), "{v:?}");
    let objects = ix.get_objects(&ids).await.unwrap();
    assert!(
        objects
            .iter()
            .all(|o| o.state == ObjectState::Stored && o.size == Some(7))
    );
    assert_eq!(ix.job_progress(&reg).await.unwrap().unwrap().done, 1);
    // The same grains again from a writer that does not hold chunk 0: refused, not done.
    let (_, stored, rows) = two_grains(ix, flow, &format!("{reg}/late")).await;
    let not_held = JobChunk {
        job: &reg,
        chunk: 1,
        owner: "b",
    };
    let (v, held) = ix
        .register_job_chunk(flow, &stored, &rows, &not_held, 30)
        .await
        .unwrap();
    assert!(!held);
    assert!(
        v.iter()
            .all(|r| matches!(r, Err(SegmentRejection::Overlap { .. }))),
        "{v:?}"
    );
    assert_eq!(ix.job_progress(&reg).await.unwrap().unwrap().done, 1);
}

async fn sqlite() -> (Arc<dyn Index>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("index.db").display());
    (Arc::new(SqliteIndex::open(&url).await.unwrap()), dir)
}

async fn postgres() -> Option<Arc<dyn Index>> {
    let url = crate::testing::postgres_url().await?;
    Some(Arc::new(PgIndex::open(&url).await.unwrap()))
}

macro_rules! conformance {
    ($($name:ident: |$ix:ident| $body:expr;)*) => {
        mod sqlite_index {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let ($ix, _dir) = sqlite().await;
                    $body;
                }
            )*
        }
        mod postgres_index {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some($ix) = postgres().await else { return };
                    $body;
                }
            )*
        }
    };
}

conformance! {
    flows_and_sources: |ix| check_flows_and_sources(ix.as_ref()).await;
    range_queries: |ix| check_range_queries(ix.as_ref()).await;
    overlap_rules: |ix| check_overlap_rules(ix.as_ref()).await;
    racing_writers: |ix| check_racing_writers(ix.clone()).await;
    object_rules: |ix| check_object_rules(ix.as_ref()).await;
    deletion_and_gc: |ix| check_deletion_and_gc(ix.as_ref()).await;
    delete_requests: |ix| check_delete_requests(ix.as_ref()).await;
    sample_tables: |ix| check_sample_tables(ix.as_ref()).await;
    hls_numbering: |ix| check_hls_numbering(ix.as_ref()).await;
    webhook_outbox: |ix| check_webhook_outbox(ix.as_ref()).await;
    jobs: |ix| check_jobs(ix.as_ref()).await;
}
