//! Subcommands, one per file: each has `run(args)`.

pub mod bench;
pub mod export;
pub mod gc;
pub mod ingest;
pub mod keys;
pub mod play;
pub mod render;
pub mod serve;
pub mod signal;
pub mod token;
