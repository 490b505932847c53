//! The crons files' definitions each daemon publishes: replaced whole per
//! instance, listed only for registered instances, gone with the instance.

use super::Fixture;
use crate::clock::Millis;
use crate::store::definition::{CronDefinition, DefinitionRow};
use crate::store::instance::InstanceRow;
use crate::store::tick::Tick;

const NOW: Millis = 1_800_000_000_000;

fn instance(id: &str, host: &str) -> InstanceRow {
    InstanceRow {
        id: id.into(),
        host: host.into(),
        boot_id: "boot".into(),
        pid: 42,
        start_ticks: 7,
        version: "test".into(),
        started: NOW,
        heartbeat_at: NOW,
        workers_max: 5,
        workers_busy: 0,
        clock_offset_ms: 0,
    }
}

fn def(cron_id: &str, digest: &str) -> CronDefinition {
    CronDefinition {
        cron_id: cron_id.into(),
        digest: digest.into(),
    }
}

fn listed(rows: &[DefinitionRow]) -> Vec<(String, String, String, String)> {
    rows.iter()
        .map(|r| {
            (
                r.instance_id.clone(),
                r.host.clone(),
                r.cron_id.clone(),
                r.digest.clone(),
            )
        })
        .collect()
}

fn t(a: &str, b: &str, c: &str, d: &str) -> (String, String, String, String) {
    (a.into(), b.into(), c.into(), d.into())
}

pub async fn definitions_are_replaced_whole_and_listed_for_registered_instances(store: &Fixture) {
    store
        .register_instance(instance("a", "alpha"))
        .await
        .unwrap();
    store
        .register_instance(instance("b", "beta"))
        .await
        .unwrap();
    store
        .set_cron_definitions("a".into(), vec![def("x", "d1"), def("y", "d2")], NOW)
        .await
        .unwrap();
    store
        .set_cron_definitions("b".into(), vec![def("x", "d9")], NOW)
        .await
        .unwrap();
    // An instance that is not registered (removed as dead meanwhile) is not
    // listed.
    store
        .set_cron_definitions("ghost".into(), vec![def("x", "d5")], NOW)
        .await
        .unwrap();
    assert_eq!(
        listed(&store.cron_definitions().await.unwrap()),
        vec![
            t("a", "alpha", "x", "d1"),
            t("a", "alpha", "y", "d2"),
            t("b", "beta", "x", "d9"),
        ]
    );
    // A reload that drops y and changes x replaces a's rows.
    let other = store.another().await;
    other
        .set_cron_definitions("a".into(), vec![def("x", "d9")], NOW + 1)
        .await
        .unwrap();
    assert_eq!(
        listed(&store.cron_definitions().await.unwrap()),
        vec![t("a", "alpha", "x", "d9"), t("b", "beta", "x", "d9")]
    );
    // No file crons: nothing published.
    store
        .set_cron_definitions("a".into(), Vec::new(), NOW + 2)
        .await
        .unwrap();
    assert_eq!(
        listed(&store.cron_definitions().await.unwrap()),
        vec![t("b", "beta", "x", "d9")]
    );
}

pub async fn definitions_go_with_their_instance(store: &Fixture) {
    for (id, host) in [("a", "alpha"), ("b", "beta"), ("c", "gamma")] {
        store.register_instance(instance(id, host)).await.unwrap();
        store
            .set_cron_definitions(id.into(), vec![def("x", "d")], NOW)
            .await
            .unwrap();
    }
    store.remove_instances(vec!["a".into()]).await.unwrap();
    // A tick that finds b dead removes it, and its definitions with it.
    let tick = Tick {
        now: NOW + 10,
        instance: instance("c", "gamma"),
        leases: Vec::new(),
        run: None,
        stale_before: NOW - 300_000,
        judge: Box::new(|r: &InstanceRow| r.id == "b"),
        types: vec!["noop".into()],
        limit: 0,
        quotas: Vec::new(),
        prune: None,
    };
    assert_eq!(store.tick(tick).await.unwrap().removed_instances, 1);
    assert_eq!(
        listed(&store.cron_definitions().await.unwrap()),
        vec![t("c", "gamma", "x", "d")]
    );
    // Registered again (a stalled daemon coming back), a removed instance
    // has no definitions until it publishes them again.
    store
        .register_instance(instance("a", "alpha"))
        .await
        .unwrap();
    assert_eq!(store.cron_definitions().await.unwrap().len(), 1);
}

pub async fn the_cluster_read_is_the_switches_and_the_definitions(store: &Fixture) {
    store
        .register_instance(instance("a", "alpha"))
        .await
        .unwrap();
    store
        .register_instance(instance("b", "beta"))
        .await
        .unwrap();
    store
        .set_cron_definitions("b".into(), vec![def("y", "d2"), def("x", "d1")], NOW)
        .await
        .unwrap();
    store
        .set_cron_definitions("a".into(), vec![def("x", "d3")], NOW)
        .await
        .unwrap();
    store
        .set_cron_enabled("x".into(), false, NOW)
        .await
        .unwrap();
    store.set_cron_enabled("z".into(), true, NOW).await.unwrap();
    let both = store.cron_cluster().await.unwrap();
    assert_eq!(both.switches, store.cron_switches().await.unwrap());
    assert_eq!(both.definitions, store.cron_definitions().await.unwrap());
    assert_eq!(both.switches.len(), 2);
    assert_eq!(
        listed(&both.definitions),
        vec![
            t("a", "alpha", "x", "d3"),
            t("b", "beta", "x", "d1"),
            t("b", "beta", "y", "d2"),
        ]
    );
}
