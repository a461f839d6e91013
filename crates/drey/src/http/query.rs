//! Query strings and request bodies: typed accessors that turn bad input into a 400 naming
//! the parameter or the JSON path, plus TAMS tag filters (`tag.{name}`, `tag_exists.{name}`).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use drey_core::model::Tags;
use drey_core::{Id, TimeRange, Timestamp};
use serde::de::DeserializeOwned;

use super::error::{ApiError, ApiResult};

/// A parsed query string (later duplicates win).
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        Query {
            pairs: raw
                .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A text value that will reach the database: NUL characters are refused.
    pub fn text(&self, name: &str) -> ApiResult<Option<&str>> {
        match self.get(name) {
            Some(v) if v.contains('\0') => {
                Err(ApiError::bad(name, "must not contain NUL characters"))
            }
            v => Ok(v),
        }
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    pub fn bool(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::bad(name, format!("{v:?} is not true or false"))),
        }
    }

    pub fn int(&self, name: &str) -> ApiResult<Option<i64>> {
        self.get(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad(name, format!("{v:?} is not an integer")))
            })
            .transpose()
    }

    pub fn timerange(&self, name: &str) -> ApiResult<Option<TimeRange>> {
        self.get(name)
            .map(|v| {
                v.parse::<TimeRange>()
                    .map_err(|e| ApiError::bad(name, e.to_string()))
            })
            .transpose()
    }

    pub fn id(&self, name: &str) -> ApiResult<Option<Id>> {
        self.get(name)
            .map(|v| {
                v.parse::<Id>()
                    .map_err(|e| ApiError::bad(name, e.to_string()))
            })
            .transpose()
    }

    /// `format`, a TAMS content format URN.
    pub fn format(&self) -> ApiResult<Option<drey_core::model::ContentFormat>> {
        self.get("format")
            .map(|f| {
                drey_core::model::ContentFormat::from_urn(f).ok_or_else(|| {
                    ApiError::bad("format", format!("{f:?} is not a TAMS content format URN"))
                })
            })
            .transpose()
    }

    /// `sort_by`, one of `allowed` (the first is the default).
    pub fn sort_by<'a>(&'a self, allowed: &[&'static str]) -> ApiResult<&'a str> {
        let v = self.get("sort_by").unwrap_or(allowed[0]);
        if allowed.contains(&v) {
            Ok(v)
        } else {
            Err(ApiError::bad(
                "sort_by",
                format!("{v:?} is not one of {}", allowed.join(", ")),
            ))
        }
    }

    /// A comma-separated id list; `Some(vec![])` for an empty value.
    pub fn id_list(&self, name: &str) -> ApiResult<Option<Vec<Id>>> {
        match self.get(name) {
            None => Ok(None),
            Some("") => Ok(Some(Vec::new())),
            Some(v) => v
                .split(',')
                .map(|s| {
                    s.parse::<Id>()
                        .map_err(|e| ApiError::bad(name, e.to_string()))
                })
                .collect::<ApiResult<Vec<_>>>()
                .map(Some),
        }
    }

    /// `limit`, clamped to `1..=max` (TAMS lets the service lower it; the chosen value is
    /// echoed in `X-Paging-Limit`).
    pub fn limit(&self, default: usize, max: usize) -> ApiResult<usize> {
        let Some(v) = self.get("limit") else {
            return Ok(default);
        };
        let digits = v.strip_prefix('-').unwrap_or(v);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::bad("limit", format!("{v:?} is not an integer")));
        }
        // Out-of-range integers are clamped like any other too-large or too-small limit.
        Ok(match v.parse::<i64>() {
            Ok(n) if n < 1 => 1,
            Ok(n) => usize::try_from(n).unwrap_or(max).min(max),
            Err(_) if v.starts_with('-') => 1,
            Err(_) => max,
        })
    }

    /// The time span of a request: `timerange=` (TAMS) or `start=`/`end=` (ISO 8601 UTC).
    pub fn span(&self) -> ApiResult<Option<TimeRange>> {
        if let Some(r) = self.timerange("timerange")? {
            return Ok(Some(r));
        }
        let parse = |name: &str| -> ApiResult<Option<Timestamp>> {
            self.get(name)
                .map(|v| Timestamp::parse_utc(v).map_err(|e| ApiError::bad(name, e.to_string())))
                .transpose()
        };
        let (s, e) = (parse("start")?, parse("end")?);
        if s.is_none() && e.is_none() {
            return Ok(None);
        }
        Ok(Some(TimeRange::new(s, e)))
    }

    pub fn tag_filter(&self, prefix: &str) -> ApiResult<TagFilter> {
        let mut f = TagFilter::default();
        let value_prefix = format!("{prefix}.");
        let exists_prefix = format!("{prefix}_exists.");
        for (k, v) in &self.pairs {
            if let Some(name) = k.strip_prefix(&exists_prefix) {
                let b = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ApiError::bad(
                            k.clone(),
                            format!("{v:?} is not true or false"),
                        ));
                    }
                };
                f.exists.insert(name.to_owned(), b);
            } else if let Some(name) = k.strip_prefix(&value_prefix) {
                f.values
                    .insert(name.to_owned(), v.split(',').map(str::to_owned).collect());
            }
        }
        Ok(f)
    }
}

/// The `collected_by_ids` filter: `None` matches everything, an empty list matches
/// resources nothing collects, otherwise any of the ids must collect the resource.
pub fn collected_by_matches(filter: &Option<Vec<Id>>, collected_by: Option<&Vec<Id>>) -> bool {
    match filter {
        None => true,
        Some(ids) if ids.is_empty() => collected_by.is_none_or(Vec::is_empty),
        Some(ids) => collected_by.into_iter().flatten().any(|c| ids.contains(c)),
    }
}

/// `tag.{name}=v1,v2` and `tag_exists.{name}=bool` filters.
#[derive(Debug, Default, Clone)]
pub struct TagFilter {
    pub values: BTreeMap<String, Vec<String>>,
    pub exists: BTreeMap<String, bool>,
}

impl TagFilter {
    pub fn matches(&self, tags: Option<&Tags>) -> bool {
        let get = |name: &str| tags.and_then(|t| t.get(name));
        self.values.iter().all(|(name, wanted)| {
            let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
            get(name).is_some_and(|v| v.matches_any(&wanted))
        }) && self
            .exists
            .iter()
            .all(|(name, &want)| get(name).is_some() == want)
    }
}

/// Parses a JSON body into `T`, reporting the JSON path of the first problem.
pub fn json_body<T: DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| path_error(e, ""))
}

/// A 400 for a body that failed to deserialise, naming the JSON path (prefixed with
/// `prefix`) or, for a missing field, the field.
pub fn path_error<E: std::fmt::Display>(
    e: serde_path_to_error::Error<E>,
    prefix: &str,
) -> ApiError {
    let path = e.path().to_string();
    let msg = e.into_inner().to_string();
    let missing = msg
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
        .map(str::to_owned);
    let field = match (path.as_str(), missing) {
        ("." | "", Some(m)) => format!("{prefix}{m}"),
        ("." | "", None) if prefix.is_empty() => "body".to_owned(),
        ("." | "", None) => prefix.trim_end_matches('.').to_owned(),
        (p, Some(m)) => format!("{prefix}{p}.{m}"),
        (p, None) => format!("{prefix}{p}"),
    };
    ApiError::bad(field, msg)
}

/// An opaque page key: base64url of a small text cursor.
pub fn encode_page(cursor: &str) -> String {
    URL_SAFE_NO_PAD.encode(cursor)
}

pub fn decode_page(q: &Query) -> ApiResult<Option<String>> {
    q.get("page")
        .map(|p| {
            URL_SAFE_NO_PAD
                .decode(p)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::bad("page", "not a page key returned by this service"))
        })
        .transpose()
}

/// An offset cursor `o:N` for listings that are sorted in memory.
pub fn page_offset(q: &Query) -> ApiResult<usize> {
    match decode_page(q)? {
        None => Ok(0),
        Some(c) => c
            .strip_prefix("o:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| ApiError::bad("page", "not a page key returned by this service")),
    }
}

/// Parses a path id, answering 404 (the spec's status for an invalid id in a path).
pub fn path_id(name: &str, raw: &str) -> ApiResult<Id> {
    raw.parse()
        .map_err(|e: drey_core::IdError| ApiError::NotFound(format!("{name}: {e}")))
}
