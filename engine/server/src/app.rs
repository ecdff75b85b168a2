//! The application state shared by every request, and start-up: connect, migrate, load
//! and check the definitions, bring the tables to them, build the OpenAPI document, and
//! follow metadata versions made by other processes.

use crate::auth::JwtKeys;
use crate::db::{self, Db};
use crate::evolve::{self, Options};
use anyhow::Context;
use arc_swap::ArcSwap;
use platform_metadata::{check, Catalog, FieldDef, Object, ObjectDef};
use platform_plugin_api::Registry;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

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
    /// The OpenAPI document, serialised once per version, on first request (a new
    /// version is installed without waiting for it).
    openapi: std::sync::OnceLock<String>,
}

impl Loaded {
    pub fn new(catalog: Catalog, version: i64) -> anyhow::Result<Loaded> {
        Ok(Loaded {
            catalog,
            version,
            openapi: std::sync::OnceLock::new(),
        })
    }

    /// The shared OpenAPI document of this version.
    pub fn openapi(&self) -> &str {
        self.openapi.get_or_init(|| {
            serde_json::to_string(&crate::openapi::build(
                &self.catalog,
                self.version,
                &HashMap::new(),
            ))
            .unwrap_or_default()
        })
    }
}

/// What the server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub metadata_dir: PathBuf,
    pub jwt_secret: String,
    pub allow_destructive: bool,
    pub max_connections: u32,
    /// Where events go (a RabbitMQ exchange, or this process).
    pub events: crate::events::EventSettings,
}

/// Every tenant's custom fields, by tenant and object, at one revision.
#[derive(Debug, Default)]
pub struct TenantFields {
    /// The highest id of `engine.tenant_field_log` when loaded.
    pub revision: i64,
    pub fields: HashMap<Uuid, BTreeMap<String, Vec<FieldDef>>>,
}

/// A compiled object with one tenant's custom fields, for one metadata version and
/// tenant-field revision.
type Overlay = (i64, i64, Arc<Object>);

#[derive(Debug)]
pub struct App {
    /// Both connection pools (admin for DDL, app for requests under RLS).
    pub db: Db,
    /// Verifies and issues tokens.
    pub jwt: JwtKeys,
    /// Blocks of autonumbers for fields that need not be gap-free.
    pub numbers: crate::records::NumberBlocks,
    /// The current metadata; swapped whole when it changes.
    meta: ArcSwap<Loaded>,
    /// Serialises installs so an older version never replaces a newer one.
    install_lock: std::sync::Mutex<()>,
    /// The outbox relay's settings, consumers and wake-up.
    pub events: crate::events::Events,
    /// Tenants' custom fields; swapped whole when any changes.
    tenant_fields: ArcSwap<TenantFields>,
    /// Compiled objects with custom fields, by tenant and object.
    overlays: std::sync::Mutex<HashMap<(Uuid, String), Overlay>>,
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

/// Compiles stored or merged definitions.
pub fn compile(defs: Vec<ObjectDef>) -> anyhow::Result<Catalog> {
    Catalog::from_defs(defs, plugins()).map_err(|errors| {
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
        let files = load_catalog(&s.metadata_dir)?;
        let db = db::connect(&s.database_url, s.max_connections).await?;
        let defs = evolve::start_definitions(&db.admin, &files).await?;
        let catalog = compile(defs)?;
        let opts = Options {
            source: "files".into(),
            actor: "platform serve".into(),
            allow_destructive: s.allow_destructive,
            files: Some((serde_json::to_value(files.defs())?, files.hash.clone())),
            ..Default::default()
        };
        let outcome = evolve::apply(&db.admin, &catalog, &opts).await?;
        for c in &outcome.changes {
            tracing::info!(object = %c.object, change = %c.description, "schema change applied");
        }
        tracing::info!(
            version = outcome.version,
            objects = catalog.objects().count(),
            "metadata loaded"
        );
        let app = Arc::new(App {
            numbers: crate::records::NumberBlocks::new(db.app.clone()),
            db,
            jwt: JwtKeys::new(&s.jwt_secret),
            meta: ArcSwap::from_pointee(Loaded::new(catalog, outcome.version)?),
            install_lock: std::sync::Mutex::new(()),
            events: crate::events::Events::new(s.events.clone()),
            tenant_fields: ArcSwap::from_pointee(TenantFields::default()),
            overlays: std::sync::Mutex::new(HashMap::new()),
        });
        app.refresh_tenant_fields().await?;
        tokio::spawn(watch(Arc::downgrade(&app), s.database_url.clone()));
        Ok(app)
    }

    /// The current metadata version (cheap: an atomic load).
    pub fn meta(&self) -> Arc<Loaded> {
        self.meta.load_full()
    }

    /// Makes `loaded` current unless a newer version already is.
    pub fn install(&self, loaded: Loaded) {
        let _guard = self.install_lock.lock().unwrap_or_else(|e| e.into_inner());
        if loaded.version > self.meta.load().version {
            tracing::info!(version = loaded.version, "metadata version installed");
            self.meta.store(Arc::new(loaded));
        }
    }

    /// The object `name` as `tenant` sees it: the shared definition, plus the tenant's
    /// custom fields when it has any.
    pub fn object_for(&self, meta: &Loaded, tenant: Uuid, name: &str) -> Option<Arc<Object>> {
        let base = meta.catalog.get(name)?;
        let tf = self.tenant_fields.load();
        let Some(custom) = tf.fields.get(&tenant).and_then(|m| m.get(name)) else {
            return Some(base.clone());
        };
        let key = (tenant, name.to_string());
        let mut cache = self.overlays.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((v, r, obj)) = cache.get(&key) {
            if *v == meta.version && *r == tf.revision {
                return Some(obj.clone());
            }
        }
        match meta.catalog.overlay(name, custom) {
            Ok(obj) => {
                let obj = Arc::new(obj);
                cache.insert(key, (meta.version, tf.revision, obj.clone()));
                Some(obj)
            }
            Err(errors) => {
                tracing::error!(%tenant, object = name, ?errors, "custom fields no longer fit the object; serving it without them");
                Some(base.clone())
            }
        }
    }

    /// The custom fields of `tenant`, by object.
    pub fn tenant_fields_of(&self, tenant: Uuid) -> BTreeMap<String, Vec<FieldDef>> {
        self.tenant_fields
            .load()
            .fields
            .get(&tenant)
            .cloned()
            .unwrap_or_default()
    }

    /// Reloads every tenant's custom fields when their revision moved.
    pub async fn refresh_tenant_fields(&self) -> anyhow::Result<()> {
        let revision: i64 =
            sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM engine.tenant_field_log")
                .fetch_one(&self.db.admin)
                .await?;
        if revision == self.tenant_fields.load().revision && revision != 0 {
            return Ok(());
        }
        let rows: Vec<(Uuid, String, serde_json::Value)> =
            sqlx::query_as("SELECT tenant_id, object, definition FROM engine.tenant_fields ORDER BY tenant_id, object, position, name")
                .fetch_all(&self.db.admin)
                .await?;
        let mut fields: HashMap<Uuid, BTreeMap<String, Vec<FieldDef>>> = HashMap::new();
        for (tenant, object, def) in rows {
            match serde_json::from_value::<FieldDef>(def) {
                Ok(mut f) => {
                    f.custom = true;
                    fields
                        .entry(tenant)
                        .or_default()
                        .entry(object)
                        .or_default()
                        .push(f);
                }
                Err(e) => {
                    tracing::error!(%tenant, %object, error = %e, "unreadable custom field skipped")
                }
            }
        }
        self.tenant_fields
            .store(Arc::new(TenantFields { revision, fields }));
        Ok(())
    }

    /// Loads the newest stored version when it is newer than the current one.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let current = self.meta.load().version;
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM engine.metadata_versions")
                .fetch_one(&self.db.admin)
                .await?;
        if newest.unwrap_or_default() <= current {
            return Ok(());
        }
        if let Some((version, defs)) = evolve::latest(&self.db.admin).await? {
            let catalog = compile(defs)?;
            self.install(Loaded::new(catalog, version)?);
        }
        Ok(())
    }
}

/// Follows new metadata versions: LISTEN for the announcement, and poll once a second
/// in case a notification was missed (a dropped connection). Ends with the app.
async fn watch(app: std::sync::Weak<App>, url: String) {
    let mut listener = match sqlx::postgres::PgListener::connect(&url).await {
        Ok(mut l) => match l.listen(evolve::CHANNEL).await {
            Ok(()) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for metadata versions; polling only");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot LISTEN for metadata versions; polling only");
            None
        }
    };
    let mut ticks: u64 = 0;
    loop {
        ticks += 1;
        match listener.as_mut() {
            Some(l) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), l.recv()).await;
            }
            None => tokio::time::sleep(Duration::from_secs(1)).await,
        }
        let Some(app) = app.upgrade() else { return };
        if app.db.admin.is_closed() {
            return;
        }
        if let Err(e) = app.refresh().await {
            tracing::warn!(error = %e, "cannot load the newest metadata version");
        }
        if let Err(e) = app.refresh_tenant_fields().await {
            tracing::warn!(error = %e, "cannot load tenants' custom fields");
        }
        // Idempotency keys are kept for 24 hours; sweep hourly (any process may).
        if ticks % 3600 == 1 {
            if let Err(e) = sqlx::query("DELETE FROM engine.idempotency_keys WHERE created_at < now() - interval '24 hours'")
                .execute(&app.db.admin)
                .await
            {
                tracing::warn!(error = %e, "cannot sweep old idempotency keys");
            }
        }
    }
}
