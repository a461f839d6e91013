//! Storage: the time index (SQLite or PostgreSQL) and the object store (local directory,
//! memory or S3). Everything that persists goes through here.

pub mod buffers;
pub mod events;
pub mod gc;
pub mod index;
pub mod objects;
pub mod s3_http;
