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
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/platform",
            hide_env_values = true
        )]
        database_url: String,
        #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
        jwt_secret: String,
        /// Connections in the request pool.
        #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 16)]
        max_connections: u32,
    },
    /// Check the definitions; print every error and exit 1 when there is any.
    Check {
        #[arg(long, default_value = "metadata")]
        metadata: PathBuf,
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
            database_url,
            jwt_secret,
            max_connections,
        } => {
            init_tracing();
            let settings = Settings {
                database_url,
                metadata_dir: metadata,
                jwt_secret,
                allow_destructive,
                max_connections,
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

async fn serve(settings: Settings, addr: &str, demo: bool) -> anyhow::Result<()> {
    let app = App::start(&settings).await?;
    if demo {
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
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
