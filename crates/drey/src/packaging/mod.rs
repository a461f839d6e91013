//! Packaging: turning indexed segments into what players and tools read. `hls` writes
//! playlists from the index on request (nothing is written to the object store); `export`
//! plans and streams one file for a span. Segments themselves are served as stored.

pub mod export;
pub mod hls;
