//! Logging: text on stderr with a level that can change at runtime.

use std::sync::Arc;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::Config;

/// Changes the level of a running daemon's logs.
pub type LevelSetter = Arc<dyn Fn(&str) -> Result<String, String> + Send + Sync>;

/// Installs the global subscriber. Returns `None` when one was already
/// installed (a library user's own).
pub fn init(config: &Config) -> Option<LevelSetter> {
    let (filter, handle) = reload::Layer::new(EnvFilter::new(&config.log_level));
    // Colours only on a terminal: under systemd or in a file, escape codes
    // would garble every line and break grep for `uid=`.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .ok()?;
    Some(Arc::new(move |level: &str| {
        handle
            .reload(EnvFilter::new(level))
            .map_err(|e| e.to_string())?;
        Ok(level.to_string())
    }))
}
