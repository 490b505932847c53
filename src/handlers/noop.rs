//! `noop`: succeeds at once. Health checks and benchmarks use it.

use crate::queue::handler::{Handler, JobContext, JobError};

pub struct Noop;

#[async_trait::async_trait]
impl Handler for Noop {
    fn job_type(&self) -> &str {
        "noop"
    }

    fn description(&self) -> &str {
        "Does nothing and succeeds; for health checks and benchmarks"
    }

    async fn run(&self, _job: JobContext) -> Result<(), JobError> {
        Ok(())
    }
}
