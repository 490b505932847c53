//! What each daemon's crons file defines, as the store keeps it: daemons on
//! one database whose files give one cron id different definitions are
//! reported, and this is how each learns what the others have.
//!
//! Only a digest of each definition is stored (the scheduler computes it,
//! `CronSpec::digest`), not the definition: equal digests are equal
//! definitions, and the rows stay small whatever a cron's data holds.

/// One file cron of this daemon, as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronDefinition {
    pub cron_id: String,
    pub digest: String,
}

/// One cron definition of a registered daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionRow {
    pub instance_id: String,
    /// The instance's host, as registered.
    pub host: String,
    pub cron_id: String,
    pub digest: String,
}

/// What the scheduler reads of the cluster before it fires: every
/// persisted `enable`/`disable`, by cron id, and every registered
/// instance's definitions, by instance then cron id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterCrons {
    pub switches: std::collections::HashMap<String, bool>,
    pub definitions: Vec<DefinitionRow>,
}
