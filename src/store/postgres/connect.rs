//! Connections: the tokio-postgres configuration built from
//! [`PgSettings`], the deadpool pool the verbs share, and single
//! connections (the first one at open, the LISTEN one) whose failures are
//! told in terms of the variable and the server.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::error::{OpenError, describe};
use super::tls;
use super::url::{Host, PgSettings, SslMode};

/// Connections the pool keeps at most. Claims, outcome batches, enqueues
/// and the admin's reads each hold one for a statement or a short
/// transaction; the LISTEN connection is outside the pool.
pub const POOL_SIZE: usize = 8;
/// How long a verb waits for a free pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(5);
/// TCP keepalives, so a server that vanished (power cut, network) is
/// noticed by an idle connection within about a minute, without a single
/// wake-up of this process meanwhile.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 3;
/// How long data sent may stay unacknowledged before the connection is
/// given up (TCP_USER_TIMEOUT). Keepalives only watch an idle connection;
/// a statement sent to a server that vanished mid-way (a cut cable, a
/// firewall dropping packets) would otherwise wait out the kernel's
/// retransmissions, about 15 minutes. With this it fails in 30 s as an
/// outage, and the outcome writer keeps its batch and tries again.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// What `application_name` says in `pg_stat_activity`.
pub const APP_POOL: &str = "cronq";
pub const APP_LISTEN: &str = "cronq listen";

/// The tokio-postgres configuration for one kind of connection.
pub(super) fn pg_config(settings: &PgSettings, application: &str) -> Config {
    let mut config = Config::new();
    config
        .user(&settings.user)
        .dbname(&settings.dbname)
        .port(settings.port)
        .connect_timeout(settings.connect_timeout)
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES)
        .tcp_user_timeout(TCP_USER_TIMEOUT)
        .application_name(settings.application_name.as_deref().unwrap_or(application))
        .ssl_mode(match settings.ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
    match &settings.host {
        Host::Tcp(h) => config.host(h),
        Host::Socket(dir) => config.host_path(dir),
    };
    if let Some(password) = &settings.password {
        config.password(password.expose());
    }
    config
}

pub(super) fn connector(settings: &PgSettings) -> Result<MakeRustlsConnect, OpenError> {
    tls::connector(settings).map_err(OpenError::Tls)
}

/// The pool; it connects lazily, so building it cannot fail on the network.
pub(super) fn pool(settings: &PgSettings) -> Result<Pool, OpenError> {
    let manager = Manager::from_config(
        pg_config(settings, APP_POOL),
        connector(settings)?,
        ManagerConfig {
            // A connection whose socket closed is dropped at its next
            // checkout; a live one costs no round trip to hand out.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(POOL_WAIT))
        .build()
        .map_err(|e| OpenError::Tls(format!("cannot build the connection pool: {e}")))
}

/// One connection outside the pool, driven by a task of its own; the
/// error names the variable and the server.
pub(super) async fn connect_once(
    settings: &PgSettings,
    application: &str,
) -> Result<Client, OpenError> {
    let (client, connection) = pg_config(settings, application)
        .connect(connector(settings)?)
        .await
        .map_err(|e| connect_error(settings, &e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

pub(super) fn connect_error(settings: &PgSettings, e: &tokio_postgres::Error) -> OpenError {
    let mut reason = describe(e);
    if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD) {
        match settings.password_source {
            Some(source) => reason.push_str(&format!("; the password came from {source}")),
            None => reason.push_str(
                "; no password was given (in the URL, PGPASSFILE or the credential database_password)",
            ),
        }
    }
    OpenError::Connect {
        server: settings.server(),
        url: settings.to_string(),
        reason,
    }
}
