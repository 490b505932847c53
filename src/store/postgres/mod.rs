//! The PostgreSQL store: the same verbs as the SQLite [`Store`], for many
//! daemons on many hosts sharing one queue.
//!
//! [`PgStore`] is a cheap `Clone` handle over a deadpool pool of
//! tokio-postgres connections. Where SQLite has one writer thread that
//! groups every write, PostgreSQL takes writers side by side, so each verb
//! runs its own statement or short transaction on a pooled connection.
//! Two things are still grouped, for the same reason SQLite groups them:
//! job outcomes (complete, fail) go through a batching task that writes a
//! whole batch with one statement per kind, arrays through `unnest`
//! (`finish.rs`); and claims take up to a batch per statement with
//! `FOR UPDATE SKIP LOCKED` (`claim.rs`), so daemons claiming at once never
//! take the same job and never wait on each other's rows.
//!
//! Every write about a running job is fenced on `(id, attempts,
//! reserved_by)` exactly as on SQLite. Due times and reservation ages are
//! judged by the database server's clock: instants cross the edge through
//! the measured offset between the caller's clock and the server's (see
//! `time.rs`). Wake-ups come over LISTEN/NOTIFY on a connection of its own
//! (`listen.rs`).
//!
//! The daemon opens it through `store::open` when `CRONQ_DATABASE_URL` is
//! set; above the store it is a `Backend` like SQLite's, which says it is
//! `shared` by other hosts and offers its `wakeups` and `clock_offset_ms`.
//!
//! [`Store`]: crate::store::Store

mod backend;
mod bulk;
mod claim;
mod connect;
mod copy;
mod crons;
mod definitions;
mod enqueue;
mod error;
mod filter;
mod finish;
mod history;
mod import;
mod instances;
mod listen;
mod listings;
mod maintenance;
mod migrate;
mod password;
mod row;
#[doc(hidden)]
pub mod testing;
mod tick;
mod time;
mod tls;
pub mod url;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Object, Pool};

pub use crate::store::backend::Wakeups;
pub use connect::POOL_SIZE;
pub use error::OpenError;
pub use migrate::SCHEMA_VERSION;
pub use password::Secret;
pub use time::ClockSync;
pub use url::{DATABASE_URL_VAR, PgSettings, SettingsError, SslMode};

use crate::clock::Clock;
use crate::store::{JobDefaults, StoreError};
use time::{ClockOffset, Frame};

/// What the store needs besides where the database is.
pub struct PgOptions {
    pub defaults: JobDefaults,
    /// The daemon's clock, against which the server's offset is measured.
    pub clock: Arc<dyn Clock>,
    pub clock_sync: ClockSync,
}

impl PgOptions {
    /// Measured offsets against `clock`: what a daemon uses.
    pub fn new(defaults: JobDefaults, clock: Arc<dyn Clock>) -> PgOptions {
        PgOptions {
            defaults,
            clock,
            clock_sync: ClockSync::Measure,
        }
    }
}

/// A handle on the PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    settings: PgSettings,
    /// `host:port`, for messages.
    server: String,
    pool: Pool,
    defaults: JobDefaults,
    clock: Arc<dyn Clock>,
    offset: ClockOffset,
    finisher: finish::Finisher,
    listener: listen::Listener,
}

impl PgStore {
    /// Connects, applies pending migrations (once, however many daemons
    /// start together), measures the clock offset, and starts the outcome
    /// batcher and the LISTEN connection. Fails, naming the variable and
    /// the server, when the server cannot be reached or refuses the login.
    pub async fn open(settings: PgSettings, options: PgOptions) -> Result<PgStore, OpenError> {
        let url = settings.to_string();
        let server = settings.server();
        let mut first = connect::connect_once(&settings, connect::APP_POOL).await?;
        migrate::run(&mut first, &url).await?;
        let offset = ClockOffset::new(options.clock_sync, server.clone());
        offset
            .measure(&first, options.clock.as_ref(), true)
            .await
            .map_err(|e| connect::connect_error(&settings, &e))?;
        drop(first);
        let pool = connect::pool(&settings)?;
        let finisher =
            finish::Finisher::start(pool.clone(), server.clone(), options.defaults.clone());
        let listener = listen::Listener::start(&settings)?;
        tracing::info!(
            database = %url,
            clock_offset_ms = -offset.get(),
            "opened the PostgreSQL store"
        );
        Ok(PgStore {
            inner: Arc::new(Inner {
                settings,
                server,
                pool,
                defaults: options.defaults,
                clock: options.clock,
                offset,
                finisher,
                listener,
            }),
        })
    }

    pub fn defaults(&self) -> &JobDefaults {
        &self.inner.defaults
    }

    pub fn settings(&self) -> &PgSettings {
        &self.inner.settings
    }

    /// The URL without its password, for `status`.
    pub fn display_url(&self) -> String {
        self.inner.settings.to_string()
    }

    /// This daemon's clock minus the server's, in milliseconds, as last
    /// measured (at open and at each heartbeat), for `status` and
    /// `instances`: positive when this host's clock is ahead.
    pub fn clock_offset_ms(&self) -> i64 {
        -self.inner.offset.get()
    }

    /// Wake-ups from other nodes' enqueues (and the SQL triggers), and
    /// reconnects of the LISTEN connection after which a claim pass is due.
    pub fn wakeups(&self) -> tokio::sync::watch::Receiver<Wakeups> {
        self.inner.listener.subscribe()
    }

    /// Sends relay messages on [`listen::EVENTS_CHANNEL`], all in one
    /// statement: delivered together, in order, at its commit.
    pub async fn publish_events(&self, messages: Vec<String>) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        let notify = format!(
            "SELECT pg_notify('{}', m) FROM unnest($1::text[]) AS m",
            listen::EVENTS_CHANNEL
        );
        client
            .execute(&notify, &[&messages])
            .await
            .map_err(|e| self.err(&e))?;
        Ok(())
    }

    /// Relay messages from every node, this one's included.
    pub fn remote_events(&self) -> tokio::sync::broadcast::Receiver<Arc<str>> {
        self.inner.listener.events()
    }

    /// Whether the store's own tasks (the outcome batcher, the LISTEN
    /// connection) are alive. The server's state does not count: see
    /// `Backend::responsive`. Costs no round trip.
    pub fn responsive(&self) -> bool {
        self.inner.finisher.is_running() && self.inner.listener.is_running()
    }

    /// How long the outcome batcher has been at its current batch (zero
    /// when idle): longer than a round trip while the server is down.
    pub fn outcomes_stalled_for(&self) -> Duration {
        self.inner.finisher.stalled_for()
    }

    /// Writes the outcomes already queued, stops the LISTEN connection and
    /// closes the pool. Later verbs fail with `Closed`.
    pub async fn close(&self) {
        self.inner.finisher.close().await;
        self.inner.listener.stop().await;
        self.inner.pool.close();
    }

    /// The server's version, e.g. "15.18".
    pub async fn server_version(&self) -> Result<String, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SHOW server_version", &[])
            .await
            .map_err(|e| self.err(&e))?;
        row.try_get(0).map_err(|e| self.err(&e))
    }

    /// A pooled connection.
    async fn client(&self) -> Result<Object, StoreError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| error::pool_error(e, &self.inner.server))
    }

    fn err(&self, e: &tokio_postgres::Error) -> StoreError {
        error::store_error(e, &self.inner.server)
    }

    /// This verb's view of the clock offset.
    fn frame(&self) -> Frame {
        self.inner.offset.frame()
    }

    /// Re-measures the clock offset on `client` (heartbeats do).
    async fn measure_offset(&self, client: &Object) -> Result<(), StoreError> {
        let raw: &tokio_postgres::Client = client;
        self.inner
            .offset
            .measure(raw, self.inner.clock.as_ref(), false)
            .await
            .map_err(|e| self.err(&e))
    }
}
