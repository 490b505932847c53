//! A daemon of your own: cronq's built-in handlers plus one written here.
//!
//! Run it with `cargo run --example custom_handler`, then
//! `echo '{"cmd":"enqueue","name":"hi","payload":{"type":"greet","data":{"who":"Ada"}}}' | socat - UNIX-CONNECT:cronq-data/admin.sock`.

use cronq::{Config, Daemon, Handler, JobContext, JobError, NewJob};
use serde_json::Value;

struct Greet;

#[async_trait::async_trait]
impl Handler for Greet {
    fn job_type(&self) -> &str {
        "greet"
    }

    fn description(&self) -> &str {
        "Logs a greeting"
    }

    // Refuses a bad payload at enqueue time, naming the field.
    fn validate(&self, data: &Value) -> Result<(), String> {
        match data.get("who") {
            Some(Value::String(_)) => Ok(()),
            _ => Err("who: required, a string".into()),
        }
    }

    async fn run(&self, job: JobContext) -> Result<(), JobError> {
        let who = job.data["who"].as_str().unwrap_or("world");
        tracing::info!(job_id = %job.id, "hello, {who}");
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    let log = cronq::logging::init(config.log_format, &config.log_level)?;
    let daemon = Daemon::builder(config)
        .handler(Greet)
        .log_level(std::sync::Arc::new(move |level: &str| log.set_level(level)))
        .start()
        .await?;

    // Enqueue from Rust: the same validation and storage as the socket.
    let mut data = serde_json::Map::new();
    data.insert("who".into(), "the example".into());
    let stored = daemon
        .queue()
        .enqueue_one(NewJob::new("greeting", "greet", data))
        .await?;
    tracing::info!(job_id = %stored.job.id, "enqueued from Rust");

    tokio::signal::ctrl_c().await?;
    daemon.stop().await;
    Ok(())
}
