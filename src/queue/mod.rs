//! The job lifecycle: the model, the handler registry, the dispatcher that
//! claims batches and the workers that run them.

pub mod handler;
pub mod job;
