//! A running engine on a fresh database and port, a signed-in-able user, and headless
//! Chromium driven through chromedriver (WebDriver) with fantoccini.

use fantoccini::{Client, ClientBuilder, Locator};
use platform::app::{App, Settings};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const USER: &str = "clerk";
pub const PASSWORD: &str = "correct horse battery staple";

pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The engine serving HTTP on a random port.
pub struct Server {
    pub app: Arc<App>,
    pub base: String,
    pub tenant: Uuid,
    db_name: String,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start() -> Server {
        let db_name = format!("platform_test_{}", Uuid::new_v4().simple());
        let settings = Settings {
            database_url: format!("{}/{db_name}", server_url()),
            metadata_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../metadata"),
            jwt_secret: "browser-test-secret".into(),
            allow_destructive: false,
            max_connections: 8,
            events: platform::events::EventSettings::default(),
        };
        let app = App::start(&settings).await.expect("engine starts");
        let tenant = Uuid::new_v4();
        platform::web::upsert_user(&app, tenant, USER, "Clara Clerk", PASSWORD, &["admin"])
            .await
            .expect("user");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("port");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let router = platform::http::router(app.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Server {
            app,
            base,
            tenant,
            db_name,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A record created through the REST API (for data the browser need not type).
    pub async fn api_create(&self, object: &str, body: Value) -> Value {
        use tower::ServiceExt;
        let token = self.app.jwt.issue(
            self.tenant,
            "seeder",
            &["admin".into()],
            chrono::Duration::hours(1),
        );
        let req = axum::http::Request::post(format!("/api/v1/objects/{object}/records"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .expect("request");
        let resp = platform::http::router(self.app.clone())
            .oneshot(req)
            .await
            .expect("response");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(json!(null));
        assert!(status.is_success(), "create {object}: {status} {v}");
        v
    }

    pub async fn stop(self) {
        self.task.abort();
        self.app.db.app.close().await;
        self.app.db.admin.close().await;
        drop_database(&self.db_name).await;
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

/// chromedriver on a free port, killed when dropped, with a fresh profile folder.
pub struct Driver {
    child: Child,
    pub url: String,
    pub profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Driver {
    pub async fn start() -> Driver {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: the browser tests need Debian's chromium and chromium-driver; \
                 install them with `bash deploy/dev/browser.sh` (deploy/dev/test.sh runs it)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile =
            std::env::temp_dir().join(format!("platform-chromium-{}", Uuid::new_v4().simple()));
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver {
            child,
            url,
            profile,
        }
    }

    /// A headless Chromium session. The flags keep it from reaching for the network
    /// (closed networks make it hang otherwise).
    pub async fn browser(&self) -> Client {
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--window-size=1360,900",
            "--force-device-scale-factor=1",
            &format!("--user-data-dir={}", self.profile.display()),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        });
        let caps = caps.as_object().cloned().expect("capabilities");
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session through chromedriver")
    }
}

/// Waits up to 10 s for an element.
pub async fn wait(c: &Client, css: &str) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            let url = c
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            let body = c.source().await.unwrap_or_default();
            let _ = std::fs::write(
                std::env::temp_dir().join("platform-browser-failure.html"),
                &body,
            );
            panic!("no `{css}` on {url}: {e} (page saved to the temp folder as platform-browser-failure.html)")
        }
    }
}

pub async fn text(c: &Client, css: &str) -> String {
    wait(c, css).await.text().await.expect("text")
}

/// Types into the input `css` after clearing it.
pub async fn fill(c: &Client, css: &str, value: &str) {
    let e = wait(c, css).await;
    e.clear().await.expect("clear");
    if !value.is_empty() {
        e.send_keys(value).await.expect("type");
    }
}

/// Clicks `css` after scrolling it to the middle of the window, clear of the sticky
/// top and save bars.
pub async fn click(c: &Client, css: &str) {
    let e = wait(c, css).await;
    let arg = serde_json::to_value(&e).expect("element");
    c.execute("arguments[0].scrollIntoView({block: 'center'});", vec![arg])
        .await
        .expect("scroll");
    e.click()
        .await
        .unwrap_or_else(|err| panic!("click `{css}`: {err}"));
}

/// Clicks `css`, which loads another page, and waits until that page has `expect` (a
/// CSS selector). The old page's root going stale tells that the new one has come, so
/// nothing is read from the page being left.
pub async fn click_then(c: &Client, css: &str, expect: &str) {
    let old = c.find(Locator::Css("html")).await.expect("page");
    click(c, css).await;
    let mut left = false;
    for _ in 0..200 {
        if old.tag_name().await.is_err() {
            left = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(left, "clicking `{css}` did not load a page");
    wait(c, expect).await;
}

/// Saves a PNG of the page when PLATFORM_SCREENSHOTS names a folder (the docs' pictures
/// come from `deploy/dev/screenshots.sh`).
pub async fn screenshot(c: &Client, name: &str) {
    let Ok(dir) = std::env::var("PLATFORM_SCREENSHOTS") else {
        return;
    };
    let png = c.screenshot().await.expect("screenshot");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).expect("write screenshot");
}
