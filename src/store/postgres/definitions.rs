//! `cron_definitions` on PostgreSQL: each node publishes a digest of every
//! file cron it defines, so nodes whose crons files differ are reported
//! (see `store::definition`).

use deadpool_postgres::GenericClient;

use super::PgStore;
use crate::clock::Millis;
use crate::store::StoreError;
use crate::store::definition::{ClusterCrons, CronDefinition, DefinitionRow};

impl PgStore {
    /// Replaces `instance`'s published definitions with `definitions`, in
    /// one transaction, so another node never reads half of them.
    pub async fn set_cron_definitions(
        &self,
        instance: String,
        definitions: Vec<CronDefinition>,
        now: Millis,
    ) -> Result<(), StoreError> {
        let at = self.frame().db(now);
        let (ids, digests): (Vec<String>, Vec<String>) = definitions
            .into_iter()
            .map(|d| (d.cron_id, d.digest))
            .unzip();
        let mut client = self.client().await?;
        let e = |e: tokio_postgres::Error| self.err(&e);
        let tx = client.transaction().await.map_err(e)?;
        tx.execute(
            "DELETE FROM cron_definitions WHERE instance_id = $1",
            &[&instance],
        )
        .await
        .map_err(e)?;
        tx.execute(
            "INSERT INTO cron_definitions (instance_id, cron_id, digest, updated)
             SELECT $1, d.cron_id, d.digest, $4
               FROM unnest($2::text[], $3::text[]) AS d(cron_id, digest)
             ON CONFLICT (instance_id, cron_id) DO UPDATE SET digest = excluded.digest",
            &[&instance, &ids, &digests, &at],
        )
        .await
        .map_err(e)?;
        tx.commit().await.map_err(e)
    }

    /// The definitions of every registered instance.
    pub async fn cron_definitions(&self) -> Result<Vec<DefinitionRow>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT d.instance_id, i.host, d.cron_id, d.digest
                   FROM cron_definitions d JOIN instances i ON i.id = d.instance_id
                  ORDER BY d.instance_id, d.cron_id",
                &[],
            )
            .await
            .map_err(|e| self.err(&e))?;
        rows.iter()
            .map(|r| {
                Ok(DefinitionRow {
                    instance_id: r.try_get(0)?,
                    host: r.try_get(1)?,
                    cron_id: r.try_get(2)?,
                    digest: r.try_get(3)?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| self.err(&e))
    }
}

impl PgStore {
    /// The switches and the definitions in one statement (one round trip).
    pub async fn cron_cluster(&self) -> Result<ClusterCrons, StoreError> {
        let client = self.client().await?;
        let e = |e: tokio_postgres::Error| self.err(&e);
        let stmt = client
            .prepare_cached(
                "SELECT 'definition' AS kind, d.instance_id, i.host, d.cron_id, d.digest,
                        NULL::boolean AS enabled
                   FROM cron_definitions d JOIN instances i ON i.id = d.instance_id
                 UNION ALL
                 SELECT 'switch', NULL, NULL, s.cron_id, NULL, s.enabled FROM cron_state s
                  ORDER BY 1, 2, 4",
            )
            .await
            .map_err(e)?;
        let mut out = ClusterCrons::default();
        for r in client.query(&stmt, &[]).await.map_err(e)? {
            let kind: &str = r.try_get(0).map_err(e)?;
            if kind == "switch" {
                out.switches
                    .insert(r.try_get(3).map_err(e)?, r.try_get(5).map_err(e)?);
            } else {
                out.definitions.push(DefinitionRow {
                    instance_id: r.try_get(1).map_err(e)?,
                    host: r.try_get(2).map_err(e)?,
                    cron_id: r.try_get(3).map_err(e)?,
                    digest: r.try_get(4).map_err(e)?,
                });
            }
        }
        Ok(out)
    }
}

/// Deletes the definitions of removed instances, in their removal's
/// statement group.
pub(super) async fn remove_definitions_on(
    client: &impl GenericClient,
    ids: &[String],
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM cron_definitions WHERE instance_id = ANY($1)",
            &[&ids],
        )
        .await?;
    Ok(())
}
