//! Paged JSON listings: the body plus `Link: <...>; rel="next"` and the `X-Paging-*`
//! headers TAMS defines.

use axum::Json;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use drey_core::TimeRange;
use serde::Serialize;

use super::query::encode_page;

#[derive(Debug, Default)]
pub struct Paging {
    pub limit: usize,
    pub count: usize,
    pub reverse: Option<bool>,
    /// Cursor text for the next page; `None` on the last page.
    pub next: Option<String>,
    pub timerange: Option<TimeRange>,
}

pub fn paged<T: Serialize>(public_url: &str, uri: &Uri, items: &T, p: Paging) -> Response {
    let mut h = HeaderMap::new();
    let mut put = |name: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    put("x-paging-limit", p.limit.to_string());
    put("x-paging-count", p.count.to_string());
    if let Some(r) = p.reverse {
        put("x-paging-reverse-order", r.to_string());
    }
    if let Some(tr) = p.timerange {
        put("x-paging-timerange", tr.to_string());
    }
    if let Some(next) = &p.next {
        let key = encode_page(next);
        let mut q: Vec<(String, String)> = uri
            .query()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .filter(|(k, _)| k != "page")
                    .collect()
            })
            .unwrap_or_default();
        q.push(("page".to_owned(), key.clone()));
        let qs = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q)
            .finish();
        put("x-paging-nextkey", key);
        put(
            "link",
            format!(
                "<{}{}?{}>; rel=\"next\"",
                public_url.trim_end_matches('/'),
                uri.path(),
                qs
            ),
        );
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (StatusCode::OK, h, Json(items)).into_response()
}

/// One page of an in-memory listing with an offset cursor (`o:N`): flows, sources and
/// delete requests, which are few enough to filter and sort in memory.
pub fn offset_page<T: Serialize + Clone>(
    public_url: &str,
    uri: &Uri,
    all: &[T],
    offset: usize,
    limit: usize,
    reverse: bool,
) -> Response {
    let page: Vec<T> = all.iter().skip(offset).take(limit).cloned().collect();
    let next = (offset + page.len() < all.len()).then(|| format!("o:{}", offset + page.len()));
    paged(
        public_url,
        uri,
        &page,
        Paging {
            limit,
            count: page.len(),
            reverse: Some(reverse),
            next,
            timerange: None,
        },
    )
}
