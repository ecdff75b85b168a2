//! Events: the outbox relay in-process and through RabbitMQ, consumers' inboxes, dead
//! letters, replay, projection rebuilds, webhooks and the audit hash chain.

use crate::harness::*;
use axum::http::StatusCode;
use platform::events::{self, BoxFuture, Envelope, EventSettings, Handler, Subscription};
use serde_json::{json, Value};
use sqlx::PgConnection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use uuid::Uuid;

const TENANT: &str = "0a0a0a0a-0000-4000-8000-000000000001";

/// A consumer whose effect is a row per event in `public.effects` (no unique key, so a
/// second effect of one event would show), and which fails on customers named POISON
/// while `broken` is set.
struct Effects {
    broken: Arc<AtomicBool>,
}

impl Handler for Effects {
    fn handle<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a Envelope,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            sqlx::query("INSERT INTO public.effects (event_id, tenant_id) VALUES ($1, $2)")
                .bind(event.id)
                .bind(event.tenant)
                .execute(&mut *conn)
                .await?;
            let poison = event.payload["name"].as_str() == Some("POISON");
            if poison && self.broken.load(Ordering::SeqCst) {
                anyhow::bail!("poison customer: cannot handle it");
            }
            Ok(())
        })
    }
}

async fn effects_table(t: &TestApp) {
    for sql in [
        "CREATE TABLE public.effects (event_id uuid NOT NULL, tenant_id uuid NOT NULL)",
        "GRANT SELECT, INSERT ON public.effects TO platform_app",
    ] {
        sqlx::query(sql)
            .execute(&t.app.db.admin)
            .await
            .expect("setup");
    }
}

async fn scalar(t: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&t.app.db.admin)
        .await
        .expect(sql)
}

const ALL_PUBLISHED: &str =
    "SELECT NOT EXISTS (SELECT 1 FROM engine.outbox WHERE published_at IS NULL)";

#[tokio::test]
async fn in_process_events_have_their_effect_once_poison_is_dead_lettered_and_replay_changes_nothing(
) {
    let t = TestApp::with_events(EventSettings::default()).await;
    effects_table(&t).await;
    let broken = Arc::new(AtomicBool::new(true));
    t.app.events.subscribe(
        Subscription::new(
            "effects",
            "registry.customer.*",
            Effects {
                broken: broken.clone(),
            },
        )
        .max_attempts(3),
    );
    events::spawn(&t.app);
    let tenant: Uuid = TENANT.parse().unwrap();
    let admin = t.token(tenant, &["admin"]);
    for name in ["Ada", "Grace", "POISON", "Edsger"] {
        customer(&t, &admin, name).await;
    }
    t.wait_until(ALL_PUBLISHED, "the outbox to be dispatched", 30)
        .await;
    // Three effects committed; the poison's three tries rolled back with their inbox rows.
    assert_eq!(scalar(&t, "SELECT count(*) FROM public.effects").await, 3);
    assert_eq!(
        scalar(
            &t,
            "SELECT count(*) FROM engine.inbox WHERE consumer = 'effects'"
        )
        .await,
        3
    );
    let dl = t.get(&admin, "/api/v1/events/dead-letters").await;
    assert_eq!(dl.status, StatusCode::OK, "{}", dl.body);
    let letters = dl.body["data"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{}", dl.body);
    assert_eq!(letters[0]["consumer"], "effects");
    assert_eq!(letters[0]["attempts"], 3);
    assert_eq!(letters[0]["event_type"], "registry.customer.created");
    assert!(
        letters[0]["error"]
            .as_str()
            .unwrap()
            .contains("poison customer"),
        "{}",
        letters[0]
    );
    // By default a webhook cannot point at this machine, a private network or the
    // cloud metadata address.
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
    ] {
        let r = t
            .post(
                &admin,
                "/api/v1/metadata/webhooks",
                &json!({"name": "internal", "url": url, "events": ["#"]}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {}",
            r.body
        );
        assert_eq!(r.body["details"][0]["rule"], "public_address", "{}", r.body);
    }
    // Another tenant sees none of them.
    let other = t.token(Uuid::new_v4(), &["admin"]);
    let r = t.get(&other, "/api/v1/events/dead-letters").await;
    assert_eq!(r.body["data"], json!([]));
    // The activity projection has every event, the poison's too.
    assert_eq!(
        scalar(
            &t,
            "SELECT events FROM engine.activity WHERE event_type = 'registry.customer.created'"
        )
        .await,
        4
    );

    // Retried while still broken: dead again, attempts add up.
    let id = letters[0]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/events/dead-letters/{id}/retry");
    let r = t.post(&admin, &path, &json!({})).await;
    assert_eq!(r.body["outcome"], "failed_again", "{}", r.body);
    // Fixed, retried: done once; a second retry finds nothing to retry.
    broken.store(false, Ordering::SeqCst);
    let r = t.post(&admin, &path, &json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["outcome"], "done");
    let r = t.post(&admin, &path, &json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(scalar(&t, "SELECT count(*) FROM public.effects").await, 4);
    let dl = t.get(&admin, "/api/v1/events/dead-letters").await;
    assert!(dl.body["data"][0]["resolved_at"].is_string(), "{}", dl.body);

    // Replay every customer event: published again, no consumer has its effect twice.
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let n = events::replay(&t.app.db, since, Some("registry.customer.*"), None)
        .await
        .unwrap();
    assert_eq!(n, 4);
    t.events_wake();
    t.wait_until(ALL_PUBLISHED, "the replay to be dispatched", 30)
        .await;
    assert_eq!(
        scalar(&t, "SELECT count(*) FROM engine.outbox WHERE event_type = 'registry.customer.created' AND publish_count = 2").await,
        4
    );
    assert_eq!(scalar(&t, "SELECT count(*) FROM public.effects").await, 4);
    assert_eq!(
        scalar(&t, "SELECT count(DISTINCT event_id) FROM public.effects").await,
        4
    );
    assert_eq!(
        scalar(
            &t,
            "SELECT events FROM engine.activity WHERE event_type = 'registry.customer.created'"
        )
        .await,
        4
    );

    // The projection rebuilt from the stored events comes out the same.
    let before: Vec<(String, i64)> =
        sqlx::query_as("SELECT event_type, events FROM engine.activity ORDER BY 1")
            .fetch_all(&t.app.db.admin)
            .await
            .unwrap();
    sqlx::query("UPDATE engine.activity SET events = 999")
        .execute(&t.app.db.admin)
        .await
        .unwrap();
    let sub = events::builtin_subscriptions()
        .into_iter()
        .find(|s| s.name == "activity")
        .unwrap();
    let (seen, done) = events::rebuild(&t.app.db, &sub).await.unwrap();
    assert_eq!(seen, done);
    let after: Vec<(String, i64)> =
        sqlx::query_as("SELECT event_type, events FROM engine.activity ORDER BY 1")
            .fetch_all(&t.app.db.admin)
            .await
            .unwrap();
    assert_eq!(before, after);

    // Stored events of the tenant, newest first, filtered by pattern.
    let r = t
        .get(&admin, "/api/v1/events?type=registry.customer.%23&limit=3")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 3);
    assert_eq!(r.body["has_more"], true);
    assert_eq!(r.body["data"][0]["event"]["payload"]["name"], "Edsger");
    let r = t.get(&other, "/api/v1/events").await;
    assert_eq!(r.body["data"], json!([]));
    t.cleanup().await;
}

impl TestApp {
    fn events_wake(&self) {
        self.app.events.wake();
    }
}

#[tokio::test]
async fn the_audit_chain_verifies_and_names_the_first_altered_or_removed_event() {
    let t = TestApp::new().await;
    let tenant: Uuid = TENANT.parse().unwrap();
    let admin = t.token(tenant, &["admin"]);
    let mut ids = vec![];
    for name in ["One", "Two", "Three", "Four", "Five"] {
        ids.push(customer(&t, &admin, name).await);
    }
    let r = t
        .patch(
            &admin,
            &format!("/api/v1/objects/customer/records/{}", ids[1]),
            &json!({"email": "two@example.com"}),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // A second tenant has a chain of its own.
    let other = t.token(Uuid::new_v4(), &["admin"]);
    customer(&t, &other, "Elsewhere").await;

    let sealed = platform::audit::seal_all(&t.app.db.admin).await.unwrap();
    assert!(sealed >= 7, "{sealed}");
    let report = platform::audit::verify(&t.app.db.admin, None)
        .await
        .unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.tenants, 2);
    assert_eq!(report.links, 7);

    // The runtime role can neither change nor remove audit events, nor touch the chain.
    let mut tx = platform::db::tenant_tx(&t.app.db.app, tenant)
        .await
        .unwrap();
    let e = sqlx::query("UPDATE engine.audit_events SET actor = 'x'")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("permission denied"), "{e}");
    tx.rollback().await.unwrap();
    for sql in [
        "DELETE FROM engine.audit_events",
        "DELETE FROM engine.audit_chain",
        "SELECT * FROM engine.audit_chain",
    ] {
        let mut tx = platform::db::tenant_tx(&t.app.db.app, tenant)
            .await
            .unwrap();
        let e = sqlx::query(sql).execute(&mut *tx).await.unwrap_err();
        assert!(e.to_string().contains("permission denied"), "{sql}: {e}");
        tx.rollback().await.unwrap();
    }

    // A superuser edits the update event (the 6th link of the tenant).
    let (seq, event): (i64, Uuid) = sqlx::query_as(
        "SELECT c.seq, c.event_id FROM engine.audit_chain c JOIN engine.audit_events a ON a.id = c.event_id
         WHERE a.action = 'updated' AND a.tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(&t.app.db.admin)
    .await
    .unwrap();
    sqlx::query("UPDATE engine.audit_events SET changes = '{\"email\": {\"after\": \"forged@example.com\"}}' WHERE id = $1")
        .bind(event)
        .execute(&t.app.db.admin)
        .await
        .unwrap();
    let report = platform::audit::verify(&t.app.db.admin, Some(tenant))
        .await
        .unwrap();
    let b = report.first_break.expect("a break");
    assert_eq!((b.tenant, b.seq, b.event_id), (tenant, Some(seq), event));
    assert!(b.reason.contains("altered"), "{}", b.reason);

    // The CLI says the same and exits 1.
    let url = format!("{}/{}", server_url(), t.db_name);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_platform"))
        .args(["audit", "verify", "--database-url", &url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("link {seq}, event {event}")),
        "{stdout}"
    );

    // Removing the second event instead is found at link 2.
    let t2 = TestApp::new().await;
    for name in ["A", "B", "C"] {
        customer(&t2, &t2.token(tenant, &["admin"]), name).await;
    }
    platform::audit::seal_all(&t2.app.db.admin).await.unwrap();
    sqlx::query("DELETE FROM engine.audit_events WHERE id = (SELECT event_id FROM engine.audit_chain WHERE seq = 2)")
        .execute(&t2.app.db.admin)
        .await
        .unwrap();
    let b = platform::audit::verify(&t2.app.db.admin, None)
        .await
        .unwrap()
        .first_break
        .expect("a break");
    assert_eq!(b.seq, Some(2));
    assert!(b.reason.contains("deleted"), "{}", b.reason);
    // An event slipped in around the engine is outside the chain.
    let t3 = TestApp::new().await;
    customer(&t3, &t3.token(tenant, &["admin"]), "A").await;
    platform::audit::seal_all(&t3.app.db.admin).await.unwrap();
    sqlx::query("INSERT INTO engine.audit_events (id, tenant_id, object, record_id, action, record_version, actor, roles, metadata_version, changes)
                 VALUES (gen_random_uuid(), $1, 'customer', gen_random_uuid(), 'deleted', 1, 'ghost', '{}', 1, '{}')")
        .bind(tenant)
        .execute(&t3.app.db.admin)
        .await
        .unwrap();
    let b = platform::audit::verify(&t3.app.db.admin, None)
        .await
        .unwrap()
        .first_break
        .expect("a break");
    assert_eq!(b.seq, None);
    assert!(b.reason.contains("outside the chain"), "{}", b.reason);
    t3.cleanup().await;
    t2.cleanup().await;
    t.cleanup().await;
}

/// A webhook receiver on a random port: answers 500 to the first POST, then 200, and
/// keeps what it received.
async fn receiver() -> (
    String,
    Arc<tokio::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
) {
    let got: Arc<tokio::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let g = g.clone();
            async move {
                let mut v = g.lock().await;
                v.push((headers, body));
                if v.len() == 1 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), got)
}

#[tokio::test]
async fn webhooks_are_signed_retried_with_backoff_and_logged() {
    // The receiver listens on loopback, which only a development setting allows.
    let t = TestApp::with_events(EventSettings {
        allow_private_webhooks: true,
        ..EventSettings::default()
    })
    .await;
    events::spawn(&t.app);
    let tenant: Uuid = TENANT.parse().unwrap();
    let admin = t.token(tenant, &["admin"]);
    let (url, got) = receiver().await;

    // Bad subscriptions are refused field by field.
    let r = t
        .post(
            &admin,
            "/api/v1/metadata/webhooks",
            &json!({"name": "", "url": "ftp://x", "events": ["a..b"], "colour": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let fields: Vec<&str> = r.body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    for f in ["name", "url", "events", "colour"] {
        assert!(fields.contains(&f), "{f} in {}", r.body);
    }
    let viewer = t.token(tenant, &["viewer"]);
    let r = t.get(&viewer, "/api/v1/metadata/webhooks").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let secret = "s3cret-s3cret-s3cret";
    let r = t
        .post(
            &admin,
            "/api/v1/metadata/webhooks",
            &json!({"name": "crm", "url": url, "events": ["registry.customer.created"], "secret": secret}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let hook = r.body["id"].as_str().unwrap().to_string();
    // A second subscription may not take its name, made or renamed.
    let r = t
        .post(
            &admin,
            "/api/v1/metadata/webhooks",
            &json!({"name": "other", "url": "https://hooks.example.com/x", "events": ["#"], "active": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let other_hook = r.body["id"].as_str().unwrap().to_string();
    for (method, path) in [
        (
            axum::http::Method::POST,
            "/api/v1/metadata/webhooks".to_string(),
        ),
        (
            axum::http::Method::PATCH,
            format!("/api/v1/metadata/webhooks/{other_hook}"),
        ),
    ] {
        let r = t
            .send(
                method,
                &path,
                Some(&admin),
                Some(
                    &json!({"name": "crm", "url": "https://hooks.example.com/y", "events": ["#"]}),
                ),
                &[],
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            r.body
        );
        assert_eq!(r.body["details"][0]["rule"], "unique");
    }
    let id = customer(&t, &admin, "Hooked").await;
    // Not subscribed: an update.
    t.patch(
        &admin,
        &format!("/api/v1/objects/customer/records/{id}"),
        &json!({"email": "h@example.com"}),
        &[],
    )
    .await;

    // First try fails (500), the second after the backoff succeeds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while got.lock().await.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "webhook not retried");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    t.wait_until(
        "SELECT EXISTS (SELECT 1 FROM engine.webhook_deliveries WHERE status = 'delivered')",
        "the delivery to be marked",
        10,
    )
    .await;
    let calls = got.lock().await.clone();
    assert_eq!(calls.len(), 2, "only the subscribed event, once delivered");
    let (headers, body) = &calls[1];
    let envelope: Value = serde_json::from_str(body).unwrap();
    assert_eq!(envelope["type"], "registry.customer.created");
    assert_eq!(envelope["record_id"], id.as_str());
    assert_eq!(headers["x-platform-event"], "registry.customer.created");
    let sig = headers["x-platform-signature"].to_str().unwrap();
    let ts: i64 = sig
        .strip_prefix("t=")
        .and_then(|s| s.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(sig, platform::webhooks::signature(secret, ts, body));
    assert_ne!(
        sig,
        platform::webhooks::signature("another-secret-value", ts, body)
    );
    assert_eq!(
        calls[0].0["x-platform-delivery"], calls[1].0["x-platform-delivery"],
        "a retry is the same delivery"
    );

    let r = t
        .get(
            &admin,
            &format!("/api/v1/metadata/webhooks/{hook}/deliveries"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let d = &r.body["data"][0];
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["attempts"], 2);
    assert_eq!(d["log"][0]["status_code"], 500);
    assert_eq!(d["log"][0]["error"], "HTTP 500");
    assert_eq!(d["log"][1]["status_code"], 200);
    // The secret is never shown again.
    let r = t
        .get(&admin, &format!("/api/v1/metadata/webhooks/{hook}"))
        .await;
    assert!(r.body.get("secret").is_none(), "{}", r.body);
    t.cleanup().await;
}

#[tokio::test]
async fn lifecycle_transitions_are_checked_audited_and_published_as_domain_events() {
    let t = TestApp::with_events(EventSettings::default()).await;
    events::spawn(&t.app);
    let tenant: Uuid = TENANT.parse().unwrap();
    let sales = t.token(tenant, &["sales"]);
    let viewer = t.token(tenant, &["viewer"]);
    let c = customer(&t, &sales, "Buyer").await;

    // A new offer starts as draft.
    let r = t
        .post(
            &sales,
            "/api/v1/objects/offer/records",
            &json!({"customer": c, "status": "accepted"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["details"][0]["field"], "status");
    assert_eq!(r.body["details"][0]["rule"], "lifecycle");
    let r = t
        .post(
            &sales,
            "/api/v1/objects/offer/records",
            &json!({"customer": c}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let base = format!("/api/v1/objects/offer/records/{id}");

    // The form schema offers the transitions; the state is not editable.
    let fs = t
        .get(&sales, "/api/v1/objects/offer/form-schema")
        .await
        .body;
    assert_eq!(fs["lifecycle"]["field"], "status");
    assert_eq!(fs["lifecycle"]["transitions"][0]["name"], "send");
    assert_eq!(
        fs["lifecycle"]["transitions"][0]["event"],
        "offers.offer.sent"
    );
    assert_eq!(fs["fields"]["status"]["read_only"], true);
    let fs = t
        .get(&viewer, "/api/v1/objects/offer/form-schema")
        .await
        .body;
    assert_eq!(fs["lifecycle"]["transitions"], json!([]));

    // The state does not change by PATCH.
    let r = t
        .patch(&sales, &base, &json!({"status": "sent"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body["details"][0]["message"]
        .as_str()
        .unwrap()
        .contains("send"));

    // Rules apply in the new state: a sent offer needs lines; nothing is written.
    let r = t
        .post(&sales, &format!("{base}/transitions/send"), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["details"][0]["field"], "lines");
    let r = t
        .patch(
            &sales,
            &base,
            &json!({"lines": [{"description": "Work", "quantity": "2", "unit_price": "50"}]}),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Not from this state; not for this role; unknown.
    let r = t
        .post(&sales, &format!("{base}/transitions/accept"), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["error"], "invalid_transition");
    let r = t
        .post(&viewer, &format!("{base}/transitions/send"), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = t
        .post(&sales, &format!("{base}/transitions/fly"), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    // A stale If-Match is refused.
    let r = t
        .send(
            axum::http::Method::POST,
            &format!("{base}/transitions/send"),
            Some(&sales),
            None,
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

    let r = t
        .post(&sales, &format!("{base}/transitions/send"), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "sent");
    assert_eq!(r.body["net_total"], "100.00");
    let r = t
        .post(&sales, &format!("{base}/transitions/accept"), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "accepted");

    // History shows each step with the state's before and after.
    let h = t.get(&sales, &format!("{base}/history")).await.body;
    let actions: Vec<&str> = h["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["accepted", "sent", "updated", "created"]);
    assert_eq!(h["data"][0]["changes"]["status"]["before"], "sent");
    assert_eq!(h["data"][0]["changes"]["status"]["after"], "accepted");

    // The domain events went out like every other event.
    t.wait_until(ALL_PUBLISHED, "the outbox to be dispatched", 30)
        .await;
    for kind in ["offers.offer.sent", "offers.offer.accepted"] {
        let n: i64 = sqlx::query_scalar("SELECT events FROM engine.activity WHERE event_type = $1")
            .bind(kind)
            .fetch_one(&t.app.db.admin)
            .await
            .unwrap();
        assert_eq!(n, 1, "{kind}");
    }
    t.cleanup().await;
}
