//! Subcommands, one per file: each has `run(args)`.

pub mod export;
pub mod gc;
pub mod keys;
pub mod serve;
pub mod token;
