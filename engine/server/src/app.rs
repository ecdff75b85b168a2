//! The application state shared by every request, and start-up: connect, migrate, load
//! and check the definitions, bring the tables to them, build the OpenAPI document.

use crate::auth::JwtKeys;
use crate::db::{self, Db};
use anyhow::Context;
use arc_swap::ArcSwap;
use platform_metadata::{check, Catalog};
use platform_plugin_api::Registry;
use std::path::PathBuf;
use std::sync::Arc;

/// Every plugin compiled into this binary.
pub fn plugins() -> Registry {
    let mut r = Registry::new();
    r.register(platform_plugin_pricing::Pricing);
    r
}

/// One metadata version, compiled, with what is derived from it.
#[derive(Debug)]
pub struct Loaded {
    pub catalog: Catalog,
    /// The version number in `engine.metadata_versions`.
    pub version: i64,
    /// The OpenAPI document, serialised once per version.
    pub openapi: String,
}

/// What the server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub metadata_dir: PathBuf,
    pub jwt_secret: String,
    pub allow_destructive: bool,
    pub max_connections: u32,
}

#[derive(Debug)]
pub struct App {
    /// Both connection pools (admin for DDL, app for requests under RLS).
    pub db: Db,
    /// Verifies and issues tokens.
    pub jwt: JwtKeys,
    /// The current metadata; swapped whole when it changes.
    meta: ArcSwap<Loaded>,
}

/// Loads and checks the definitions of `dir`, with every error listed.
pub fn load_catalog(dir: &std::path::Path) -> anyhow::Result<Catalog> {
    let sources =
        check::read_dir(dir).with_context(|| format!("cannot read {}/objects", dir.display()))?;
    Catalog::from_sources(&sources, plugins()).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        anyhow::anyhow!(
            "{} error(s) in the definitions:\n{}",
            errors.len(),
            list.join("\n")
        )
    })
}

impl App {
    pub async fn start(s: &Settings) -> anyhow::Result<Arc<App>> {
        let catalog = load_catalog(&s.metadata_dir)?;
        let db = db::connect(&s.database_url, s.max_connections).await?;
        let applied = crate::ddl::apply(&db.admin, &catalog, "files", s.allow_destructive).await?;
        for c in &applied.changes {
            tracing::info!(object = %c.object, change = %c.description, "schema change applied");
        }
        tracing::info!(
            version = applied.version,
            objects = catalog.objects().count(),
            "metadata loaded"
        );
        let openapi = serde_json::to_string(&crate::openapi::build(&catalog, applied.version))?;
        Ok(Arc::new(App {
            db,
            jwt: JwtKeys::new(&s.jwt_secret),
            meta: ArcSwap::from_pointee(Loaded {
                catalog,
                version: applied.version,
                openapi,
            }),
        }))
    }

    /// The current metadata version (cheap: an atomic load).
    pub fn meta(&self) -> Arc<Loaded> {
        self.meta.load_full()
    }
}
