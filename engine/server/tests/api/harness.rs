//! A running engine on a fresh database, requests through the router, tokens.

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use platform::app::{App, Settings};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;
use uuid::Uuid;

pub const SECRET: &str = "test-secret";

pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn shipped_metadata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../metadata")
}

/// A temporary folder, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for TempDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A copy of the shipped metadata plus `extra` object files, in a temporary folder.
pub fn metadata_with(extra: &[(&str, Value)]) -> TempDir {
    let dir = TempDir::new("platform-meta");
    std::fs::create_dir_all(dir.join("objects")).expect("temp dir");
    for e in std::fs::read_dir(shipped_metadata().join("objects")).expect("metadata") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, dir.join("objects").join(p.file_name().expect("name"))).expect("copy");
    }
    for (name, def) in extra {
        std::fs::write(
            dir.join("objects").join(format!("{name}.json")),
            serde_json::to_string_pretty(def).expect("json"),
        )
        .expect("write");
    }
    dir
}

pub struct TestApp {
    pub app: Arc<App>,
    pub router: Router,
    pub db_name: String,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestApp {
    pub async fn new() -> TestApp {
        Self::start(&shipped_metadata(), None)
            .await
            .expect("engine starts")
    }

    pub fn settings(db_name: &str, dir: &Path) -> Settings {
        Settings {
            database_url: format!("{}/{db_name}", server_url()),
            metadata_dir: dir.to_path_buf(),
            jwt_secret: SECRET.into(),
            allow_destructive: false,
            max_connections: 4,
            events: platform::events::EventSettings::default(),
        }
    }

    /// Starts on a new database, or on `db_name` when given (a restart).
    pub async fn start(dir: &Path, db_name: Option<&str>) -> anyhow::Result<TestApp> {
        Self::start_as(dir, db_name, &server_url()).await
    }

    /// Starts connecting with `server` (e.g. another user's URL, without a database).
    pub async fn start_as(
        dir: &Path,
        db_name: Option<&str>,
        server: &str,
    ) -> anyhow::Result<TestApp> {
        let db_name = db_name
            .map(String::from)
            .unwrap_or_else(|| format!("platform_test_{}", Uuid::new_v4().simple()));
        let mut settings = Self::settings(&db_name, dir);
        settings.database_url = format!("{server}/{db_name}");
        let app = App::start(&settings).await?;
        Ok(TestApp {
            router: platform::http::router(app.clone()),
            app,
            db_name,
        })
    }

    pub fn token(&self, tenant: Uuid, roles: &[&str]) -> String {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        self.app
            .jwt
            .issue(tenant, "tester", &roles, chrono::Duration::hours(1))
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(
                body.map(|b| Body::from(b.to_string()))
                    .unwrap_or_else(Body::empty),
            )
            .expect("request");
        let resp = self.router.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> Resp {
        self.send(Method::POST, path, Some(token), Some(body), &[])
            .await
    }
    pub async fn get(&self, token: &str, path: &str) -> Resp {
        self.send(Method::GET, path, Some(token), None, &[]).await
    }
    pub async fn patch(
        &self,
        token: &str,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.send(Method::PATCH, path, Some(token), Some(body), headers)
            .await
    }

    /// Rows in an object's table for every tenant (as the admin, bypassing RLS).
    pub async fn count_all(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.app.db.admin)
            .await
            .expect("count")
    }

    /// Closes the pools and drops the database.
    pub async fn cleanup(self) {
        self.app.db.app.close().await;
        self.app.db.admin.close().await;
        drop_database(&self.db_name).await;
        // Drop finds nothing left to do.
    }
}

impl Drop for TestApp {
    /// A test that panics never reaches `cleanup`: drop its database here, from a thread
    /// with its own runtime (Drop cannot await).
    fn drop(&mut self) {
        let name = self.db_name.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_database(&name));
            }
        })
        .join();
    }
}

pub async fn drop_database(name: &str) {
    use sqlx::Connection;
    if let Ok(mut c) = sqlx::PgConnection::connect(&format!("{}/postgres", server_url())).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut c)
            .await;
    }
}

/// A customer for `token`'s tenant; returns its id.
pub async fn customer(t: &TestApp, token: &str, name: &str) -> String {
    let r = t
        .post(
            token,
            "/api/v1/objects/customer/records",
            &serde_json::json!({"name": name}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().expect("id").to_string()
}

/// The RabbitMQ the tests use (guest on loopback unless TEST_AMQP_URL says otherwise).
pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Tests that use RabbitMQ run one at a time: one of them stops the broker.
pub static RABBIT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl TestApp {
    /// Starts on a new database with events going to `events` (the workers are not
    /// started: subscribe test consumers, then call `platform::events::spawn`).
    pub async fn with_events(events: platform::events::EventSettings) -> TestApp {
        let db_name = format!("platform_test_{}", Uuid::new_v4().simple());
        let mut settings = Self::settings(&db_name, &shipped_metadata());
        settings.events = events;
        let app = App::start(&settings).await.expect("engine starts");
        TestApp {
            router: platform::http::router(app.clone()),
            app,
            db_name,
        }
    }

    /// Waits until `sql` (a scalar query run as the owner) returns true.
    pub async fn wait_until(&self, sql: &str, what: &str, secs: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let ok: bool = sqlx::query_scalar(sql)
                .fetch_one(&self.app.db.admin)
                .await
                .expect("wait query");
            if ok {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
