//! The database-independent half of segment registration: which segments of a batch may be
//! stored, given the object rows they reference. Runs inside the index's write
//! transaction, after the rows are locked, so its decisions cannot go stale.

use std::collections::HashMap;

use drey_core::TimeRange;
use drey_core::model::{GetUrl, SegmentPost};

use super::{ObjectRow, ObjectState};

/// A segment row, as registered and as listed: times in nanoseconds, half-open.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRow {
    pub start_ns: i64,
    pub end_ns: i64,
    pub object_id: String,
    pub init_object_id: Option<String>,
    pub ts_offset_ns: Option<i64>,
    pub last_duration_ns: Option<i64>,
    pub object_start_ns: Option<i64>,
    pub object_end_ns: Option<i64>,
    pub sample_offset: Option<i64>,
    pub sample_count: Option<i64>,
    pub key_frame_count: Option<i64>,
    /// For objects held outside drey's storage: where to read them.
    pub external_urls: Option<Vec<GetUrl>>,
    /// Registration ordinal in the flow (HLS media sequence number); set by the index,
    /// ignored on registration.
    pub seq: i64,
    /// Discontinuity ordinal: equal to the predecessor's when this segment continues it
    /// (same end/start, `ts_offset` and init object); set by the index.
    pub disc: i64,
}

/// The predecessor of a segment being registered, as far as numbering needs it.
#[derive(Debug, Clone)]
pub(crate) struct Pred {
    pub end_ns: i64,
    pub ts_offset_ns: Option<i64>,
    pub init_object_id: Option<String>,
    pub disc: i64,
}

impl Pred {
    pub(crate) fn of(s: &SegmentRow, disc: i64) -> Self {
        Pred {
            end_ns: s.end_ns,
            ts_offset_ns: s.ts_offset_ns,
            init_object_id: s.init_object_id.clone(),
            disc,
        }
    }

    /// True when `s` plays straight on from this one: no gap, same media timeline, same
    /// initialisation.
    pub(crate) fn continued_by(&self, s: &SegmentRow) -> bool {
        self.end_ns == s.start_ns
            && self.ts_offset_ns == s.ts_offset_ns
            && self.init_object_id == s.init_object_id
    }
}

impl SegmentRow {
    /// A segment of `object_id` over `[start_ns, end_ns)` with nothing else set (the
    /// optional fields empty; `seq` and `disc` are the index's to set).
    pub fn new(start_ns: i64, end_ns: i64, object_id: impl Into<String>) -> Self {
        SegmentRow {
            start_ns,
            end_ns,
            object_id: object_id.into(),
            init_object_id: None,
            ts_offset_ns: None,
            last_duration_ns: None,
            object_start_ns: None,
            object_end_ns: None,
            sample_offset: None,
            sample_count: None,
            key_frame_count: None,
            external_urls: None,
            seq: 0,
            disc: 0,
        }
    }

    /// The object's own timeline span: as registered, or (when `derive`) the segment's
    /// timerange shifted back by its `ts_offset`.
    pub fn object_timerange(&self, derive: bool) -> Option<drey_core::TimeRange> {
        match (self.object_start_ns, self.object_end_ns) {
            (Some(a), Some(b)) => Some(drey_core::TimeRange::from_nanos(a, b)),
            _ if derive => {
                let off = self.ts_offset_ns.unwrap_or(0);
                Some(drey_core::TimeRange::from_nanos(
                    self.start_ns.saturating_sub(off),
                    self.end_ns.saturating_sub(off),
                ))
            }
            _ => None,
        }
    }

    /// From a validated POST body (`SegmentPost::validate` passed, so ranges are bounded).
    pub fn from_post(p: &SegmentPost) -> Self {
        SegmentRow {
            start_ns: p.timerange.start_nanos().unwrap_or(0),
            end_ns: p.timerange.end_nanos().unwrap_or(0),
            object_id: p.object_id.clone(),
            init_object_id: p.init_object_id.clone(),
            ts_offset_ns: p.ts_offset.map(|t| t.as_nanos()),
            last_duration_ns: p.last_duration.map(|t| t.as_nanos()),
            object_start_ns: p.object_timerange.and_then(|r| r.start_nanos()),
            object_end_ns: p.object_timerange.and_then(|r| r.end_nanos()),
            sample_offset: p.sample_offset,
            sample_count: p.sample_count,
            key_frame_count: p.key_frame_count,
            external_urls: p.get_urls.as_ref().map(|urls| {
                urls.iter()
                    .map(|u| GetUrl {
                        url: u.url.clone(),
                        presigned: None,
                        label: Some(u.label.clone()),
                        storage_id: None,
                        controlled: Some(false),
                        store_type: None,
                        provider: None,
                        region: None,
                        store_product: None,
                    })
                    .collect()
            }),
            seq: 0,
            disc: 0,
        }
    }

    pub fn timerange(&self) -> TimeRange {
        TimeRange::from_nanos(self.start_ns, self.end_ns)
    }
}

/// Why one segment of a batch was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentRejection {
    #[error("timerange {timerange} overlaps a segment already in the flow")]
    Overlap { timerange: String },
    #[error("timerange {timerange} overlaps another segment of the same request")]
    OverlapInBatch { timerange: String },
    #[error(
        "object {0:?} is unknown: allocate it with POST /flows/{{flowId}}/storage, or give get_urls for an object held elsewhere"
    )]
    ObjectUnknown(String),
    #[error("object {0:?} has no bytes in the object store yet: upload it to its put_url first")]
    ObjectNotUploaded(String),
    #[error(
        "object {object_id:?} was allocated to flow {flow_id} and has not been registered there"
    )]
    ObjectOfOtherFlow { object_id: String, flow_id: String },
    #[error("object {0:?} is being garbage-collected")]
    ObjectBeingDeleted(String),
    #[error("object {0:?} is an init object and cannot be used as a media object")]
    InitUsedAsMedia(String),
    #[error("object {0:?} is a media object and cannot be used as an init object")]
    MediaUsedAsInit(String),
    #[error("object {object_id:?} already has {property} {existing}, the request says {given}")]
    ObjectPropertyDiffers {
        object_id: String,
        property: &'static str,
        existing: String,
        given: String,
    },
}

impl SegmentRejection {
    /// The request field the rejection is about.
    pub fn field(&self) -> &'static str {
        match self {
            SegmentRejection::Overlap { .. } | SegmentRejection::OverlapInBatch { .. } => {
                "timerange"
            }
            SegmentRejection::MediaUsedAsInit(_) => "init_object_id",
            SegmentRejection::ObjectPropertyDiffers { property, .. } => property,
            _ => "object_id",
        }
    }
}

/// Decides, for each segment of a batch in input order, whether it may be stored as far as
/// the objects it references are concerned. Overlap with stored segments is then checked by
/// the database, and last [`reject_batch_overlaps`] settles overlaps inside the batch.
pub(crate) fn check_batch(
    flow_id: &str,
    segments: &[SegmentRow],
    objects: &HashMap<String, ObjectRow>,
) -> Vec<Option<SegmentRejection>> {
    let mut verdicts: Vec<Option<SegmentRejection>> = segments
        .iter()
        .map(|s| check_objects(flow_id, s, objects).err())
        .collect();

    // Objects used as media and as init within this batch.
    let mut role: HashMap<&str, bool> = HashMap::new();
    for (i, s) in segments.iter().enumerate() {
        if verdicts[i].is_some() {
            continue;
        }
        if role.get(s.object_id.as_str()) == Some(&true) {
            verdicts[i] = Some(SegmentRejection::InitUsedAsMedia(s.object_id.clone()));
            continue;
        }
        if let Some(init) = &s.init_object_id
            && role.get(init.as_str()) == Some(&false)
        {
            verdicts[i] = Some(SegmentRejection::MediaUsedAsInit(init.clone()));
            continue;
        }
        role.insert(&s.object_id, false);
        if let Some(init) = &s.init_object_id {
            role.insert(init, true);
        }
    }

    verdicts
}

/// Among the segments still accepted, rejects those overlapping an earlier one (in input
/// order) of the same batch.
pub(crate) fn reject_batch_overlaps(
    segments: &[SegmentRow],
    verdicts: &mut [Option<SegmentRejection>],
) {
    let mut order: Vec<usize> = (0..segments.len())
        .filter(|&i| verdicts[i].is_none())
        .collect();
    order.sort_by_key(|&i| (segments[i].start_ns, i));
    let mut kept: Vec<usize> = Vec::with_capacity(order.len());
    for i in order {
        if let Some(&prev) = kept.last()
            && segments[prev].end_ns > segments[i].start_ns
        {
            let loser = prev.max(i);
            verdicts[loser] = Some(SegmentRejection::OverlapInBatch {
                timerange: segments[loser].timerange().to_string(),
            });
            if loser == prev {
                kept.pop();
                kept.push(i);
            }
            continue;
        }
        kept.push(i);
    }
}

fn check_objects(
    flow_id: &str,
    s: &SegmentRow,
    objects: &HashMap<String, ObjectRow>,
) -> Result<(), SegmentRejection> {
    match objects.get(&s.object_id) {
        None if s.external_urls.is_some() => {}
        None => return Err(SegmentRejection::ObjectUnknown(s.object_id.clone())),
        Some(o) => {
            usable(flow_id, o)?;
            if o.is_init == Some(true) {
                return Err(SegmentRejection::InitUsedAsMedia(o.id.clone()));
            }
            if let (Some(a), Some(b)) = (o.key_frame_count, s.key_frame_count)
                && a != b
            {
                return Err(SegmentRejection::ObjectPropertyDiffers {
                    object_id: o.id.clone(),
                    property: "key_frame_count",
                    existing: a.to_string(),
                    given: b.to_string(),
                });
            }
            if let (Some(os), Some(oe), Some(ss), Some(se)) = (
                o.object_start_ns,
                o.object_end_ns,
                s.object_start_ns,
                s.object_end_ns,
            ) && (os, oe) != (ss, se)
            {
                return Err(SegmentRejection::ObjectPropertyDiffers {
                    object_id: o.id.clone(),
                    property: "object_timerange",
                    existing: TimeRange::from_nanos(os, oe).to_string(),
                    given: TimeRange::from_nanos(ss, se).to_string(),
                });
            }
        }
    }
    if let Some(init) = &s.init_object_id {
        let o = objects
            .get(init)
            .ok_or_else(|| SegmentRejection::ObjectUnknown(init.clone()))?;
        usable(flow_id, o)?;
        if o.is_init == Some(false) {
            return Err(SegmentRejection::MediaUsedAsInit(init.clone()));
        }
    }
    Ok(())
}

fn usable(flow_id: &str, o: &ObjectRow) -> Result<(), SegmentRejection> {
    match o.state {
        ObjectState::Deleting => Err(SegmentRejection::ObjectBeingDeleted(o.id.clone())),
        ObjectState::Allocated => Err(SegmentRejection::ObjectNotUploaded(o.id.clone())),
        ObjectState::Stored if o.first_flow_id.is_none() && o.flow_id != flow_id => {
            Err(SegmentRejection::ObjectOfOtherFlow {
                object_id: o.id.clone(),
                flow_id: o.flow_id.clone(),
            })
        }
        ObjectState::Stored => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: i64, end: i64, obj: &str) -> SegmentRow {
        SegmentRow::new(start, end, obj)
    }

    fn obj(id: &str, flow: &str, state: ObjectState) -> ObjectRow {
        ObjectRow {
            id: id.into(),
            flow_id: flow.into(),
            state,
            controlled: true,
            created_unix_ns: 0,
            size: Some(1),
            content_type: None,
            is_init: None,
            first_flow_id: None,
            key_frame_count: None,
            object_start_ns: None,
            object_end_ns: None,
            external_urls: None,
        }
    }

    #[test]
    fn batch_rules() {
        let objects: HashMap<String, ObjectRow> = [
            obj("a", "f", ObjectState::Stored),
            obj("b", "f", ObjectState::Stored),
            obj("c", "other", ObjectState::Stored),
            obj("d", "f", ObjectState::Allocated),
            obj("e", "f", ObjectState::Deleting),
        ]
        .into_iter()
        .map(|o| (o.id.clone(), o))
        .collect();
        let batch = [
            seg(10, 20, "a"),
            seg(15, 25, "b"), // overlaps the first: later one loses
            seg(0, 10, "b"),
            seg(30, 40, "c"),
            seg(40, 50, "d"),
            seg(50, 60, "e"),
            seg(60, 70, "zz"),
        ];
        let mut v = check_batch("f", &batch, &objects);
        reject_batch_overlaps(&batch, &mut v);
        assert_eq!(v[0], None);
        assert!(matches!(
            v[1],
            Some(SegmentRejection::OverlapInBatch { .. })
        ));
        assert_eq!(v[2], None);
        assert!(matches!(
            v[3],
            Some(SegmentRejection::ObjectOfOtherFlow { .. })
        ));
        assert!(matches!(v[4], Some(SegmentRejection::ObjectNotUploaded(_))));
        assert!(matches!(
            v[5],
            Some(SegmentRejection::ObjectBeingDeleted(_))
        ));
        assert!(matches!(v[6], Some(SegmentRejection::ObjectUnknown(_))));
    }

    #[test]
    fn init_and_media_roles_do_not_mix() {
        let objects: HashMap<String, ObjectRow> = [
            obj("i", "f", ObjectState::Stored),
            obj("m", "f", ObjectState::Stored),
        ]
        .into_iter()
        .map(|o| (o.id.clone(), o))
        .collect();
        let mut s0 = seg(0, 10, "m");
        s0.init_object_id = Some("i".into());
        let s1 = seg(10, 20, "i");
        let v = check_batch("f", &[s0, s1], &objects);
        assert_eq!(v[0], None);
        assert!(matches!(v[1], Some(SegmentRejection::InitUsedAsMedia(_))));
    }
}
