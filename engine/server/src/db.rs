//! Connections: the database is created when missing, migrated, and served through two
//! pools. `admin` (the DATABASE_URL user) runs migrations and DDL; `app` runs every
//! request as the `platform_app` role, inside a transaction that names the tenant, so
//! row-level security confines each query to the caller's tenant.

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, PgPool, Postgres, Transaction};
use std::str::FromStr;
use uuid::Uuid;

#[derive(Clone, Debug)]
pub struct Db {
    pub admin: PgPool,
    pub app: PgPool,
}

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Creates the database named in `url` if it does not exist.
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let opts =
        PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid PostgreSQL URL")?;
    let name = opts.get_database().unwrap_or("postgres").to_string();
    // Usually it exists: connect to it and be done.
    match opts.clone().connect().await {
        Ok(c) => {
            let _ = c.close().await;
            return Ok(());
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {}
        Err(e) => return Err(e).context("cannot connect to the database"),
    }
    let mut conn = opts
        .clone()
        .database("postgres")
        .connect()
        .await
        .context("cannot connect to PostgreSQL to check the database")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        match conn.execute(sql.as_str()).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it first.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e).context("cannot create the database"),
        }
    }
    Ok(())
}

/// Connects both pools and applies the engine's migrations.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
    ensure_database(url).await?;
    let opts = PgConnectOptions::from_str(url)?.disable_statement_logging();
    let admin = PgPoolOptions::new()
        .max_connections(6)
        .connect_with(opts.clone())
        .await
        .context("cannot connect to the database")?;
    MIGRATOR
        .run(&admin)
        .await
        .context("cannot apply the engine's migrations")?;
    let app = PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET ROLE platform_app").await?;
                Ok(())
            })
        })
        .connect_with(opts)
        .await?;
    Ok(Db { admin, app })
}

/// A transaction confined to `tenant`: row-level security shows it only that tenant's
/// rows. One round trip: BEGIN and the tenant setting travel together.
pub async fn tenant_tx(
    pool: &PgPool,
    tenant: Uuid,
) -> sqlx::Result<Transaction<'static, Postgres>> {
    // A Uuid prints as hex and dashes only, so inlining it is safe.
    pool.begin_with(format!(
        "BEGIN; SELECT set_config('app.tenant_id', '{}', true)",
        tenant.hyphenated()
    ))
    .await
}
