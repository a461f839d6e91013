//! The publish hooks: every RTMP publish asks `authorize` before any media is accepted, and
//! the hooks hear when a publish ends and when each of its segments is stored. The default
//! allows everything; the gateway (tokens, callbacks) plugs in here.

use async_trait::async_trait;

/// What a publisher asked for.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// RTMP application name without its query (`live`).
    pub app: String,
    /// Stream key without its query.
    pub stream_key: String,
    /// The query parameters of the app and of the stream key, app first.
    pub query: Vec<(String, String)>,
    pub peer: std::net::SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishDecision {
    Allow,
    /// Refused, with the reason logged and sent to the publisher.
    Deny(String),
    /// Allowed under another stream key (an `on_publish` callback's 3xx).
    Rename(String),
}

#[async_trait]
pub trait PublishAuth: Send + Sync + 'static {
    async fn authorize(&self, req: &PublishRequest) -> PublishDecision;

    /// A publish of `app/key` from `peer` ended.
    fn publish_done(&self, _app: &str, _key: &str, _peer: std::net::SocketAddr) {}

    /// A segment was stored and indexed.
    fn segment_stored(&self, _s: &super::callbacks::SegmentStored) {}
}

/// Allows every publish (the default until access control is configured).
pub struct AllowAll;

#[async_trait]
impl PublishAuth for AllowAll {
    async fn authorize(&self, _req: &PublishRequest) -> PublishDecision {
        PublishDecision::Allow
    }
}

/// Splits `name?a=1&b=2` into the name and its decoded query pairs.
pub fn split_query(s: &str) -> (&str, Vec<(String, String)>) {
    match s.split_once('?') {
        Some((name, q)) => (
            name,
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ),
        None => (s, Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_queries() {
        assert_eq!(split_query("cam1"), ("cam1", vec![]));
        let (n, q) = split_query("cam1?token=a%2Bb&x");
        assert_eq!(n, "cam1");
        assert_eq!(
            q,
            vec![
                ("token".to_owned(), "a+b".to_owned()),
                ("x".to_owned(), String::new())
            ]
        );
    }
}
