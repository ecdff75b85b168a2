//! The `platform` binary: serve, check definitions, issue development tokens.

use clap::{Parser, Subcommand};
use platform::app::{load_catalog, App, Settings};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "platform",
    version,
    about = "Metadata-driven ERP/CRM platform engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the HTTP server (creates and migrates the database, applies the metadata).
    Serve {
        #[arg(long, default_value = "127.0.0.1:3010", env = "PLATFORM_ADDR")]
        addr: String,
        /// The folder that holds objects/.
        #[arg(long, default_value = "metadata")]
        metadata: PathBuf,
        /// Create the demo tenant's data when it has none.
        #[arg(long)]
        demo: bool,
        /// Apply destructive schema changes (drop or retype columns, drop tables).
        #[arg(long)]
        allow_destructive: bool,
        #[command(flatten)]
        db: DatabaseUrl,
        #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
        jwt_secret: String,
        /// Connections in the request pool.
        #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 16)]
        max_connections: u32,
        /// The RabbitMQ to publish events to; without it events are dispatched in-process.
        #[arg(long, env = "AMQP_URL", hide_env_values = true)]
        amqp_url: Option<String>,
        /// The topic exchange events are published to.
        #[arg(long, env = "AMQP_EXCHANGE", default_value = "platform.events")]
        amqp_exchange: String,
        /// Let webhooks reach loopback and private addresses (development only).
        #[arg(long, env = "WEBHOOKS_ALLOW_PRIVATE")]
        webhooks_allow_private: bool,
    },
    /// Stored events: replay them, rebuild a projection, see dead letters.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
        #[command(flatten)]
        db: DatabaseUrl,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
        #[command(flatten)]
        db: DatabaseUrl,
    },
    /// Check the definitions; print every error and exit 1 when there is any.
    Check {
        #[arg(long, default_value = "metadata")]
        metadata: PathBuf,
    },
    /// Export or apply metadata as definition files.
    Metadata {
        #[command(subcommand)]
        command: MetadataCommand,
    },
    /// Print a signed development token.
    Token {
        #[arg(long)]
        tenant: uuid::Uuid,
        #[arg(long)]
        user: String,
        /// Comma-separated roles, e.g. admin or sales,viewer.
        #[arg(long, value_delimiter = ',', default_value = "admin")]
        roles: Vec<String>,
        #[arg(long, default_value_t = 24)]
        ttl_hours: i64,
        #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
        jwt_secret: String,
    },
}

/// The database, for every command that needs one.
#[derive(clap::Args)]
struct DatabaseUrl {
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/platform",
        hide_env_values = true,
        global = true
    )]
    url: String,
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Publish stored events again (running relays pick them up; consumers' inboxes
    /// make a repeat harmless).
    Replay {
        /// RFC 3339 time, e.g. 2026-11-24T10:00:00Z.
        #[arg(long)]
        since: chrono::DateTime<chrono::Utc>,
        /// A routing pattern such as offers.offer.* or #.created.
        #[arg(long = "type")]
        pattern: Option<String>,
        #[arg(long)]
        tenant: Option<uuid::Uuid>,
    },
    /// Clear a consumer's projection and its inbox, then run it over every stored event.
    Rebuild { consumer: String },
    /// List unresolved dead letters, newest first (retry them through a running engine:
    /// POST /api/v1/events/dead-letters/{id}/retry, where their consumers run).
    DeadLetters,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Link waiting events, then recompute every tenant's hash chain; exit 1 at the
    /// first broken link.
    Verify {
        #[arg(long)]
        tenant: Option<uuid::Uuid>,
    },
}

async fn events_command(cmd: EventsCommand, database_url: &str) -> anyhow::Result<()> {
    use platform::events;
    let db = platform::db::connect(database_url, 2).await?;
    match cmd {
        EventsCommand::Replay {
            since,
            pattern,
            tenant,
        } => {
            let n = events::replay(&db, since, pattern.as_deref(), tenant).await?;
            println!("{n} stored event(s) queued to be published again");
        }
        EventsCommand::Rebuild { consumer } => {
            let sub = events::builtin_subscriptions()
                .into_iter()
                .find(|s| s.name == consumer)
                .ok_or_else(|| {
                    let names: Vec<String> = events::builtin_subscriptions()
                        .into_iter()
                        .map(|s| s.name)
                        .collect();
                    anyhow::anyhow!("no consumer named {consumer} (known: {})", names.join(", "))
                })?;
            let (seen, done) = events::rebuild(&db, &sub).await?;
            println!("rebuilt {consumer}: {seen} stored event(s) read, {done} handled");
        }
        EventsCommand::DeadLetters => {
            type Row = (
                uuid::Uuid,
                String,
                uuid::Uuid,
                String,
                String,
                i32,
                chrono::DateTime<chrono::Utc>,
            );
            let rows: Vec<Row> =
                sqlx::query_as("SELECT id, consumer, tenant_id, event_type, error, attempts, created_at FROM engine.dead_letters WHERE resolved_at IS NULL ORDER BY created_at DESC")
                    .fetch_all(&db.admin)
                    .await?;
            for r in &rows {
                println!(
                    "{}  {}  consumer={} tenant={} type={} attempts={}\n    {}",
                    r.6.to_rfc3339(),
                    r.0,
                    r.1,
                    r.2,
                    r.3,
                    r.5,
                    r.4
                );
            }
            println!("{} unresolved dead letter(s)", rows.len());
        }
    }
    Ok(())
}

async fn audit_command(cmd: AuditCommand, database_url: &str) -> anyhow::Result<bool> {
    let db = platform::db::connect(database_url, 1).await?;
    match cmd {
        AuditCommand::Verify { tenant } => {
            let sealed = platform::audit::seal_all(&db.admin).await?;
            let report = platform::audit::verify(&db.admin, tenant).await?;
            if sealed > 0 {
                println!("linked {sealed} waiting event(s) first");
            }
            match &report.first_break {
                None => {
                    println!(
                        "ok: {} tenant chain(s), {} link(s), no break",
                        report.tenants, report.links
                    );
                    Ok(true)
                }
                Some(b) => {
                    println!(
                        "BROKEN: tenant {}, link {}, event {}: {}",
                        b.tenant,
                        b.seq.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                        b.event_id,
                        b.reason
                    );
                    Ok(false)
                }
            }
        }
    }
}

#[derive(Subcommand)]
enum MetadataCommand {
    /// Apply the definitions of DIR (its objects/ folder) as a new metadata version.
    Apply {
        dir: PathBuf,
        /// Print the plan (diff and DDL) and change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        allow_destructive: bool,
        #[command(flatten)]
        db: DatabaseUrl,
    },
    /// Write the current definitions to DIR/objects/, one file per object.
    Export {
        dir: PathBuf,
        #[command(flatten)]
        db: DatabaseUrl,
    },
}

async fn metadata_command(cmd: MetadataCommand) -> anyhow::Result<()> {
    use platform::evolve;
    match cmd {
        MetadataCommand::Apply {
            dir,
            dry_run,
            allow_destructive,
            db: DatabaseUrl { url: database_url },
        } => {
            let catalog = load_catalog(&dir)?;
            let db = platform::db::connect(&database_url, 1).await?;
            let opts = evolve::Options {
                source: format!("apply {}", dir.display()),
                actor: std::env::var("USER").unwrap_or_else(|_| "platform metadata apply".into()),
                allow_destructive,
                dry_run,
                ..Default::default()
            };
            let outcome = evolve::apply(&db.admin, &catalog, &opts).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"diff": outcome.diff}))?
            );
            for c in &outcome.changes {
                println!(
                    "-- {}{}",
                    c.description,
                    if c.destructive { " (destructive)" } else { "" }
                );
            }
            for s in &outcome.ddl {
                println!("{s}");
            }
            if dry_run {
                println!(
                    "-- dry run: nothing was changed (would be version {})",
                    outcome.version
                );
            } else if outcome.applied {
                println!("-- applied as metadata version {}", outcome.version);
            } else {
                println!(
                    "-- no change: the database is at version {}",
                    outcome.version
                );
            }
            Ok(())
        }
        MetadataCommand::Export {
            dir,
            db: DatabaseUrl { url: database_url },
        } => {
            let db = platform::db::connect(&database_url, 1).await?;
            let (version, defs) = evolve::latest(&db.admin)
                .await?
                .ok_or_else(|| anyhow::anyhow!("the database has no metadata yet"))?;
            std::fs::create_dir_all(dir.join("objects"))?;
            std::fs::write(
                dir.join("object.schema.json"),
                platform_metadata::check::OBJECT_SCHEMA,
            )?;
            for mut d in defs {
                d.schema = Some("../object.schema.json".into());
                let mut text = serde_json::to_string_pretty(&d)?;
                text.push('\n');
                std::fs::write(dir.join("objects").join(format!("{}.json", d.name)), text)?;
            }
            println!("exported metadata version {version} to {}", dir.display());
            Ok(())
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { metadata } => match load_catalog(&metadata) {
            Ok(c) => {
                println!(
                    "ok: {} objects, metadata hash {}",
                    c.objects().count(),
                    &c.hash[..12]
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Events {
            command,
            db: DatabaseUrl { url: database_url },
        } => match events_command(command, &database_url).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Audit {
            command,
            db: DatabaseUrl { url: database_url },
        } => match audit_command(command, &database_url).await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Metadata { command } => match metadata_command(command).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Token {
            tenant,
            user,
            roles,
            ttl_hours,
            jwt_secret,
        } => {
            let keys = platform::auth::JwtKeys::new(&jwt_secret);
            println!(
                "{}",
                keys.issue(tenant, &user, &roles, chrono::Duration::hours(ttl_hours))
            );
            ExitCode::SUCCESS
        }
        Command::Serve {
            addr,
            metadata,
            demo,
            allow_destructive,
            db: DatabaseUrl { url: database_url },
            jwt_secret,
            max_connections,
            amqp_url,
            amqp_exchange,
            webhooks_allow_private,
        } => {
            init_tracing();
            let settings = Settings {
                database_url,
                metadata_dir: metadata,
                jwt_secret,
                allow_destructive,
                max_connections,
                events: platform::events::EventSettings {
                    allow_private_webhooks: webhooks_allow_private,
                    ..platform::events::EventSettings::new(amqp_url, Some(amqp_exchange))
                },
            };
            match serve(settings, &addr, demo).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Ctrl-C or SIGTERM (what a container runtime sends): stop accepting, finish requests.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

async fn serve(settings: Settings, addr: &str, demo: bool) -> anyhow::Result<()> {
    let app = App::start(&settings).await?;
    platform::events::spawn(&app);
    match &settings.events.amqp_url {
        Some(_) => tracing::info!(exchange = %settings.events.exchange, "events go to RabbitMQ"),
        None => tracing::info!("no AMQP_URL: events are dispatched in-process"),
    }
    if demo {
        platform::web::seed_demo_user(&app).await?;
        if platform::demo::seed(&app).await? {
            tracing::info!(tenant = %platform::demo::DEMO_TENANT, "demo data created");
        }
        let token = app.jwt.issue(
            platform::demo::DEMO_TENANT,
            "demo",
            &["admin".into()],
            chrono::Duration::hours(24),
        );
        tracing::info!(tenant = %platform::demo::DEMO_TENANT, "demo admin token (24 h): {token}");
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!("listening on http://{addr} (docs at /api/docs)");
    axum::serve(listener, platform::http::router(app))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}
