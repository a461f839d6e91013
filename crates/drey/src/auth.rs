//! The gateway's HTTP half: access keys (id, secret and grants, kept in the index's meta
//! table so every instance sharing the database sees them), the policy for requests
//! without credentials, and the middleware that verifies AWS SigV4 signatures (header or
//! presigned query, `drey_core::sigv4`) and enforces each key's grants on every route.
//!
//! Grants are `SCOPE:ROLE`: scope `*`, `flow:ID` or `source:ID` (a source grant covers its
//! flows); role `read` (GET/HEAD), `write` (also PUT/POST/DELETE) or `admin` (also
//! `POST /service`). Routes not under one flow or source (lists, objects, media) need a `*`
//! grant. Errors name the failed check, never a secret or an expected signature.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use drey_core::token::{Purpose, Token};
use drey_core::{sigv2, sigv4};
use serde::{Deserialize, Serialize};

use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::storage::index::Index;

const KEY_PREFIX: &str = "access_key/";
/// How long a key looked up in the index is trusted (a revocation takes this long to reach
/// every instance).
const KEY_CACHE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Read,
    Write,
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub scope: String,
    pub role: Role,
}

impl std::str::FromStr for Grant {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Grant> {
        let (scope, role) = s
            .rsplit_once(':')
            .with_context(|| format!("grant {s:?}: expected SCOPE:ROLE, e.g. '*:read'"))?;
        let role = match role {
            "read" => Role::Read,
            "write" => Role::Write,
            "admin" => Role::Admin,
            other => bail!("grant {s:?}: role {other:?} is not read, write or admin"),
        };
        let ok = scope == "*"
            || ["flow:", "source:"].iter().any(|p| {
                scope
                    .strip_prefix(p)
                    .is_some_and(|id| id.parse::<drey_core::Id>().is_ok())
            });
        if !ok {
            bail!("grant {s:?}: scope {scope:?} is not '*', 'flow:ID' or 'source:ID'");
        }
        Ok(Grant {
            scope: scope.to_owned(),
            role,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
    pub grants: Vec<Grant>,
    #[serde(default)]
    pub label: Option<String>,
    pub created: String,
    #[serde(default)]
    pub revoked: bool,
}

fn random_chars(n: usize, alphabet: &[u8]) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in uuid::Uuid::new_v4().into_bytes() {
            if out.len() < n {
                out.push(alphabet[usize::from(b) % alphabet.len()] as char);
            }
        }
    }
    out
}

/// Creates and stores a key.
pub async fn create_key(
    index: &dyn Index,
    grants: Vec<Grant>,
    label: Option<String>,
) -> anyhow::Result<AccessKey> {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let key = AccessKey {
        id: format!("DREY{}", random_chars(16, UPPER)),
        secret: random_chars(40, SECRET),
        grants,
        label,
        created: drey_core::time::format_utc(time::OffsetDateTime::now_utc()),
        revoked: false,
    };
    index
        .set_meta(
            &format!("{KEY_PREFIX}{}", key.id),
            &serde_json::to_string(&key)?,
        )
        .await?;
    Ok(key)
}

pub async fn list_keys(index: &dyn Index) -> anyhow::Result<Vec<AccessKey>> {
    index
        .list_meta(KEY_PREFIX)
        .await?
        .into_iter()
        .map(|(_, v)| Ok(serde_json::from_str(&v)?))
        .collect()
}

async fn get_key(index: &dyn Index, id: &str) -> anyhow::Result<Option<AccessKey>> {
    Ok(match index.get_meta(&format!("{KEY_PREFIX}{id}")).await? {
        Some(v) => Some(serde_json::from_str(&v)?),
        None => None,
    })
}

/// Marks a key revoked (kept, so its id is never reused and audits can name it).
pub async fn revoke_key(index: &dyn Index, id: &str) -> anyhow::Result<()> {
    let mut key = get_key(index, id)
        .await?
        .with_context(|| format!("no access key {id}"))?;
    key.revoked = true;
    index
        .set_meta(&format!("{KEY_PREFIX}{id}"), &serde_json::to_string(&key)?)
        .await?;
    Ok(())
}

/// What a request without credentials may do (`read-write` includes administration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anonymous {
    ReadWrite,
    Read,
    None,
}

impl Anonymous {
    pub fn parse(s: &str) -> anyhow::Result<Anonymous> {
        Ok(match s {
            "read-write" => Anonymous::ReadWrite,
            "read" => Anonymous::Read,
            "none" => Anonymous::None,
            other => bail!("anonymous must be \"read-write\", \"read\" or \"none\", not {other:?}"),
        })
    }

    /// The safe default: anonymous writes only when nothing but this machine can connect.
    pub fn default_for(http: &std::net::SocketAddr) -> Anonymous {
        if http.ip().is_loopback() {
            Anonymous::ReadWrite
        } else {
            Anonymous::Read
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Anonymous::ReadWrite => "read-write",
            Anonymous::Read => "read",
            Anonymous::None => "none",
        }
    }

    fn allows(self, role: Role) -> bool {
        match self {
            Anonymous::ReadWrite => true,
            Anonymous::Read => role == Role::Read,
            Anonymous::None => false,
        }
    }
}

/// Keys looked up recently.
#[derive(Default)]
pub struct KeyCache {
    keys: Mutex<HashMap<String, (Instant, Option<AccessKey>)>>,
}

impl KeyCache {
    pub(crate) async fn get(
        &self,
        index: &dyn Index,
        id: &str,
    ) -> anyhow::Result<Option<AccessKey>> {
        if let Ok(m) = self.keys.lock()
            && let Some((at, k)) = m.get(id)
            && at.elapsed() < KEY_CACHE
        {
            return Ok(k.clone());
        }
        let k = get_key(index, id).await?;
        if let Ok(mut m) = self.keys.lock() {
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(id.to_owned(), (Instant::now(), k.clone()));
        }
        Ok(k)
    }

    /// Drops a cached key (after a revocation through this instance).
    pub(crate) fn forget(&self, id: &str) {
        if let Ok(mut m) = self.keys.lock() {
            m.remove(id);
        }
    }
}

/// What a route touches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    Global,
    Flow(String),
    Source(String),
    /// Reading an object's bytes: allowed to whoever may read a flow that uses it.
    Object(String),
}

fn required(method: &Method, path: &str) -> (Role, Scope) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let role = if (parts.first() == Some(&"service") && parts.get(1) == Some(&"webhooks"))
        || parts.first() == Some(&"admin")
    {
        // Webhooks see every event they ask for, and keys are keys: administrators only,
        // reads included.
        Role::Admin
    } else if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        Role::Read
    } else if parts == ["service"] {
        Role::Admin
    } else {
        Role::Write
    };
    let scope = match parts.as_slice() {
        ["flows", id, ..] if !id.is_empty() => Scope::Flow((*id).to_owned()),
        ["sources", id, ..] if !id.is_empty() => Scope::Source((*id).to_owned()),
        ["media", rest @ ..] if role == Role::Read && !rest.is_empty() => {
            Scope::Object(rest.join("/"))
        }
        ["hls", "objects", file] if role == Role::Read => {
            Scope::Object(file.rsplit_once('.').map_or(*file, |(id, _)| id).to_owned())
        }
        _ => Scope::Global,
    };
    (role, scope)
}

/// Routes anyone may read: the web UI's page and assets, the TAMS root, the spec, and
/// `/service` (what load balancers and health checks poll).
fn public(method: &Method, path: &str) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
        && (matches!(path, "/" | "/openapi.json" | "/service") || path.starts_with("/ui/"))
}

fn unauthorized(message: String) -> Response {
    let mut r = ApiError::Forbidden(message).into_response();
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("AWS4-HMAC-SHA256"),
    );
    r
}

async fn permitted(st: &AppState, key: &AccessKey, role: Role, scope: &Scope) -> bool {
    if let Scope::Object(id) = scope {
        if key.grants.iter().any(|g| g.scope == "*" && g.role >= role) {
            return true;
        }
        let decoded = sigv4::percent_decode(id);
        let flows = st
            .index
            .object_flows(&decoded, 100)
            .await
            .unwrap_or_default();
        for f in flows {
            if Box::pin(permitted(st, key, role, &Scope::Flow(f.to_string()))).await {
                return true;
            }
        }
        return false;
    }
    for g in key.grants.iter().filter(|g| g.role >= role) {
        if g.scope == "*" {
            return true;
        }
        match scope {
            Scope::Global => {}
            Scope::Flow(id) => {
                if g.scope.strip_prefix("flow:") == Some(id.as_str()) {
                    return true;
                }
                if let Some(src) = g.scope.strip_prefix("source:")
                    && let Ok(fid) = id.parse::<drey_core::Id>()
                    && let Ok(Some(f)) = st.index.get_flow(fid).await
                    && f.value.source_id.to_string() == src
                {
                    return true;
                }
            }
            Scope::Source(id) => {
                if g.scope.strip_prefix("source:") == Some(id.as_str()) {
                    return true;
                }
            }
            Scope::Object(_) => {}
        }
    }
    false
}

/// The middleware: every request is anonymous (allowed as configured), or signed with a
/// known, unrevoked key whose signature verifies and whose grants cover the route.
pub async fn gate(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    if public(&method, &path) {
        return next.run(req).await;
    }
    let (role, scope) = required(&method, &path);
    let query = req.uri().query().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let sreq = sigv4::Request {
        method: method.as_str(),
        path: &path,
        query: &query,
        headers: &headers,
    };
    let signed = match sigv4::parse(&sreq) {
        Err(e) => return unauthorized(format!("signature refused: {e}")),
        Ok(None) => {
            // Legacy clients: S3's Signature Version 2.
            match sigv2::parse(&sreq) {
                Err(e) => return unauthorized(format!("signature refused: {e}")),
                Ok(Some(v2)) => {
                    let key = match lookup_key(&st, &v2.access_key).await {
                        Ok(k) => k,
                        Err(r) => return r,
                    };
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    if let Err(e) = sigv2::verify(&sreq, &v2, &key.secret, now) {
                        tracing::info!(key = %key.id, path = %path, reason = %e, "V2 signature refused");
                        return unauthorized(format!("signature refused: {e}"));
                    }
                    let (region, service) = ("us-east-1".to_owned(), "s3".to_owned());
                    return admit(&st, req, next, key, role, &scope, region, service).await;
                }
                Ok(None) => {}
            }
            // Short tokens: a bearer token in the header, or a play token in the query. A
            // token that is not drey's shape (an OAuth token meant for a proxy, say) is
            // ignored where anonymous access covers the request; a drey token is always
            // checked.
            let anonymous_ok = st.cfg.anonymous.allows(role);
            let ours = |t: &str| !anonymous_ok || Token::parse(t).is_ok();
            if let Some(t) = headers
                .iter()
                .find(|(n, _)| n == "authorization")
                .and_then(|(_, v)| v.strip_prefix("Bearer "))
                .map(|t| t.trim().to_owned())
                .filter(|t| ours(t))
            {
                return token_gate(&st, req, next, &t, Purpose::Bearer, role, scope).await;
            }
            if matches!(method, Method::GET | Method::HEAD)
                && let Some(t) = sigv4::query_param(&query, "token").filter(|t| ours(t))
            {
                return token_gate(&st, req, next, &t, Purpose::Play, role, scope).await;
            }
            if st.cfg.anonymous.allows(role) {
                return next.run(req).await;
            }
            return unauthorized(format!(
                "authentication required to {} here: sign the request with AWS SigV4 (Authorization header or presigned URL) or send a bearer token (drey token --bearer), using a drey access key",
                match role {
                    Role::Read => "read",
                    Role::Write => "write",
                    Role::Admin => "administer",
                }
            ));
        }
        Ok(Some(s)) => s,
    };
    let key = match lookup_key(&st, &signed.access_key).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // The payload hash: declared (a hash, or UNSIGNED-PAYLOAD), else the body's own.
    let declared = sigv4::declared_payload_hash(&sreq, &signed);
    let (req, payload, body_hash) = match declared {
        Some(h) if h == sigv4::UNSIGNED_PAYLOAD => (req, h, None),
        declared => {
            let (parts, body) = req.into_parts();
            let bytes = match axum::body::to_bytes(body, st.cfg.max_body_bytes).await {
                Ok(b) => b,
                Err(_) => {
                    return ApiError::TooLarge {
                        limit: st.cfg.max_body_bytes as u64,
                    }
                    .into_response();
                }
            };
            let hash = sigv4::sha256_hex(&bytes);
            let payload = declared.unwrap_or_else(|| hash.clone());
            (
                Request::from_parts(parts, Body::from(bytes)),
                payload,
                Some(hash),
            )
        }
    };
    let mut result = sigv4::verify(
        &sreq,
        &signed,
        &key.secret,
        &payload,
        body_hash.as_deref(),
        now,
    );
    if result == Err(sigv4::SigError::Signature)
        && signed.form == sigv4::Form::Query
        && payload == sigv4::UNSIGNED_PAYLOAD
        && matches!(method, Method::GET | Method::HEAD)
    {
        // Presigners for services other than S3 (botocore's SigV4QueryAuth) sign the hash
        // of the empty body instead of UNSIGNED-PAYLOAD.
        result = sigv4::verify(
            &sreq,
            &signed,
            &key.secret,
            &sigv4::sha256_hex(b""),
            None,
            now,
        );
    }
    if let Err(e) = result {
        tracing::info!(key = %key.id, path = %path, reason = %e, "signature refused");
        return unauthorized(format!("signature refused: {e}"));
    }
    admit(
        &st,
        req,
        next,
        key,
        role,
        &scope,
        signed.region,
        signed.service,
    )
    .await
}

/// The live key named by a request: a 401 when unknown or revoked.
async fn lookup_key(st: &AppState, id: &str) -> Result<AccessKey, Response> {
    match st.keys.get(st.index.as_ref(), id).await {
        Ok(Some(k)) if !k.revoked => Ok(k),
        Ok(Some(_)) => Err(unauthorized(format!("access key {id} is revoked"))),
        Ok(None) => Err(unauthorized(format!("unknown access key {id}"))),
        Err(e) => Err(ApiError::Unavailable(format!("access keys: {e}")).into_response()),
    }
}

/// Checks a verified key's grants for the route and runs it with the key attached.
#[allow(clippy::too_many_arguments)]
async fn admit(
    st: &AppState,
    mut req: Request,
    next: Next,
    key: AccessKey,
    role: Role,
    scope: &Scope,
    region: String,
    service: String,
) -> Response {
    if !permitted(st, &key, role, scope).await {
        // A list of flows or sources for a key scoped to some of them: answered, filtered
        // to what the key may read.
        if role == Role::Read
            && *scope == Scope::Global
            && matches!(req.uri().path(), "/flows" | "/sources")
            && let Some(filter) = ListFilter::for_key(&key)
        {
            req.extensions_mut().insert(filter);
            req.extensions_mut().insert(Authed {
                key: std::sync::Arc::new(key),
                region,
                service,
            });
            return next.run(req).await;
        }
        let what = match scope {
            Scope::Global => "this route (it needs a '*' grant)".to_owned(),
            Scope::Flow(id) => format!("flow {id}"),
            Scope::Source(id) => format!("source {id}"),
            Scope::Object(id) => format!("object {id} (no flow it belongs to is granted)"),
        };
        return ApiError::Forbidden(format!(
            "access key {} has no {:?} grant for {what}",
            key.id, role
        ))
        .into_response();
    }
    req.extensions_mut().insert(Authed {
        key: std::sync::Arc::new(key),
        region,
        service,
    });
    next.run(req).await
}

/// A request carrying a bearer token (the key's grants) or a play token (reading the one
/// flow it names, and the objects of that flow).
async fn token_gate(
    st: &AppState,
    req: Request,
    next: Next,
    raw: &str,
    purpose: Purpose,
    role: Role,
    scope: Scope,
) -> Response {
    let what = if purpose == Purpose::Bearer {
        "bearer"
    } else {
        "play"
    };
    let t = match Token::parse(raw) {
        Ok(t) => t,
        Err(e) => return unauthorized(format!("{what} token refused: {e}")),
    };
    let key = match lookup_key(st, &t.key_id).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let checked = if purpose == Purpose::Bearer {
        t.verify_for(purpose, &key.secret, "", now).map(|()| scope)
    } else {
        if role != Role::Read {
            return ApiError::Forbidden("a play token only reads".into()).into_response();
        }
        // The flows the route is about: the token must name one of them.
        let flows: Vec<String> = match &scope {
            Scope::Flow(id) => vec![id.clone()],
            Scope::Object(id) => st
                .index
                .object_flows(&sigv4::percent_decode(id), 100)
                .await
                .unwrap_or_default()
                .iter()
                .map(ToString::to_string)
                .collect(),
            _ => Vec::new(),
        };
        if flows.is_empty() {
            return ApiError::Forbidden(
                "a play token reads one flow: its playlist, segments, objects and downloads".into(),
            )
            .into_response();
        }
        let mut result = Err(drey_core::token::TokenError::Signature);
        for f in flows {
            result = t
                .verify_for(purpose, &key.secret, &f, now)
                .map(|()| Scope::Flow(f));
            if !matches!(result, Err(drey_core::token::TokenError::Signature)) {
                break;
            }
        }
        result
    };
    match checked {
        Ok(scope) => {
            let (region, service) = ("us-east-1".to_owned(), "s3".to_owned());
            admit(st, req, next, key, role, &scope, region, service).await
        }
        Err(e) => {
            tracing::info!(key = %key.id, reason = %e, "{what} token refused");
            unauthorized(format!("{what} token refused: {e}"))
        }
    }
}

/// What a key scoped to some flows and sources may see in `/flows` and `/sources` (a
/// request extension the list handlers apply before paging).
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub flows: std::collections::HashSet<drey_core::Id>,
    pub sources: std::collections::HashSet<drey_core::Id>,
}

impl ListFilter {
    /// `None` when the key has no read grant on any flow or source.
    fn for_key(key: &AccessKey) -> Option<ListFilter> {
        let mut f = ListFilter::default();
        for g in &key.grants {
            if let Some(id) = g.scope.strip_prefix("flow:").and_then(|s| s.parse().ok()) {
                f.flows.insert(id);
            } else if let Some(id) = g.scope.strip_prefix("source:").and_then(|s| s.parse().ok()) {
                f.sources.insert(id);
            }
        }
        (!f.flows.is_empty() || !f.sources.is_empty()).then_some(f)
    }

    /// A flow is visible when granted itself or through its source.
    pub fn flow_visible(&self, flow: &drey_core::model::Flow) -> bool {
        self.flows.contains(&flow.id) || self.sources.contains(&flow.source_id)
    }

    pub fn source_visible(&self, id: drey_core::Id) -> bool {
        self.sources.contains(&id)
    }
}

/// The key a request was signed with (a request extension), for handlers that hand out
/// URLs: playlists for a signed-in reader carry presigned segment URLs.
#[derive(Clone)]
pub struct Authed {
    pub key: std::sync::Arc<AccessKey>,
    pub region: String,
    pub service: String,
}

/// How long URLs presigned into a playlist stay valid.
pub const PLAYLIST_URL_TTL_SECS: i64 = 3600;

/// Presigns every URI of a playlist (lines and `URI="..."` attributes) that points back at
/// this server, resolved against the playlist's own path; absolute `http(s)` URIs (already
/// presigned object-store URLs) are left as they are.
pub fn sign_playlist(text: &str, playlist_path: &str, host: &str, a: &Authed, now: i64) -> String {
    let dir = &playlist_path[..playlist_path.rfind('/').map_or(0, |i| i + 1)];
    let sign = |uri: &str| -> String {
        if uri.starts_with("http://") || uri.starts_with("https://") {
            return uri.to_owned();
        }
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let joined = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("{dir}{path}")
        };
        let mut parts: Vec<&str> = Vec::new();
        for seg in joined.split('/') {
            match seg {
                ".." => {
                    parts.pop();
                }
                "." | "" => {}
                s => parts.push(s),
            }
        }
        let abs = format!("/{}", parts.join("/"));
        let q = sigv4::presign(
            "GET",
            host,
            &abs,
            query,
            &a.key.id,
            &a.key.secret,
            &a.region,
            &a.service,
            now,
            PLAYLIST_URL_TTL_SECS,
        );
        format!("{abs}?{q}")
    };
    let mut out = String::with_capacity(text.len() * 2);
    for line in text.lines() {
        if line.is_empty() {
        } else if line.starts_with('#') {
            let mut rest = line;
            while let Some(i) = rest.find("URI=\"") {
                out.push_str(&rest[..i + 5]);
                rest = &rest[i + 5..];
                let Some(end) = rest.find('"') else { break };
                out.push_str(&sign(&rest[..end]));
                rest = &rest[end..];
            }
            out.push_str(rest);
        } else {
            out.push_str(&sign(line));
        }
        out.push('\n');
    }
    out
}

/// RTMP publish authorisation by signed token (`?token=` on the stream key or the app,
/// `drey token` makes one): a token must name a live, unrevoked key with a `*` write grant,
/// cover this `app/stream` and not have expired. Without a token a publish is allowed only
/// when tokens are not `required`. A token that is present is always checked. Then the
/// publish callbacks, when configured, have their say and hear the rest.
pub struct TokenPublishAuth {
    pub index: std::sync::Arc<dyn Index>,
    pub keys: std::sync::Arc<KeyCache>,
    pub required: bool,
    pub callbacks: Option<std::sync::Arc<crate::ingest::callbacks::Callbacks>>,
}

#[async_trait::async_trait]
impl crate::ingest::auth::PublishAuth for TokenPublishAuth {
    async fn authorize(
        &self,
        req: &crate::ingest::auth::PublishRequest,
    ) -> crate::ingest::auth::PublishDecision {
        match self.check_token(req).await {
            crate::ingest::auth::PublishDecision::Allow => match &self.callbacks {
                Some(c) => c.on_publish(req).await,
                None => crate::ingest::auth::PublishDecision::Allow,
            },
            refused => refused,
        }
    }

    fn publish_done(&self, app: &str, key: &str, peer: std::net::SocketAddr) {
        if let Some(c) = &self.callbacks {
            c.publish_done(app, key, peer);
        }
    }

    fn segment_stored(&self, s: &crate::ingest::callbacks::SegmentStored) {
        if let Some(c) = &self.callbacks {
            c.segment_stored(s);
        }
    }
}

impl TokenPublishAuth {
    async fn check_token(
        &self,
        req: &crate::ingest::auth::PublishRequest,
    ) -> crate::ingest::auth::PublishDecision {
        use crate::ingest::auth::PublishDecision::{Allow, Deny};
        let Some(token) = req
            .query
            .iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.as_str())
        else {
            return if self.required {
                Deny(
                    "a publish token is required: add ?token=... to the stream key (drey token --key ID --stream APP/KEY prints a publish URL)"
                        .to_owned(),
                )
            } else {
                Allow
            };
        };
        let t = match drey_core::token::Token::parse(token) {
            Ok(t) => t,
            Err(e) => return Deny(e.to_string()),
        };
        let key = match self.keys.get(self.index.as_ref(), &t.key_id).await {
            Ok(Some(k)) if !k.revoked => k,
            Ok(Some(_)) => return Deny(format!("access key {} is revoked", t.key_id)),
            Ok(None) => return Deny(format!("unknown access key {}", t.key_id)),
            Err(e) => return Deny(format!("access keys are unavailable: {e}")),
        };
        if !key
            .grants
            .iter()
            .any(|g| g.scope == "*" && g.role >= Role::Write)
        {
            return Deny(format!(
                "access key {} has no '*:write' grant, which publishing needs",
                key.id
            ));
        }
        let stream = format!("{}/{}", req.app, req.stream_key);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        match t.verify(&key.secret, &stream, now) {
            Ok(()) => Allow,
            Err(e) => Deny(e.to_string()),
        }
    }
}

/// Whether RTMP publishes need a token: `rtmp_auth` = `token` or `off`, or (`auto`) when
/// anonymous HTTP writes are not allowed or RTMP listens beyond loopback.
pub fn tokens_required(rtmp_auth: &str, anonymous: Anonymous, rtmp_addr: Option<&str>) -> bool {
    match rtmp_auth {
        "token" => true,
        "off" => false,
        _ => {
            let beyond_loopback = rtmp_addr
                .map(|a| {
                    a.parse::<std::net::SocketAddr>()
                        .map_or(true, |s| !s.ip().is_loopback())
                })
                .unwrap_or(false);
            !anonymous.allows(Role::Write) || beyond_loopback
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_and_refuse() {
        let id = "0c4f8a56-1f8e-4a7e-9c1e-6f2d3b9a1e11";
        assert_eq!(
            "*:read".parse::<Grant>().unwrap(),
            Grant {
                scope: "*".into(),
                role: Role::Read
            }
        );
        assert_eq!(
            format!("flow:{id}:write").parse::<Grant>().unwrap().scope,
            format!("flow:{id}")
        );
        for bad in ["*", "*:owner", "flow:nope:read", "label:x:read", ""] {
            assert!(bad.parse::<Grant>().is_err(), "{bad}");
        }
    }

    #[test]
    fn routes_need_roles_and_scopes() {
        let id = "0c4f8a56-1f8e-4a7e-9c1e-6f2d3b9a1e11";
        assert_eq!(
            required(&Method::GET, &format!("/flows/{id}/segments")),
            (Role::Read, Scope::Flow(id.into()))
        );
        assert_eq!(
            required(&Method::POST, &format!("/flows/{id}/segments")),
            (Role::Write, Scope::Flow(id.into()))
        );
        assert_eq!(
            required(&Method::POST, "/service"),
            (Role::Admin, Scope::Global)
        );
        assert_eq!(
            required(&Method::PUT, "/media/x"),
            (Role::Write, Scope::Global)
        );
        assert_eq!(
            required(&Method::GET, "/flows"),
            (Role::Read, Scope::Global)
        );
        assert!(public(&Method::GET, "/ui/app.js"));
        assert!(!public(&Method::POST, "/"));
    }

    #[test]
    fn rtmp_tokens_required_when_writes_are_guarded() {
        assert!(!tokens_required(
            "auto",
            Anonymous::ReadWrite,
            Some("127.0.0.1:1935")
        ));
        assert!(tokens_required(
            "auto",
            Anonymous::Read,
            Some("127.0.0.1:1935")
        ));
        assert!(tokens_required(
            "auto",
            Anonymous::ReadWrite,
            Some("0.0.0.0:1935")
        ));
        assert!(tokens_required(
            "token",
            Anonymous::ReadWrite,
            Some("127.0.0.1:1935")
        ));
        assert!(!tokens_required(
            "off",
            Anonymous::None,
            Some("0.0.0.0:1935")
        ));
    }

    #[test]
    fn anonymous_writes_only_on_loopback_by_default() {
        let lo: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let v6: std::net::SocketAddr = "[::1]:8080".parse().unwrap();
        assert_eq!(Anonymous::default_for(&lo), Anonymous::ReadWrite);
        assert_eq!(Anonymous::default_for(&v6), Anonymous::ReadWrite);
        assert_eq!(Anonymous::default_for(&any), Anonymous::Read);
        assert!(!Anonymous::Read.allows(Role::Write));
        assert!(!Anonymous::None.allows(Role::Read));
        assert!(Anonymous::ReadWrite.allows(Role::Admin));
    }
}
