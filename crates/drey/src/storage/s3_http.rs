//! The HTTP client of the S3 store for a plain-HTTP endpoint (Ceph RGW or MinIO on a
//! private network): hyper reading responses into fixed 64 KiB buffers. object_store's
//! default client (reqwest) lets hyper grow its read buffer to ~400 KB, and since the
//! previous chunk is still on its way to the reader, each new one is a fresh mapping
//! above glibc's mmap threshold: faulted, zeroed, unmapped. That was a third of a `drey
//! export`'s CPU from RGW (docs/benchmarks.md). Behaves as object_store's defaults do
//! otherwise: TCP_NODELAY, 5 s to connect, 30 s per request including its body, idle
//! connections kept 90 s, a User-Agent, and errors classified the same way for its retries. HTTPS
//! endpoints, and any endpoint while a proxy is set in the environment, keep reqwest.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody, HttpResponse,
    HttpResponseBody, HttpService,
};
use tokio::time::{Instant, Sleep};

/// hyper's read buffer per connection: below the mmap threshold `main` sets, so it comes
/// from the heap and is reused.
const READ_BUFFER: usize = 64 << 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const POOL_IDLE: Duration = Duration::from_secs(90);
const USER_AGENT: &str = concat!("drey/", env!("CARGO_PKG_VERSION"));

/// Whether the store at `endpoint` should use [`PlainHttp`]: a plain-HTTP endpoint, and
/// no proxy in the environment (reqwest would honour one; this client does not).
pub fn wanted(endpoint: &str) -> bool {
    let proxy = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    wanted_with(endpoint, proxy)
}

fn wanted_with(endpoint: &str, proxy: bool) -> bool {
    endpoint.starts_with("http://") && !proxy
}

/// The connector object_store asks for its client.
#[derive(Debug, Default)]
pub struct PlainHttp;

impl object_store::client::HttpConnector for PlainHttp {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(Service::new(REQUEST_TIMEOUT)))
    }
}

#[derive(Debug)]
struct Service {
    client: Client<HttpConnector, HttpRequestBody>,
    /// For the whole request: sending it, the response head and the body.
    timeout: Duration,
}

impl Service {
    fn new(timeout: Duration) -> Service {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .http1_read_buf_exact_size(READ_BUFFER)
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
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
        let response = tokio::time::timeout_at(deadline, self.client.request(req))
            .await
            .map_err(|_| timed_out(self.timeout))?
            .map_err(|e| {
                let kind = if e.is_connect() {
                    HttpErrorKind::Connect
                } else {
                    kind_of(&e)
                };
                HttpError::new(kind, e)
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
    fn only_plain_http_without_a_proxy() {
        assert!(wanted_with("http://127.0.0.1:7480", false));
        assert!(!wanted_with("http://127.0.0.1:7480", true));
        assert!(!wanted_with("https://s3.eu-west-1.amazonaws.com", false));
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
        let s = Service::new(Duration::from_millis(300));
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
        let e = Service::new(Duration::from_millis(300))
            .call(get(&url))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), HttpErrorKind::Timeout, "{e}");
    }

    #[tokio::test]
    async fn a_whole_response_is_read() {
        let (url, request) = stalling_server(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        let r = Service::new(Duration::from_secs(3))
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
