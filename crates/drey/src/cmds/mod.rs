//! Subcommands, one per file: each has `run(args)`.

pub mod gc;
pub mod serve;
