//! Wake-ups across machines: one connection outside the pool LISTENs on
//! `cronq_jobs`; each notification (one per enqueue transaction, sent at
//! commit by the schema's statement trigger, also for rows an application
//! inserts with plain SQL) bumps a counter that the dispatcher waits on.
//!
//! The same connection LISTENs on [`EVENTS_CHANNEL`], the event relay's
//! (`queue::relay`): each payload there is handed on as it came, through a
//! bounded broadcast that drops the oldest when nobody keeps up.
//!
//! The connection reconnects by itself, with a pause growing to
//! [`MAX_PAUSE`]. Notifications sent while it was down are lost, so every
//! (re)connection bumps `reconnects`: the dispatcher then makes a claim
//! pass, and nothing enqueued during the gap waits for the slow poll. TCP
//! keepalives (see `connect`) notice a vanished server without waking this
//! process, so an idle cluster stays idle.

use std::time::Duration;

use std::sync::Arc;

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;

use super::connect::{APP_LISTEN, connector, pg_config};
use super::error::{OpenError, describe};
use super::url::PgSettings;
use crate::store::backend::Wakeups;

/// The channel every node listens on.
pub const CHANNEL: &str = "cronq_jobs";
/// The channel of relayed events, forced cancels and interest.
pub const EVENTS_CHANNEL: &str = "cronq_events";
/// Relay messages held for a slow reader before the oldest are dropped.
const EVENTS_BUFFER: usize = 4096;
/// The longest pause between reconnection attempts.
pub const MAX_PAUSE: Duration = Duration::from_secs(5);
const FIRST_PAUSE: Duration = Duration::from_millis(100);

pub(super) struct Listener {
    state: watch::Receiver<Wakeups>,
    events: broadcast::Sender<Arc<str>>,
    stop: CancellationToken,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Listener {
    /// Starts listening; does not wait for the first connection.
    pub fn start(settings: &PgSettings) -> Result<Listener, OpenError> {
        let tls = connector(settings)?;
        let config = pg_config(settings, APP_LISTEN);
        let server = settings.server();
        let (tx, state) = watch::channel(Wakeups::default());
        let (events, _) = broadcast::channel(EVENTS_BUFFER);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(config, tls, server, tx, events.clone(), stop.clone()));
        Ok(Listener {
            state,
            events,
            stop,
            task: std::sync::Mutex::new(Some(task)),
        })
    }

    pub fn subscribe(&self) -> watch::Receiver<Wakeups> {
        self.state.clone()
    }

    /// Whether the listening task runs (it ends only at `stop`, or by a
    /// panic).
    pub fn is_running(&self) -> bool {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Payloads of [`EVENTS_CHANNEL`] from now on.
    pub fn events(&self) -> broadcast::Receiver<Arc<str>> {
        self.events.subscribe()
    }

    pub async fn stop(&self) {
        self.stop.cancel();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for Listener {
    /// A store dropped without `close` still stops reconnecting.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn run(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    server: String,
    state: watch::Sender<Wakeups>,
    events: broadcast::Sender<Arc<str>>,
    stop: CancellationToken,
) {
    let mut pause = FIRST_PAUSE;
    let mut down_logged = false;
    while !stop.is_cancelled() {
        let connected = tokio::select! {
            r = listen_once(&config, &tls, &state, &events, &stop, &mut pause, &mut down_logged) => r,
            () = stop.cancelled() => return,
        };
        // Only a real change is told: each failed reconnection attempt
        // would otherwise wake every subscriber for nothing.
        state.send_if_modified(|w| std::mem::replace(&mut w.connected, false));
        if let Err(reason) = connected
            && !down_logged
        {
            tracing::warn!(
                server = %server,
                error = %reason,
                "lost the LISTEN connection to PostgreSQL; reconnecting (jobs are claimed by polling meanwhile)"
            );
            down_logged = true;
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop.cancelled() => return,
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// One connection's life: connect, LISTEN, report, forward notifications
/// until the connection ends. Errors are the reason it ended.
async fn listen_once(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    state: &watch::Sender<Wakeups>,
    events: &broadcast::Sender<Arc<str>>,
    stop: &CancellationToken,
    pause: &mut Duration,
    down_logged: &mut bool,
) -> Result<(), String> {
    let (client, mut connection) = config
        .connect(tls.clone())
        .await
        .map_err(|e| describe(&e))?;
    // The connection is driven here, by polling its messages; the LISTEN
    // statement runs beside it.
    let (ended_tx, mut ended) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let forward = {
        let (state, events) = (state.clone(), events.clone());
        async move {
            let result = loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) if n.channel() == EVENTS_CHANNEL => {
                        // No receiver yet is no error: nobody relays.
                        let _ = events.send(Arc::from(n.payload()));
                    }
                    Some(Ok(AsyncMessage::Notification(_))) => {
                        state.send_modify(|w| w.notifications += 1);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break Err(describe(&e)),
                    None => break Err("the server closed the connection".to_string()),
                }
            };
            let _ = ended_tx.send(result);
        }
    };
    let driver = tokio::spawn(forward);
    let listen = format!("LISTEN {CHANNEL}; LISTEN {EVENTS_CHANNEL}");
    let listened = tokio::select! {
        r = client.batch_execute(&listen) => r.map_err(|e| describe(&e)),
        r = &mut ended => r.unwrap_or(Err("the connection ended".into())).and(Err("the connection ended".into())),
    };
    if let Err(reason) = listened {
        driver.abort();
        return Err(reason);
    }
    state.send_modify(|w| {
        w.connected = true;
        w.reconnects += 1;
    });
    if *down_logged {
        tracing::info!("the LISTEN connection to PostgreSQL is back");
        *down_logged = false;
    }
    *pause = FIRST_PAUSE;
    let result = tokio::select! {
        r = &mut ended => r.unwrap_or(Err("the connection ended".into())),
        () = stop.cancelled() => Ok(()),
    };
    driver.abort();
    drop(client);
    result
}
