//! The audit trail's hash chain: each tenant's audit events are linked in order, each
//! link's hash = sha256(previous hash || the event's canonical text), so altering,
//! removing or slipping in an event shows at `platform audit verify`.
//!
//! Write transactions never wait on the chain: they add their event to
//! `engine.audit_unsealed`, and one sealer at a time (any process; an advisory lock
//! decides) links what is waiting, in (occurred_at, id) order per batch. The runtime role
//! can neither change audit events nor touch the chain.

use crate::app::App;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::Weak;
use std::time::Duration;
use uuid::Uuid;

/// The canonical text of an audit event `a`, computed by PostgreSQL so that the sealer
/// and the verifier read it the same way (jsonb prints its keys in a fixed order).
const CANONICAL: &str =
    "concat_ws('|', a.id::text, a.tenant_id::text, a.object, a.record_id::text, a.action,
    a.record_version::text, a.actor, array_to_string(a.roles, ','), coalesce(a.request_id, ''),
    coalesce(a.correlation_id, ''), a.metadata_version::text, a.changes::text,
    to_char(a.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'))";

/// Lock key for "one sealer at a time" (arbitrary, fixed).
const SEALER_LOCK: i64 = 0x5EA1_A0D1;

fn link(prev: &[u8], canonical: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical.as_bytes());
    h.finalize().to_vec()
}

/// Links up to `limit` waiting events into their tenants' chains. Returns how many.
pub async fn seal(pool: &PgPool, limit: i64) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(SEALER_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        tx.rollback().await?;
        return Ok(0);
    }
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "DELETE FROM engine.audit_unsealed WHERE event_id IN (SELECT event_id FROM engine.audit_unsealed LIMIT $1) RETURNING event_id",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if ids.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let rows: Vec<(Uuid, Uuid, String)> = sqlx::query_as(&format!(
        "SELECT a.id, a.tenant_id, {CANONICAL} FROM engine.audit_events a WHERE a.id = ANY($1) ORDER BY a.tenant_id, a.occurred_at, a.id"
    ))
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut by_tenant: BTreeMap<Uuid, Vec<(Uuid, String)>> = BTreeMap::new();
    for (id, tenant, text) in rows {
        by_tenant.entry(tenant).or_default().push((id, text));
    }
    let mut sealed = 0;
    for (tenant, events) in by_tenant {
        let last: Option<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, hash FROM engine.audit_chain WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?;
        let (mut seq, mut prev) = last.unwrap_or((0, vec![0u8; 32]));
        let (mut seqs, mut ids, mut prevs, mut hashes) = (vec![], vec![], vec![], vec![]);
        for (id, text) in events {
            seq += 1;
            let hash = link(&prev, &text);
            seqs.push(seq);
            ids.push(id);
            prevs.push(prev);
            hashes.push(hash.clone());
            prev = hash;
        }
        sealed += ids.len();
        sqlx::query(
            "INSERT INTO engine.audit_chain (tenant_id, seq, event_id, prev_hash, hash)
             SELECT $1, * FROM unnest($2::bigint[], $3::uuid[], $4::bytea[], $5::bytea[])",
        )
        .bind(tenant)
        .bind(&seqs)
        .bind(&ids)
        .bind(&prevs)
        .bind(&hashes)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(sealed)
}

/// Seals until nothing waits.
pub async fn seal_all(pool: &PgPool) -> anyhow::Result<usize> {
    let mut total = 0;
    loop {
        let n = seal(pool, 5000).await?;
        total += n;
        if n == 0 {
            return Ok(total);
        }
    }
}

/// The sealer loop of a serving process.
pub async fn sealer(app: Weak<App>) {
    loop {
        let Some(a) = app.upgrade().filter(|a| !a.db.admin.is_closed()) else {
            return;
        };
        let pool = a.db.admin.clone();
        drop(a);
        match seal(&pool, 2000).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot seal audit events"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Where the chain breaks first.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Break {
    pub tenant: Uuid,
    /// The link number in the tenant's chain (None for an event outside the chain).
    pub seq: Option<i64>,
    pub event_id: Uuid,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tenants: u64,
    pub links: u64,
    pub first_break: Option<Break>,
}

/// Walks every tenant's chain (or one tenant's) and recomputes each link.
pub async fn verify(pool: &PgPool, tenant: Option<Uuid>) -> anyhow::Result<Report> {
    use futures_util::TryStreamExt;
    let sql = format!(
        "SELECT c.tenant_id, c.seq, c.event_id, c.prev_hash, c.hash, a.id IS NOT NULL, CASE WHEN a.id IS NULL THEN '' ELSE {CANONICAL} END
         FROM engine.audit_chain c LEFT JOIN engine.audit_events a ON a.id = c.event_id
         WHERE $1::uuid IS NULL OR c.tenant_id = $1
         ORDER BY c.tenant_id, c.seq"
    );
    let mut rows = sqlx::query_as::<_, (Uuid, i64, Uuid, Vec<u8>, Vec<u8>, bool, String)>(&sql)
        .bind(tenant)
        .fetch(pool);
    let (mut tenants, mut links) = (0u64, 0u64);
    let mut current: Option<Uuid> = None;
    let (mut expect_seq, mut prev) = (1i64, vec![0u8; 32]);
    while let Some((t, seq, event_id, prev_hash, hash, exists, text)) = rows.try_next().await? {
        if current != Some(t) {
            current = Some(t);
            tenants += 1;
            expect_seq = 1;
            prev = vec![0u8; 32];
        }
        links += 1;
        let broken = |reason: String| Break {
            tenant: t,
            seq: Some(seq),
            event_id,
            reason,
        };
        let problem = if seq != expect_seq {
            Some(format!(
                "link {expect_seq} is missing (the next link is {seq})"
            ))
        } else if prev_hash != prev {
            Some("the link does not point to the previous link's hash".to_string())
        } else if !exists {
            Some("the audit event of this link was deleted".to_string())
        } else if link(&prev, &text) != hash {
            Some(
                "the audit event was altered: its content does not match the link's hash"
                    .to_string(),
            )
        } else {
            None
        };
        if let Some(reason) = problem {
            return Ok(Report {
                tenants,
                links,
                first_break: Some(broken(reason)),
            });
        }
        expect_seq = seq + 1;
        prev = hash;
    }
    drop(rows);
    // Events that are neither linked nor waiting were written around the engine.
    let stray: Option<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT a.tenant_id, a.id FROM engine.audit_events a
         WHERE ($1::uuid IS NULL OR a.tenant_id = $1)
           AND NOT EXISTS (SELECT 1 FROM engine.audit_chain c WHERE c.event_id = a.id)
           AND NOT EXISTS (SELECT 1 FROM engine.audit_unsealed u WHERE u.event_id = a.id)
         ORDER BY a.occurred_at LIMIT 1",
    )
    .bind(tenant)
    .fetch_optional(pool)
    .await?;
    Ok(Report {
        tenants,
        links,
        first_break: stray.map(|(t, id)| Break {
            tenant: t,
            seq: None,
            event_id: id,
            reason: "an audit event is outside the chain (inserted around the engine)".into(),
        }),
    })
}
