//! The handlers that ship with cronq, and the list the daemon starts with.

pub mod command;
pub mod data;
pub mod email;
pub mod noop;

use crate::config::Config;
use crate::queue::handler::Registration;

/// The built-in handlers, each enabled or not according to `config`, with
/// command jobs held as `containment` says (the daemon detects it once at
/// start-up; `cronq check`, which runs no job, passes `Offline`).
pub fn builtin(config: &Config, containment: command::Containment) -> Vec<Registration> {
    vec![
        Registration::new(noop::Noop),
        Registration::new(
            data::DataProcessing::with_limits(
                config.data_dir.clone(),
                data::DataLimits {
                    max_bytes: config.data_max_bytes,
                    max_groups: config.data_max_groups,
                },
            )
            .with_pocketbase(config.pocketbase.clone()),
        ),
        email::registration(&config.smtp),
        command::registration(config, containment),
    ]
}
