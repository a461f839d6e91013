//! TAMS resources (Source, Flow, Segment, Object, Service) as serde shapes that match the
//! TAMS 8.2 JSON schemas. Validation that the schemas express but serde cannot (required
//! codec, frame rate XOR vfr, mime-type patterns) lives in each type's `validate`.

pub mod common;
pub mod flow;
pub mod object;
pub mod segment;
pub mod service;
pub mod source;

pub use common::*;
pub use flow::*;
pub use object::*;
pub use segment::*;
pub use service::*;
pub use source::*;
