//! Objects: the blobs behind segments, in a local directory (default), in memory (unit
//! tests) or in any S3-compatible store (Ceph RGW, MinIO, AWS S3), all through the
//! `object_store` crate. Concurrency to the store is bounded here, once, by a `LimitStore`.
//!
//! Objects are immutable: a PUT to an id that already has bytes is refused by the caller
//! (the index knows), and every write is atomic in the store (the local backend writes a
//! temporary file and renames it; S3 makes an object visible only when its PUT or
//! multipart upload completes), so no reader ever sees half an object.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use drey_core::Id;
use drey_core::model::StorageBackend;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::limit::LimitStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};

use super::buffers;

/// Namespace for drey's name-based (v5) ids.
pub const DREY_NAMESPACE: &str = "6f1c0c2e-4f6b-5d3a-9a43-0f8f0e6f2a11";

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object {0:?} not found in the object store")]
    NotFound(String),
    #[error("object store error: {0}")]
    Store(#[from] object_store::Error),
    #[error("object store configuration: {0}")]
    Config(String),
    #[error("upload body error: {0}")]
    Body(String),
    #[error("object larger than the {limit} byte limit")]
    TooLarge { limit: u64 },
    #[error("reading a local object: {0}")]
    Io(std::io::Error),
}

/// Which store holds the objects.
#[derive(Debug, Clone)]
pub enum Backend {
    Local {
        root: PathBuf,
    },
    Memory,
    S3 {
        bucket: String,
        endpoint: Option<String>,
        region: String,
    },
}

/// S3 settings; endpoint and keys normally come from the AWS_* environment variables.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    pub bucket: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// PEM certificates to trust besides the system's, for an HTTPS endpoint with a
    /// private CA (`AWS_CA_BUNDLE`, as the AWS CLI and SDKs read it).
    pub ca_bundle: Option<std::path::PathBuf>,
}

impl S3Settings {
    pub fn from_env(bucket: &str) -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        S3Settings {
            bucket: bucket.to_owned(),
            endpoint: var("AWS_ENDPOINT_URL"),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
            ca_bundle: var("AWS_CA_BUNDLE").map(Into::into),
        }
    }
}

/// A readable object body with its length and the byte range it covers.
/// Bytes per blocking read of a local file.
const FILE_CHUNK: u64 = 1024 * 1024;

/// Reads `len` bytes of `file` at `pos` into a recycled or new buffer (no zero-filling
/// first), placed in it where the kernel copies fastest (see [`buffers::read_offset`]).
fn read_chunk(file: &std::fs::File, pos: u64, len: u64) -> std::io::Result<Bytes> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = file;
    f.seek(SeekFrom::Start(pos))?;
    let want = usize::try_from(len).unwrap_or(0);
    let mut buf = buffers::take(want + buffers::MAX_PAD);
    let pad = buffers::read_offset(buf.as_ptr().addr(), pos);
    buf.resize(pad, 0);
    f.take(len).read_to_end(&mut buf)?;
    if buf.len() - pad < want {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "object shorter than its size",
        ));
    }
    Ok(buffers::freeze(buf).slice(pad..))
}

/// Opens a local object's file and reads its size (blocking).
fn open_local(path: &std::path::Path, id: String) -> Result<(std::fs::File, u64), ObjectError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ObjectError::NotFound(id));
        }
        Err(e) => return Err(ObjectError::Io(e)),
    };
    let size = file.metadata().map_err(ObjectError::Io)?.len();
    Ok((file, size))
}

/// `range` of a local file as a stream of chunks of up to [`FILE_CHUNK`] bytes.
fn file_chunks(
    file: Arc<std::fs::File>,
    range: Range<u64>,
) -> impl Stream<Item = Result<Bytes, ObjectError>> + Send + 'static {
    futures::stream::try_unfold(range.start, move |pos| {
        let file = file.clone();
        let end = range.end;
        async move {
            if pos >= end {
                return Ok(None);
            }
            let len = (end - pos).min(FILE_CHUNK);
            let buf = tokio::task::spawn_blocking(move || read_chunk(&file, pos, len))
                .await
                .map_err(|e| ObjectError::Io(std::io::Error::other(e)))?
                .map_err(ObjectError::Io)?;
            Ok(Some((buf, pos + len)))
        }
    })
}

pub struct ObjectRead {
    pub size: u64,
    pub range: Range<u64>,
    pub body: BoxStream<'static, Result<Bytes, ObjectError>>,
}

pub struct Objects {
    store: Arc<dyn ObjectStore>,
    signer: Option<Arc<AmazonS3>>,
    /// The local directory store, read directly on the GET path (see [`Objects::get`]).
    local: Option<Arc<LocalFileSystem>>,
    backend: Backend,
    storage_id: Id,
}

/// Requests in flight to the object store per drey instance. Enough to saturate a local
/// RGW or disk on this class of machine; beyond it requests queue instead of piling up.
const MAX_STORE_REQUESTS: usize = 64;

impl Objects {
    pub fn local(root: impl Into<PathBuf>) -> Result<Self, ObjectError> {
        let root = root.into();
        std::fs::create_dir_all(&root)
            .map_err(|e| ObjectError::Config(format!("{}: {e}", root.display())))?;
        let root = root
            .canonicalize()
            .map_err(|e| ObjectError::Config(format!("{}: {e}", root.display())))?;
        let fs = Arc::new(LocalFileSystem::new_with_prefix(&root)?.with_automatic_cleanup(true));
        let id_name = format!("file://{}", root.display());
        let mut o = Self::wrap(fs.clone(), None, Backend::Local { root }, &id_name);
        o.local = Some(fs);
        Ok(o)
    }

    pub fn memory() -> Self {
        Self::wrap(
            Arc::new(InMemory::new()),
            None,
            Backend::Memory,
            &format!("memory://{}", Id::new_v4()),
        )
    }

    pub fn s3(s: &S3Settings) -> Result<Self, ObjectError> {
        Self::s3_with(s, super::s3_http::wanted(s.endpoint.as_deref()))
    }

    /// [`Objects::s3`] with drey's own HTTP client (`own_client`) or object_store's reqwest one.
    fn s3_with(s: &S3Settings, own_client: bool) -> Result<Self, ObjectError> {
        let region = s.region.clone().unwrap_or_else(|| "us-east-1".to_owned());
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&s.bucket)
            .with_region(&region)
            .with_virtual_hosted_style_request(false);
        if let Some(ep) = &s.endpoint {
            b = b
                .with_endpoint(ep)
                .with_allow_http(ep.starts_with("http://"));
        }
        let https = s
            .endpoint
            .as_deref()
            .is_none_or(|e| e.starts_with("https://"));
        // Extra roots only matter to TLS (an http:// endpoint skips reading the file).
        let roots = match &s.ca_bundle {
            Some(path) if https => super::s3_http::load_roots(path).map_err(ObjectError::Config)?,
            _ => Vec::new(),
        };
        if own_client {
            let connector = if https {
                super::s3_http::Connector::tls(roots).map_err(ObjectError::Config)?
            } else {
                super::s3_http::Connector::plain()
            };
            b = b.with_http_connector(connector);
        } else if !roots.is_empty() {
            let mut options = object_store::ClientOptions::new();
            for cert in roots {
                options =
                    options.with_root_certificate(object_store::Certificate::from_der(&cert)?);
            }
            b = b.with_client_options(options);
        }
        match (&s.access_key_id, &s.secret_access_key) {
            (Some(k), Some(sk)) => b = b.with_access_key_id(k).with_secret_access_key(sk),
            // Without keys object_store would fall back to an instance-metadata lookup that
            // hangs off AWS; refuse instead.
            _ => {
                return Err(ObjectError::Config(
                    "S3 needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_owned(),
                ));
            }
        }
        let s3 = Arc::new(b.build()?);
        let id_name = format!(
            "s3://{}@{}",
            s.bucket,
            s.endpoint.as_deref().unwrap_or("aws")
        );
        let backend = Backend::S3 {
            bucket: s.bucket.clone(),
            endpoint: s.endpoint.clone(),
            region,
        };
        Ok(Self::wrap(s3.clone(), Some(s3), backend, &id_name))
    }

    fn wrap(
        store: Arc<dyn ObjectStore>,
        signer: Option<Arc<AmazonS3>>,
        backend: Backend,
        id_name: &str,
    ) -> Self {
        let ns: Id = DREY_NAMESPACE.parse().unwrap_or_else(|_| Id::new_v4());
        Objects {
            store: Arc::new(LimitStore::new(store, MAX_STORE_REQUESTS)),
            signer,
            local: None,
            backend,
            storage_id: Id::new_v5(&ns, id_name.as_bytes()),
        }
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Stable for a given store location, so instances sharing a bucket agree on it.
    pub fn storage_id(&self) -> Id {
        self.storage_id
    }

    /// True when the store can hand out presigned URLs (S3).
    pub fn can_presign(&self) -> bool {
        self.signer.is_some()
    }

    /// The TAMS storage-backend description of this store.
    pub fn describe(&self) -> StorageBackend {
        let (label, product, provider, region) = match &self.backend {
            Backend::Local { .. } => ("local", "drey local directory", "drey", None),
            Backend::Memory => ("memory", "drey in-memory store", "drey", None),
            Backend::S3 { bucket, region, .. } => {
                (bucket.as_str(), "s3-compatible", "s3", Some(region.clone()))
            }
        };
        StorageBackend {
            id: self.storage_id,
            label: Some(label.to_owned()),
            store_type: "http_object_store".to_owned(),
            provider: provider.to_owned(),
            store_product: product.to_owned(),
            region,
            availability_zone: None,
            default_storage: Some(true),
            tags: None,
        }
    }

    /// The store key of an object id (ids are validated by `validate_object_id`).
    pub fn key(object_id: &str) -> Result<Path, ObjectError> {
        Path::parse(format!("objects/{object_id}")).map_err(|e| ObjectError::Config(e.to_string()))
    }

    /// The size of an object, or `None` when it is not there.
    pub async fn head(&self, object_id: &str) -> Result<Option<u64>, ObjectError> {
        match self.store.head(&Self::key(object_id)?).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn put(&self, object_id: &str, bytes: Bytes) -> Result<u64, ObjectError> {
        let n = bytes.len() as u64;
        self.store.put(&Self::key(object_id)?, bytes.into()).await?;
        Ok(n)
    }

    /// Streams a body into a new object, refusing more than `limit` bytes. Small bodies go
    /// in one PUT; larger ones as a multipart upload that becomes visible only on success.
    pub async fn put_stream<S, E>(
        &self,
        object_id: &str,
        mut body: S,
        limit: u64,
    ) -> Result<u64, ObjectError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        const SINGLE_PUT_MAX: usize = 8 * 1024 * 1024;
        let key = Self::key(object_id)?;
        let mut head = Vec::new();
        let mut total: u64 = 0;
        while head.len() <= SINGLE_PUT_MAX {
            match body.next().await {
                None => {
                    self.store.put(&key, Bytes::from(head).into()).await?;
                    return Ok(total);
                }
                Some(Err(e)) => return Err(ObjectError::Body(e.to_string())),
                Some(Ok(chunk)) => {
                    total += chunk.len() as u64;
                    if total > limit {
                        return Err(ObjectError::TooLarge { limit });
                    }
                    head.extend_from_slice(&chunk);
                }
            }
        }
        let upload = self.store.put_multipart(&key).await?;
        let mut writer = WriteMultipart::new(upload);
        writer.write(&head);
        drop(head);
        let result: Result<(), ObjectError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| ObjectError::Body(e.to_string()))?;
                total += chunk.len() as u64;
                if total > limit {
                    return Err(ObjectError::TooLarge { limit });
                }
                // Backpressure: at most a few parts in flight per upload.
                writer.wait_for_capacity(4).await?;
                writer.write(&chunk);
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                writer.finish().await?;
                Ok(total)
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Reads an object, or the byte range `range` of it.
    pub async fn get(
        &self,
        object_id: &str,
        range: Option<Range<u64>>,
    ) -> Result<ObjectRead, ObjectError> {
        if let Some(fs) = &self.local {
            return Self::get_local(fs, object_id, range).await;
        }
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let res = match self.store.get_opts(&Self::key(object_id)?, opts).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(ObjectError::NotFound(object_id.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        let size = res.meta.size;
        let range = res.range.clone();
        let body = res
            .into_stream()
            .map(|r| r.map_err(ObjectError::from))
            .boxed();
        Ok(ObjectRead { size, range, body })
    }

    /// [`Objects::get`] for the local directory: open, size and the first chunk in one
    /// blocking task (a typical segment is then served from that one read).
    async fn get_local(
        fs: &LocalFileSystem,
        object_id: &str,
        range: Option<Range<u64>>,
    ) -> Result<ObjectRead, ObjectError> {
        let path = fs.path_to_filesystem(&Self::key(object_id)?)?;
        let id = object_id.to_owned();
        let (file, size, range, first) = tokio::task::spawn_blocking(move || {
            let (file, size) = open_local(&path, id)?;
            let range = match range {
                Some(r) if r.start < size => r.start..r.end.min(size),
                Some(_) => {
                    return Err(ObjectError::Io(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "range starts past the end of the object",
                    )));
                }
                None => 0..size,
            };
            let first = read_chunk(
                &file,
                range.start,
                (range.end - range.start).min(FILE_CHUNK),
            )
            .map_err(ObjectError::Io)?;
            Ok((file, size, range, first))
        })
        .await
        .map_err(|e| ObjectError::Io(std::io::Error::other(e)))??;
        let rest = file_chunks(Arc::new(file), range.start + first.len() as u64..range.end);
        let body = futures::stream::once(futures::future::ready(Ok(first)))
            .chain(rest)
            .boxed();
        Ok(ObjectRead { size, range, body })
    }

    /// Reads the whole object and runs `f` (CPU work: demuxing, say) on its bytes on a
    /// blocking thread: for the local directory the one that read it, so the read and
    /// the work cost one hand-off, not two.
    pub async fn get_with<R, F>(&self, object_id: &str, f: F) -> Result<R, ObjectError>
    where
        R: Send + 'static,
        F: FnOnce(Bytes) -> R + Send + 'static,
    {
        let joined = |e: tokio::task::JoinError| ObjectError::Io(std::io::Error::other(e));
        if let Some(fs) = &self.local {
            let path = fs.path_to_filesystem(&Self::key(object_id)?)?;
            let id = object_id.to_owned();
            return tokio::task::spawn_blocking(move || {
                let (file, size) = open_local(&path, id)?;
                Ok(f(read_chunk(&file, 0, size).map_err(ObjectError::Io)?))
            })
            .await
            .map_err(joined)?;
        }
        let bytes = self.get_remote_bytes(object_id).await?;
        tokio::task::spawn_blocking(move || f(bytes))
            .await
            .map_err(joined)
    }

    pub async fn get_bytes(&self, object_id: &str) -> Result<Bytes, ObjectError> {
        if self.local.is_some() {
            // One blocking read into a buffer of the file's size (object_store's reader
            // zero-fills its buffer first: 8% of a grain read's CPU).
            return self.get_with(object_id, |b| b).await;
        }
        self.get_remote_bytes(object_id).await
    }

    /// [`Objects::get_bytes`] from an object store other than the local directory.
    async fn get_remote_bytes(&self, object_id: &str) -> Result<Bytes, ObjectError> {
        // Collected into a recycled buffer of the object's size, as local reads are.
        let mut read = self.get(object_id, None).await?;
        let mut buf = buffers::take(usize::try_from(read.size).unwrap_or(0));
        while let Some(chunk) = read.body.next().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(buffers::freeze(buf))
    }

    /// Runs `fetch` on each of `items` in parallel and yields the results in the items'
    /// order, at most `in_flight` at once (started in order, so the read the consumer
    /// waits for is never queued behind later ones; memory stays at `in_flight` results,
    /// with no extra room for finished reads behind a slow one: docs/benchmarks.md, third
    /// export run). On S3 each fetch is a task of its own, so bodies are received on every
    /// core, not on the consumer's, and dropping the stream aborts them; local reads run on
    /// blocking threads already, so the consumer polls them itself (a task each cost a
    /// wake-up per read for nothing). A fetch that panics becomes `on_panic`'s error.
    pub fn fetch_in_order<T, O, E, F, Fut>(
        &self,
        items: impl Stream<Item = T> + Send + 'static,
        in_flight: usize,
        fetch: F,
        on_panic: fn(String) -> E,
    ) -> BoxStream<'static, Result<O, E>>
    where
        T: Send + 'static,
        O: Send + 'static,
        E: Send + 'static,
        F: Fn(T) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<O, E>> + Send + 'static,
    {
        let own_tasks = self.local.is_none();
        items
            .map(move |item| {
                let work = fetch(item);
                if !own_tasks {
                    return futures::future::Either::Left(work);
                }
                let task = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(work));
                futures::future::Either::Right(async move {
                    task.await
                        .map_err(|e| on_panic(format!("a read task failed: {e}")))?
                })
            })
            .buffered(in_flight.max(1))
            .boxed()
    }

    /// Deletes an object; deleting one that is already gone succeeds.
    pub async fn delete(&self, object_id: &str) -> Result<(), ObjectError> {
        match self.store.delete(&Self::key(object_id)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A presigned URL for `method` (GET or PUT) valid for `ttl`; `None` for stores that
    /// cannot presign.
    pub async fn presign(
        &self,
        method: http::Method,
        object_id: &str,
        ttl: Duration,
    ) -> Result<Option<String>, ObjectError> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let url = signer
            .signed_url(method, &Self::key(object_id)?, ttl)
            .await?;
        Ok(Some(url.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The object-store conformance used for every backend this process can reach.
    pub(crate) async fn conformance(o: &Objects) {
        let id = format!("test/{}", Id::new_v4());
        assert_eq!(o.head(&id).await.unwrap(), None);
        o.put(&id, Bytes::from_static(b"hello world"))
            .await
            .unwrap();
        assert_eq!(o.head(&id).await.unwrap(), Some(11));
        let r = o.get(&id, Some(6..11)).await.unwrap();
        assert_eq!((r.size, r.range.clone()), (11, 6..11));
        let body: Vec<Bytes> = r.body.map(|b| b.unwrap()).collect().await;
        assert_eq!(body.concat(), b"world");
        // A streamed body larger than one PUT goes multipart and reads back whole.
        let big: Vec<u8> = (0..(20 * 1024 * 1024u32))
            .map(|i| (i % 251) as u8)
            .collect();
        let chunks: Vec<Result<Bytes, std::io::Error>> = big
            .chunks(1 << 20)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let id2 = format!("test/{}", Id::new_v4());
        let n = o
            .put_stream(&id2, futures::stream::iter(chunks), 64 << 20)
            .await
            .unwrap();
        assert_eq!(n, big.len() as u64);
        assert_eq!(o.get_bytes(&id2).await.unwrap().as_ref(), &big[..]);
        // Over the limit: refused, and nothing becomes visible.
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            (0..4).map(|_| Ok(Bytes::from(vec![0u8; 1024]))).collect();
        let id3 = format!("test/{}", Id::new_v4());
        assert!(matches!(
            o.put_stream(&id3, futures::stream::iter(chunks), 2048)
                .await,
            Err(ObjectError::TooLarge { .. })
        ));
        assert_eq!(o.head(&id3).await.unwrap(), None);
        o.delete(&id).await.unwrap();
        o.delete(&id).await.unwrap();
        o.delete(&id2).await.unwrap();
        assert_eq!(o.head(&id).await.unwrap(), None);
        assert!(matches!(
            o.get(&id, None).await,
            Err(ObjectError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn memory_backend() {
        conformance(&Objects::memory()).await;
    }

    #[tokio::test]
    async fn local_backend() {
        let dir = tempfile::tempdir().unwrap();
        let o = Objects::local(dir.path().join("objects")).unwrap();
        conformance(&o).await;
        // Same directory, same storage id.
        assert_eq!(
            Objects::local(dir.path().join("objects"))
                .unwrap()
                .storage_id(),
            o.storage_id()
        );
    }

    #[tokio::test]
    async fn s3_backend() {
        let Some(bucket) = crate::testing::s3_bucket().await else {
            return;
        };
        let o = Objects::s3(&S3Settings::from_env(&bucket)).unwrap();
        conformance(&o).await;
        let id = format!("test/{}", Id::new_v4());
        let put = o
            .presign(http::Method::PUT, &id, Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        let client = reqwest::Client::new();
        let resp = client.put(&put).body("presigned").send().await.unwrap();
        assert!(
            resp.status().is_success(),
            "presigned PUT: {}",
            resp.status()
        );
        let get = o
            .presign(http::Method::GET, &id, Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            client.get(&get).send().await.unwrap().text().await.unwrap(),
            "presigned"
        );
        // A tampered signature is refused by the store.
        let bad = get.replace("X-Amz-Signature=", "X-Amz-Signature=0");
        assert_eq!(
            client.get(&bad).send().await.unwrap().status().as_u16(),
            403
        );
        o.delete(&id).await.unwrap();
    }

    /// RGW's HTTPS endpoint, its certificate signed by a CA of the test cluster's own:
    /// both HTTP clients trust it through `ca_bundle`, and refuse it without.
    #[tokio::test]
    async fn s3_over_tls() {
        let Some(bucket) = crate::testing::s3_bucket().await else {
            return;
        };
        let Some((endpoint, ca)) = crate::testing::rgw_tls() else {
            return;
        };
        let settings = S3Settings {
            endpoint: Some(endpoint),
            ca_bundle: Some(ca.into()),
            ..S3Settings::from_env(&bucket)
        };
        for own_client in [true, false] {
            let o = Objects::s3_with(&settings, own_client).unwrap();
            conformance(&o).await;
            let untrusted = S3Settings {
                ca_bundle: None,
                ..settings.clone()
            };
            let o = Objects::s3_with(&untrusted, own_client).unwrap();
            let e = o.head("anything").await.unwrap_err().to_string();
            // drey's client names the cause (reqwest's error stops at "error sending
            // request"), and does not retry it.
            if own_client {
                assert!(
                    e.contains("certificate") && e.contains("UnknownIssuer"),
                    "{e}"
                );
                assert!(!e.contains("retries"), "{e}");
            }
        }
        // A bundle that is not one is a configuration error, named.
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "junk").unwrap();
        let e = Objects::s3(&S3Settings {
            ca_bundle: Some(junk),
            ..settings.clone()
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("AWS_CA_BUNDLE"), "{e}");
    }
}
