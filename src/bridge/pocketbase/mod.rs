//! Coming from PocketBase: its `queues` collection taken over, once from
//! the file or live over its API, each record becoming exactly one job.
//!
//! - `record`: a record (from the API or the file, in one shape) turned
//!   into the `import` request's record, skipped or refused;
//! - `import`: `cronq import-pocketbase`, the one-shot import of a
//!   `pb_data/data.db` through the daemon's socket;
//! - `client`, `sse`: the REST client and the realtime stream;
//! - `follow`: the daemon's follower of a live collection;
//! - `status`: what the follower is doing, for `status`.
//!
//! Both ways go through the daemon's import ledger (`store::import`), so a
//! record imported from the file and seen again live, or seen twice live
//! across a crash, is one job.

pub mod client;
pub mod follow;
pub mod import;
pub mod record;
pub mod sse;
pub mod status;

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::PocketBaseConfig;
use crate::queue::Queue;
pub use client::{Client, PbError};
pub use status::{FollowStatus, State};

/// Starts the follower on `tasks` when the configuration asks for it;
/// returns its status, or `State::Off` when following is switched off.
pub fn start(
    config: &PocketBaseConfig,
    queue: &Queue,
    ticks: watch::Receiver<u64>,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<Arc<FollowStatus>, PbError> {
    let now = queue.clock().now_ms();
    let url = config.url.as_str();
    if !config.follow {
        tracing::info!(
            "CRONQ_POCKETBASE_FOLLOW=false: not taking the PocketBase collection {} over",
            config.collection
        );
        return Ok(Arc::new(FollowStatus::new(
            url,
            &config.collection,
            State::Off,
            now,
        )));
    }
    let client = Arc::new(Client::new(config)?);
    let status = Arc::new(FollowStatus::new(
        url,
        &config.collection,
        State::Connecting,
        now,
    ));
    let follower = follow::Follower::new(client, queue.clone(), config, status.clone(), ticks);
    tasks.spawn(follower.run(shutdown));
    Ok(status)
}
