//! Round-trips every example of the vendored TAMS 8.2 spec (`spec/tams-8.2/api/examples`)
//! through drey's serde shapes: each must parse, and re-serialise to the same JSON value.
//! This is what keeps the model in step with the spec's schemas.

use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::*;

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../spec/tams-8.2/api/examples")
}

fn load(name: &str) -> serde_json::Value {
    let path = examples_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Normalises values the spec writes in more than one equivalent way.
fn normalise(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if matches!(
                    k.as_str(),
                    "timerange"
                        | "object_timerange"
                        | "timerange_to_delete"
                        | "timerange_remaining"
                ) && let Some(s) = x.as_str()
                {
                    *x = serde_json::Value::String(
                        s.parse::<crate::TimeRange>().unwrap().to_string(),
                    );
                }
                normalise(x);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(normalise),
        _ => {}
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(name: &str) {
    let mut original = load(name);
    let parsed: T = serde_path_to_error(&original).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut back = serde_json::to_value(&parsed).unwrap();
    normalise(&mut original);
    normalise(&mut back);
    assert_eq!(back, original, "{name} did not round-trip");
}

fn serde_path_to_error<T: DeserializeOwned>(v: &serde_json::Value) -> Result<T, serde_json::Error> {
    T::deserialize(v.clone())
}

#[test]
fn flows_round_trip() {
    let dir = examples_dir();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("flow-get-200") || name == "flow-put-201.json" {
            round_trip::<Flow>(&name);
            n += 1;
        }
    }
    assert!(n >= 15, "expected the spec's flow examples, found {n}");
    let put: Flow = serde_json::from_value(load("flow-put.json")).unwrap();
    put.validate().unwrap();
    let multi: Flow = serde_json::from_value(load("flow-put-multi.json")).unwrap();
    multi.validate().unwrap();
}

#[test]
fn sources_round_trip() {
    for name in [
        "source-get-200-basic.json",
        "source-get-200-multi.json",
        "source-get-200-tags.json",
    ] {
        round_trip::<Source>(name);
    }
    round_trip::<Vec<Source>>("sources-get-200.json");
}

#[test]
fn segments_round_trip() {
    for name in [
        "flow-segments-get-200.json",
        "flow-segments-get-200-init.json",
        "flow-segments-get-200-multiple-urls.json",
        "flow-segments-get-200-object-timerange.json",
    ] {
        round_trip::<Vec<Segment>>(name);
    }
    let post: SegmentPost = serde_json::from_value(load("flow-segment-post.json")).unwrap();
    post.validate().unwrap();
}

#[test]
fn objects_storage_service_round_trip() {
    round_trip::<Object>("objects-get-200.json");
    round_trip::<Object>("objects-get-200-init.json");
    round_trip::<FlowStorage>("flow-storage-post-201.json");
    round_trip::<FlowStorage>("flow-storage-post-201-wav.json");
    round_trip::<StoragePost>("flow-storage-post.json");
    round_trip::<StoragePost>("flow-storage-post-object_ids.json");
    round_trip::<Service>("service-get-200.json");
    round_trip::<Vec<StorageBackend>>("storage-backends-get-200.json");
    round_trip::<DeletionRequest>("deletion-request-get-200.json");
    round_trip::<Vec<DeletionRequest>>("deletion-requests-get-200.json");
}

#[test]
fn flow_validation_names_the_field() {
    let mut v = load("flow-get-200-video-h264.json");
    v["essence_parameters"]
        .as_object_mut()
        .unwrap()
        .remove("frame_rate");
    let f: Flow = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(
        f.validate().unwrap_err().field,
        "essence_parameters.frame_rate"
    );
    v["essence_parameters"]["vfr"] = true.into();
    let f: Flow = serde_json::from_value(v.clone()).unwrap();
    f.validate().unwrap();
    v["essence_parameters"]["bogus"] = 1.into();
    assert!(
        serde_json::from_value::<Flow>(v.clone()).is_err(),
        "unknown essence parameter accepted"
    );
    let mut v = load("flow-get-200-video-h264.json");
    v.as_object_mut().unwrap().remove("codec");
    let f: Flow = serde_json::from_value(v).unwrap();
    assert_eq!(f.validate().unwrap_err().field, "codec");
}

#[test]
fn nul_characters_are_refused() {
    let mut v = load("flow-get-200-video-h264.json");
    v["label"] = "a\u{0}b".into();
    let f: Flow = serde_json::from_value(v).unwrap();
    assert_eq!(f.validate().unwrap_err().field, "label");
    let mut v = load("flow-get-200-video-h264.json");
    v["tags"]["x"] = "\u{0}".into();
    let f: Flow = serde_json::from_value(v).unwrap();
    assert_eq!(f.validate().unwrap_err().field, "tags.x");
}
