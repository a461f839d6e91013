//! The HTTP client of the S3 store: hyper reading responses into fixed 64 KiB buffers, over
//! plain HTTP (Ceph RGW or MinIO on a private network) or TLS (AWS S3, any `https://`
//! endpoint). object_store's default client (reqwest) lets hyper grow its read buffer to
//! ~400 KB, and since the previous chunk is still on its way to the reader, each new one is
//! a fresh mapping above glibc's mmap threshold: faulted, zeroed, unmapped. That was a
//! third of a `drey export`'s CPU from RGW (docs/benchmarks.md). Behaves as object_store's
//! defaults do otherwise: TCP_NODELAY, 5 s to connect, 30 s per request including its
//! body, idle connections kept 90 s, a User-Agent, certificates checked against the
//! system's roots (as reqwest does, with rustls-platform-verifier) plus any of
//! `AWS_CA_BUNDLE`, and errors classified the same way for its retries. Any endpoint keeps
//! reqwest while a proxy for its scheme is set in the environment (reqwest honours one;
//! this client does not), or with `DREY_S3_CLIENT=reqwest`.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody, HttpResponse,
    HttpResponseBody, HttpService,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::time::{Instant, Sleep};

/// hyper's read buffer per connection: below the mmap threshold `main` sets, so it comes
/// from the heap and is reused.
const READ_BUFFER: usize = 64 << 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const POOL_IDLE: Duration = Duration::from_secs(90);
const USER_AGENT: &str = concat!("drey/", env!("CARGO_PKG_VERSION"));

/// Whether the store at `endpoint` (`None`: AWS's own, over HTTPS) should use this client
/// rather than object_store's reqwest one: an `http://` or `https://` endpoint, no proxy
/// for its scheme in the environment, and not `DREY_S3_CLIENT=reqwest`.
pub fn wanted(endpoint: Option<&str>) -> bool {
    let set = |vars: &[&str]| {
        vars.iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
    };
    let http_proxy = set(&["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]);
    let https_proxy = set(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]);
    let reqwest = std::env::var("DREY_S3_CLIENT").is_ok_and(|v| v == "reqwest");
    !reqwest && wanted_with(endpoint, http_proxy, https_proxy)
}

fn wanted_with(endpoint: Option<&str>, http_proxy: bool, https_proxy: bool) -> bool {
    match endpoint {
        None => !https_proxy,
        Some(e) if e.starts_with("https://") => !https_proxy,
        Some(e) if e.starts_with("http://") => !http_proxy,
        Some(_) => false,
    }
}

/// The certificates of a PEM file (`AWS_CA_BUNDLE`): roots to trust besides the system's.
pub fn load_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let what = |e: &dyn std::fmt::Display| format!("AWS_CA_BUNDLE {}: {e}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| what(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| what(&e))?;
    if certs.is_empty() {
        return Err(what(&"holds no PEM certificate"));
    }
    Ok(certs)
}

/// The connector object_store asks for its client: plain HTTP, or TLS with its settings.
#[derive(Debug)]
pub struct Connector {
    tls: Option<rustls::ClientConfig>,
}

impl Connector {
    /// For an `http://` endpoint.
    pub fn plain() -> Connector {
        Connector { tls: None }
    }

    /// For an `https://` endpoint: server certificates checked against the system's roots
    /// and `extra_roots`.
    pub fn tls(extra_roots: Vec<CertificateDer<'static>>) -> Result<Connector, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())
                .map_err(|e| format!("TLS roots: {e}"))?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(Connector { tls: Some(config) })
    }
}

impl object_store::client::HttpConnector for Connector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(Service::new(
            self.tls.clone(),
            REQUEST_TIMEOUT,
        )))
    }
}

#[derive(Debug)]
enum Inner {
    Plain(Client<HttpConnector, HttpRequestBody>),
    Tls(Client<HttpsConnector<HttpConnector>, HttpRequestBody>),
}

#[derive(Debug)]
struct Service {
    client: Inner,
    /// For the whole request: sending it, the response head and the body.
    timeout: Duration,
}

impl Service {
    fn new(tls: Option<rustls::ClientConfig>, timeout: Duration) -> Service {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .http1_read_buf_exact_size(READ_BUFFER)
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        let client = match tls {
            None => Inner::Plain(builder.build(connector)),
            Some(config) => {
                connector.enforce_http(false);
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(config)
                    .https_only()
                    .enable_http1()
                    .wrap_connector(connector);
                Inner::Tls(builder.build(https))
            }
        };
        Service { client, timeout }
    }
}

#[async_trait::async_trait]
impl HttpService for Service {
    async fn call(&self, mut req: HttpRequest) -> Result<HttpResponse, HttpError> {
        // As reqwest would add it (after signing; SigV4 does not cover it).
        req.headers_mut()
            .entry(http::header::USER_AGENT)
            .or_insert(http::HeaderValue::from_static(USER_AGENT));
        let deadline = Instant::now() + self.timeout;
        let request = match &self.client {
            Inner::Plain(c) => c.request(req),
            Inner::Tls(c) => c.request(req),
        };
        let response = tokio::time::timeout_at(deadline, request)
            .await
            .map_err(|_| timed_out(self.timeout))?
            .map_err(|e| {
                let kind = if refused_by_tls(&e) {
                    // A certificate that does not verify will not within the retries.
                    HttpErrorKind::Unknown
                } else if e.is_connect() {
                    HttpErrorKind::Connect
                } else {
                    kind_of(&e)
                };
                // hyper-util's error says only "client error (Connect)": name the cause.
                HttpError::new(kind, std::io::Error::other(with_causes(&e)))
            })?;
        let (parts, body) = response.into_parts();
        let body = Deadline {
            body,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            timeout: self.timeout,
        };
        Ok(HttpResponse::from_parts(parts, HttpResponseBody::new(body)))
    }
}

fn timed_out(timeout: Duration) -> HttpError {
    HttpError::new(
        HttpErrorKind::Timeout,
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no complete response within {timeout:?}"),
        ),
    )
}

/// `e` and its causes, each after the last: "client error (Connect): invalid peer
/// certificate: UnknownIssuer".
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.ends_with(&part) {
            text = format!("{text}: {part}");
        }
        cause = c.source();
    }
    text
}

/// Whether the TLS handshake failed (a certificate refused, say), by `e`'s causes. The
/// connector wraps rustls's error in an `io::Error` in another, whose `source` skips both.
fn refused_by_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        let mut inner = Some(c);
        while let Some(i) = inner {
            if i.is::<rustls::Error>() {
                return true;
            }
            inner = i
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|r| r as &(dyn std::error::Error + 'static));
        }
        cause = c.source();
    }
    false
}

/// What object_store's retries need to know of an error, by its causes: a closed or cut
/// connection may be retried, a timeout is one, anything else is not known.
fn kind_of(e: &(dyn std::error::Error + 'static)) -> HttpErrorKind {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(h) = c.downcast_ref::<hyper::Error>() {
            if h.is_closed() || h.is_incomplete_message() || h.is_body_write_aborted() {
                return HttpErrorKind::Request;
            }
            if h.is_timeout() {
                return HttpErrorKind::Timeout;
            }
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::TimedOut => return HttpErrorKind::Timeout,
                K::ConnectionAborted | K::ConnectionReset | K::BrokenPipe | K::UnexpectedEof => {
                    return HttpErrorKind::Interrupted;
                }
                _ => {}
            }
        }
        cause = c.source();
    }
    HttpErrorKind::Unknown
}

/// A response body that fails with a timeout once the request's deadline has passed.
struct Deadline {
    body: hyper::body::Incoming,
    sleep: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl Body for Deadline {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(|e| HttpError::new(kind_of(&e), e))));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(timed_out(self.timeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_https_without_a_proxy_for_their_scheme() {
        let rgw = Some("http://127.0.0.1:7480");
        let tls = Some("https://s3.eu-west-1.amazonaws.com");
        assert!(wanted_with(rgw, false, false));
        assert!(wanted_with(rgw, false, true));
        assert!(!wanted_with(rgw, true, false));
        assert!(wanted_with(tls, true, false));
        assert!(!wanted_with(tls, false, true));
        assert!(wanted_with(None, false, false));
        assert!(!wanted_with(None, false, true));
        assert!(!wanted_with(Some("ftp://127.0.0.1"), false, false));
    }

    #[test]
    fn a_ca_bundle_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = load_roots(&empty).unwrap_err();
        assert!(e.contains("AWS_CA_BUNDLE") && e.contains("no PEM"), "{e}");
        let e = load_roots(&dir.path().join("missing.pem")).unwrap_err();
        assert!(e.contains("missing.pem"), "{e}");
    }

    /// A server on the loopback that reads a request, then writes `reply` and stalls.
    /// Returns its URL and the request it read.
    fn stalling_server(reply: &'static [u8]) -> (String, std::sync::mpsc::Receiver<String>) {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = s.write_all(reply);
            std::thread::sleep(Duration::from_secs(5));
        });
        (format!("http://{addr}/bucket/key"), rx)
    }

    fn get(url: &str) -> HttpRequest {
        http::Request::get(url)
            .body(HttpRequestBody::from(Bytes::new()))
            .unwrap()
    }

    #[tokio::test]
    async fn a_body_that_stalls_times_out() {
        let (url, _) = stalling_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc");
        let s = Service::new(None, Duration::from_millis(300));
        let r = s.call(get(&url)).await.unwrap();
        assert_eq!(r.status(), 200);
        let started = std::time::Instant::now();
        let e = r.into_body().bytes().await.unwrap_err();
        assert_eq!(e.kind(), HttpErrorKind::Timeout, "{e}");
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[tokio::test]
    async fn a_response_that_never_comes_times_out() {
        let (url, _) = stalling_server(b"");
        let e = Service::new(None, Duration::from_millis(300))
            .call(get(&url))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), HttpErrorKind::Timeout, "{e}");
    }

    #[tokio::test]
    async fn a_whole_response_is_read() {
        let (url, request) = stalling_server(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        let r = Service::new(None, Duration::from_secs(3))
            .call(get(&url))
            .await
            .unwrap();
        assert_eq!(&r.into_body().bytes().await.unwrap()[..], b"hello");
        let request = request.recv().unwrap().to_ascii_lowercase();
        assert!(request.contains("user-agent: drey/"), "{request}");
    }

    #[test]
    fn errors_are_classified_by_their_causes() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(kind_of(&reset), HttpErrorKind::Interrupted);
        let late = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert_eq!(kind_of(&late), HttpErrorKind::Timeout);
        let other = std::io::Error::other("no");
        assert_eq!(kind_of(&other), HttpErrorKind::Unknown);
    }
}
