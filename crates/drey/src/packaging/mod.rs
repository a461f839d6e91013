//! Packaging: turning indexed segments into what players and tools read. `hls` writes
//! playlists from the index on request (nothing is written to the object store); the
//! segments themselves are served as they were stored.

pub mod hls;
