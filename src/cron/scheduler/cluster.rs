//! What the scheduler learns from the other daemons on its database: the
//! `enable`/`disable` switches any of them set, and where their crons files
//! define one cron id differently.
//!
//! A cron fires once cluster-wide through the unique run row; whether it
//! fires at all is its switch, which lives in the database. Each daemon
//! reads the switches again before firing anything (one cheap read when a
//! cron is due, about once a minute), so a `disable` sent to any node holds
//! on every node from its next fire time on, with no message between them.
//!
//! Each daemon also publishes a digest of every file cron it defines
//! (`CronSpec::digest`) at start-up and after each reload, and reads the
//! others' with the switches. Two digests for one id mean two nodes would
//! enqueue different jobs for the same run, depending on which fires
//! first: `crons` marks such a cron with its `conflict`, and the log says
//! which nodes differ, once per change.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::Scheduler;
use crate::cron::spec::SYSTEM_QUEUE;
use crate::store::StoreError;
use crate::store::definition::{CronDefinition, DefinitionRow};

/// A cron this daemon defines, which other daemons define differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// This daemon's digest of its definition.
    pub digest: String,
    /// The other daemons whose definition differs, by instance id.
    pub instances: Vec<Peer>,
}

/// A daemon and its digest of one cron.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Peer {
    pub id: String,
    pub host: String,
    pub digest: String,
}

/// The cluster as this daemon last read it.
#[derive(Debug, Default)]
pub(super) struct Cluster {
    /// This daemon's definitions have changed since it last published them.
    pub(super) unpublished: bool,
    /// Bumped by every local `enable`/`disable`, so a read of the switches
    /// that began before one does not overwrite it with what it replaced.
    pub(super) switch_generation: u64,
    /// Conflicts of this daemon's crons, by cron id.
    pub(super) conflicts: HashMap<String, Conflict>,
    /// Every cron id defined differently somewhere, with who defines what,
    /// as last logged.
    logged: BTreeMap<String, BTreeSet<Peer>>,
}

impl Cluster {
    /// Before anything was read or published: a new scheduler's.
    pub(super) fn unpublished() -> Cluster {
        Cluster {
            unpublished: true,
            ..Cluster::default()
        }
    }
}

impl Scheduler {
    /// Publishes this daemon's definitions if they changed, then reads the
    /// switches and every daemon's definitions, taking in what changed and
    /// logging differences between crons files. On an error the last state
    /// stays in force.
    pub async fn sync_cluster(&self) -> Result<(), StoreError> {
        let unpublished = std::mem::take(&mut self.table().cluster.unpublished);
        if unpublished && let Err(e) = self.publish_definitions().await {
            self.table().cluster.unpublished = true;
            return Err(e);
        }
        let generation = self.table().cluster.switch_generation;
        let crate::store::definition::ClusterCrons {
            switches,
            definitions: rows,
        } = self.store().cron_cluster().await?;
        let me = self.inner.queue.instance().id.clone();
        let published = rows.iter().any(|r| r.instance_id == me);
        let own = self.own_definitions();
        let automatic = {
            let mut table = self.table();
            if table.cluster.switch_generation == generation {
                table.overrides = switches;
            }
            table.cluster.conflicts = conflicts(&own, &rows, &me);
            let differing = differing(&rows);
            log_changes(&table.cluster.logged, &differing);
            table.cluster.logged = differing;
            let system_queue = table.crons.get(SYSTEM_QUEUE);
            system_queue.map(|spec| table.enabled(spec))
        };
        // Another daemon's `disable system_queue` turns automatic
        // processing off here too, as this daemon's own would.
        if let Some(on) = automatic {
            self.inner.queue.set_automatic(on);
        }
        // Removed as dead while it stalled, this daemon came back without
        // its definitions: the others cannot compare with it until it
        // publishes them again.
        if !published && !own.is_empty() {
            self.publish_definitions().await?;
        }
        Ok(())
    }

    /// Marks this daemon's definitions as changed (start-up, reload).
    pub(super) fn definitions_changed(&self) {
        self.table().cluster.unpublished = true;
    }

    fn own_definitions(&self) -> Vec<CronDefinition> {
        self.table()
            .crons
            .values()
            .filter_map(|spec| {
                Some(CronDefinition {
                    cron_id: spec.id.clone(),
                    digest: spec.digest()?,
                })
            })
            .collect()
    }

    async fn publish_definitions(&self) -> Result<(), StoreError> {
        let own = self.own_definitions();
        let me = self.inner.queue.instance().id.clone();
        let now = self.clock().now().as_millisecond();
        self.store().set_cron_definitions(me, own, now).await
    }
}

/// For each of `own`, the other instances whose digest of it differs.
fn conflicts(
    own: &[CronDefinition],
    rows: &[DefinitionRow],
    me: &str,
) -> HashMap<String, Conflict> {
    let mut out = HashMap::new();
    for def in own {
        let mut instances: Vec<Peer> = rows
            .iter()
            .filter(|r| r.cron_id == def.cron_id && r.instance_id != me && r.digest != def.digest)
            .map(|r| Peer {
                id: r.instance_id.clone(),
                host: r.host.clone(),
                digest: r.digest.clone(),
            })
            .collect();
        if instances.is_empty() {
            continue;
        }
        instances.sort();
        out.insert(
            def.cron_id.clone(),
            Conflict {
                digest: def.digest.clone(),
                instances,
            },
        );
    }
    out
}

/// Every cron id with more than one digest among the registered daemons,
/// with each daemon that defines it.
fn differing(rows: &[DefinitionRow]) -> BTreeMap<String, BTreeSet<Peer>> {
    let mut by_cron: BTreeMap<String, BTreeSet<Peer>> = BTreeMap::new();
    for r in rows {
        by_cron.entry(r.cron_id.clone()).or_default().insert(Peer {
            id: r.instance_id.clone(),
            host: r.host.clone(),
            digest: r.digest.clone(),
        });
    }
    by_cron.retain(|_, peers| {
        let digests: BTreeSet<&str> = peers.iter().map(|p| p.digest.as_str()).collect();
        digests.len() > 1
    });
    by_cron
}

/// Logs each difference that is new or changed since `before`, and each
/// that is gone.
fn log_changes(before: &BTreeMap<String, BTreeSet<Peer>>, now: &BTreeMap<String, BTreeSet<Peer>>) {
    for (cron_id, peers) in now {
        if before.get(cron_id) == Some(peers) {
            continue;
        }
        let nodes = describe(peers);
        tracing::warn!(
            cron_id = %cron_id,
            nodes = %nodes,
            "cron {cron_id} is defined differently in the crons files of the daemons on this \
             database ({nodes}); which definition a run uses depends on which daemon fires it: \
             make the files agree"
        );
    }
    for cron_id in before.keys().filter(|id| !now.contains_key(*id)) {
        tracing::info!(
            cron_id = %cron_id,
            "cron {cron_id} is now defined alike by every daemon that defines it"
        );
    }
}

/// `host (instance) digest D, ...`, grouped by digest.
fn describe(peers: &BTreeSet<Peer>) -> String {
    let mut by_digest: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for p in peers {
        by_digest
            .entry(p.digest.as_str())
            .or_default()
            .push(format!("{} ({})", p.host, p.id));
    }
    by_digest
        .iter()
        .map(|(digest, nodes)| format!("{} has digest {digest}", nodes.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(instance: &str, cron: &str, digest: &str) -> DefinitionRow {
        DefinitionRow {
            instance_id: instance.into(),
            host: format!("host-{instance}"),
            cron_id: cron.into(),
            digest: digest.into(),
        }
    }

    #[test]
    fn a_conflict_lists_the_other_daemons_whose_digest_differs() {
        let rows = [
            row("me", "x", "d1"),
            row("b", "x", "d1"),
            row("c", "x", "d2"),
            row("me", "y", "d3"),
            row("b", "y", "d3"),
            row("c", "z", "d4"),
        ];
        let own = [
            CronDefinition {
                cron_id: "x".into(),
                digest: "d1".into(),
            },
            CronDefinition {
                cron_id: "y".into(),
                digest: "d3".into(),
            },
        ];
        let found = conflicts(&own, &rows, "me");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found["x"],
            Conflict {
                digest: "d1".into(),
                instances: vec![Peer {
                    id: "c".into(),
                    host: "host-c".into(),
                    digest: "d2".into()
                }],
            }
        );
        let all = differing(&rows);
        assert_eq!(all.keys().collect::<Vec<_>>(), vec!["x"]);
        assert_eq!(
            describe(&all["x"]),
            "host-b (b), host-me (me) has digest d1; host-c (c) has digest d2"
        );
    }
}
