//! drey: a time-addressable store for live and recorded video. This library holds the whole
//! application; `main.rs` only parses arguments and calls into [`cmds`].
//!
//! - [`storage`]: the time index (SQLite / PostgreSQL) and the object store (local / S3).
//! - [`ingest`]: live RTMP ingest, cut into segments and stored as they close.
//! - [`packaging`]: HLS playlists generated from the index.
//! - [`http`]: the TAMS 8.2 API, playlists and drey's object URLs.
//! - [`auth`]: access keys, SigV4 verification and grants on every route.
//! - [`cmds`]: one module per subcommand (`serve`, `gc`).

pub mod auth;
pub mod cmds;
pub mod config;
pub mod grains;
pub mod http;
pub mod ingest;
pub mod packaging;
pub mod storage;
pub mod util;
pub mod webhooks;

#[doc(hidden)]
pub mod testing;
