//! The Metadata API: live changes across processes, versions, rollback, and every
//! refused change leaving the metadata version and the table as they were.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use uuid::Uuid;

const META: &str = "/api/v1/metadata";

async fn columns(t: &TestApp, schema: &str, table: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position")
        .bind(schema)
        .bind(table)
        .fetch_all(&t.app.db.admin)
        .await
        .expect("columns")
}

async fn version_count(t: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM engine.metadata_versions")
        .fetch_one(&t.app.db.admin)
        .await
        .expect("versions")
}

#[tokio::test]
async fn a_field_added_through_one_process_is_accepted_by_another_within_a_second() {
    let a = TestApp::new().await;
    let b = TestApp::start(&shipped_metadata(), Some(&a.db_name))
        .await
        .expect("second process");
    let admin = a.token(Uuid::new_v4(), &["admin"]);
    let r = a
        .send(Method::POST, &format!("{META}/objects/customer/fields"), Some(&admin), Some(&json!({"name": "segment", "type": "picklist", "options": ["smb", "enterprise"], "indexed": true})), &[])
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["version"], 2);
    assert!(
        r.body["ddl"].as_array().expect("ddl").iter().any(|s| s
            .as_str()
            .unwrap_or_default()
            .contains("ADD COLUMN \"segment\" text")),
        "{}",
        r.body
    );
    // The same process accepts it at once.
    let created = a
        .post(
            &admin,
            "/api/v1/objects/customer/records",
            &json!({"name": "Seg", "segment": "smb"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    // The other process within a second.
    let start = Instant::now();
    loop {
        let r = b
            .post(
                &admin,
                "/api/v1/objects/customer/records",
                &json!({"name": "Seg B", "segment": "enterprise"}),
            )
            .await;
        if r.status == StatusCode::CREATED {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "not seen by the other process within a second: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let list = b
        .get(
            &admin,
            "/api/v1/objects/customer/records?filter=segment:eq:smb&sort=segment",
        )
        .await;
    assert_eq!(
        list.body["data"].as_array().map(Vec::len),
        Some(1),
        "{}",
        list.body
    );
    let bad = b
        .post(
            &admin,
            "/api/v1/objects/customer/records",
            &json!({"name": "x", "segment": "huge"}),
        )
        .await;
    assert_eq!(bad.body["details"][0]["field"], "segment");
    let doc = b
        .send(Method::GET, "/api/v1/openapi.json", None, None, &[])
        .await;
    assert!(doc.body["components"]["schemas"]["Customer"]["properties"]
        .get("segment")
        .is_some());
    b.app.db.app.close().await;
    b.app.db.admin.close().await;
    a.cleanup().await;
}

#[tokio::test]
async fn objects_are_created_changed_renamed_and_rolled_back_keeping_data() {
    let t = TestApp::new().await;
    let admin = t.token(Uuid::new_v4(), &["admin"]);
    let project = json!({
        "name": "project", "label": "Project", "service": "crm",
        "fields": [
            {"name": "title", "type": "text", "required": true},
            {"name": "budget", "type": "text"},
            {"name": "customer", "type": "reference", "target": "customer"}
        ],
        "layouts": {"form": {"sections": [{"label": "Project", "fields": ["title", "budget", "customer"]}]}}
    });
    let r = t
        .send(
            Method::POST,
            &format!("{META}/objects"),
            Some(&admin),
            Some(&project),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let v_created = r.body["version"].as_i64().expect("version");
    let p = t
        .post(
            &admin,
            "/api/v1/objects/project/records",
            &json!({"title": "Relaunch", "budget": "1500.50"}),
        )
        .await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
    let id = p.body["id"].as_str().expect("id").to_string();
    // Convert budget text -> money: the data converts.
    let r = t
        .send(
            Method::PATCH,
            &format!("{META}/objects/project/fields/budget"),
            Some(&admin),
            Some(&json!({"type": "money"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let got = t
        .get(&admin, &format!("/api/v1/objects/project/records/{id}"))
        .await;
    assert_eq!(got.body["budget"], "1500.50");
    // Rename keeps the data.
    let r = t
        .send(
            Method::PATCH,
            &format!("{META}/objects/project/fields/title"),
            Some(&admin),
            Some(&json!({"name": "name", "label": "Name"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let got = t
        .get(&admin, &format!("/api/v1/objects/project/records/{id}"))
        .await;
    assert_eq!(got.body["name"], "Relaunch");
    assert!(got.body.get("title").is_none());
    // Versions, one version, a diff.
    let vs = t.get(&admin, &format!("{META}/versions")).await;
    assert_eq!(vs.body["current"], v_created + 2);
    let one = t.get(&admin, &format!("{META}/versions/{v_created}")).await;
    assert!(one.body["ddl"]
        .as_str()
        .expect("ddl")
        .contains("CREATE TABLE \"crm\".\"project\""));
    let d = t
        .get(
            &admin,
            &format!("{META}/diff?from={v_created}&to={}", v_created + 2),
        )
        .await;
    assert!(
        d.body["diff"]["objects_changed"]["project"].is_object(),
        "{}",
        d.body
    );
    // Roll back to the created shape: title comes back (the renamed column is not the
    // same field any more), budget is text again and keeps its value.
    let r = t
        .send(
            Method::POST,
            &format!("{META}/versions/{v_created}/rollback?allow_destructive=true"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["version"], v_created + 3);
    let got = t
        .get(&admin, &format!("/api/v1/objects/project/records/{id}"))
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    assert_eq!(
        got.body["budget"], "1500.50",
        "budget's data survives the round trip"
    );
    assert!(got.body.get("name").is_none());
    assert!(got.body.get("title").is_some());
    let r = t
        .send(
            Method::GET,
            &format!("{META}/objects/project"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(r.body["fields"][1]["type"], "text");
    t.cleanup().await;
}

#[tokio::test]
async fn every_refused_change_gets_its_error_and_changes_nothing() {
    let t = TestApp::new().await;
    let tenant = Uuid::new_v4();
    let admin = t.token(tenant, &["admin"]);
    let viewer = t.token(tenant, &["viewer", "sales"]);
    customer(&t, &admin, "Dup").await;
    customer(&t, &admin, "Dup").await;
    let r = t
        .post(
            &admin,
            "/api/v1/objects/customer/records",
            &json!({"name": "Text notes", "notes": "not a number"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let versions = version_count(&t).await;
    let cols = columns(&t, "registry", "customer").await;
    let field = |f: &str| format!("{META}/objects/customer/fields/{f}");
    type Case<'a> = (Method, String, Option<Value>, &'a str, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            format!("{META}/objects/customer/fields"),
            Some(json!({"name": "x", "type": "nope"})),
            &admin,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_definition",
        ),
        (
            Method::POST,
            format!("{META}/objects/customer/fields"),
            Some(json!({"name": "x", "type": "reference", "target": "ghost"})),
            &admin,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_definition",
        ),
        (
            Method::POST,
            format!("{META}/objects/customer/fields"),
            Some(json!({"name": "x", "type": "text"})),
            &viewer,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            Method::PATCH,
            field("notes"),
            Some(json!({"type": "integer", "max_length": null})),
            &admin,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsafe_change",
        ),
        (
            Method::PATCH,
            field("name"),
            Some(json!({"unique": true})),
            &admin,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsafe_change",
        ),
        (
            Method::PATCH,
            field("name"),
            Some(json!({"max_length": 3, "example": null})),
            &admin,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsafe_change",
        ),
        (
            Method::PATCH,
            field("email"),
            Some(json!({"required": true})),
            &admin,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsafe_change",
        ),
        (
            Method::PATCH,
            field("status"),
            Some(json!({"options": ["blocked", "archived"], "default": "blocked"})),
            &admin,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsafe_change",
        ),
        (
            Method::PATCH,
            field("tags"),
            Some(json!({"type": "reference", "target": "product", "options": null})),
            &admin,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_change",
        ),
        (
            Method::DELETE,
            field("notes"),
            None,
            &admin,
            StatusCode::CONFLICT,
            "destructive_change",
        ),
        (
            Method::DELETE,
            format!("{META}/objects/product"),
            None,
            &admin,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_definition",
        ),
    ];
    for (method, path, body, token, status, code) in cases {
        let r = t
            .send(method.clone(), &path, Some(token), body.as_ref(), &[])
            .await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        assert_eq!(r.body["error"], code, "{method} {path}: {}", r.body);
        assert_eq!(
            version_count(&t).await,
            versions,
            "{method} {path} made a version"
        );
        assert_eq!(
            columns(&t, "registry", "customer").await,
            cols,
            "{method} {path} changed the table"
        );
    }
    // The unsafe change says how many rows and shows them.
    let r = t
        .send(
            Method::PATCH,
            &field("notes"),
            Some(token_str(&admin)),
            Some(&json!({"type": "integer", "max_length": null})),
            &[],
        )
        .await;
    assert_eq!(r.body["details"][0]["value"]["count"], 1);
    assert_eq!(
        r.body["details"][0]["value"]["samples"][0]["value"],
        "not a number"
    );
    let r = t
        .send(
            Method::PATCH,
            &field("name"),
            Some(token_str(&admin)),
            Some(&json!({"unique": true})),
            &[],
        )
        .await;
    assert_eq!(r.body["details"][0]["rule"], "unique");
    // A stale base version is a conflict.
    let r = t
        .send(
            Method::POST,
            &format!("{META}/objects/customer/fields"),
            Some(&admin),
            Some(&json!({"name": "x", "type": "text"})),
            &[("if-match", "\"0\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["error"], "metadata_version_conflict");
    assert_eq!(version_count(&t).await, versions);
    // A dry run plans and changes nothing; with the flag, a drop keeps the data aside.
    let r = t
        .send(
            Method::DELETE,
            &format!("{}?allow_destructive=true&dry_run=true", field("notes")),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["applied"], false);
    assert_eq!(version_count(&t).await, versions);
    let r = t
        .send(
            Method::DELETE,
            &format!("{}?allow_destructive=true", field("notes")),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(columns(&t, "registry", "customer")
        .await
        .iter()
        .any(|c| c.starts_with("_dropped_v") && c.ends_with("_notes")));
    t.cleanup().await;
}

fn token_str(s: &str) -> &str {
    s
}

#[tokio::test]
async fn metadata_apply_dry_run_prints_the_plan_and_changes_nothing() {
    let t = TestApp::new().await;
    let mut def: Value = serde_json::from_str(
        &std::fs::read_to_string(shipped_metadata().join("objects/product.json")).expect("read"),
    )
    .expect("json");
    def["fields"]
        .as_array_mut()
        .expect("fields")
        .push(json!({"name": "weight_kg", "type": "decimal", "scale": 3}));
    let dir = metadata_with(&[("product", def)]);
    let url = format!("{}/{}", server_url(), t.db_name);
    let run = |dry: bool| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_platform"));
        c.args(["metadata", "apply"])
            .arg(&dir)
            .env("DATABASE_URL", &url);
        if dry {
            c.arg("--dry-run");
        }
        c.output().expect("runs")
    };
    let out = run(true);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("ADD COLUMN \"weight_kg\" numeric(18,3)"),
        "{text}"
    );
    assert!(text.contains("dry run"), "{text}");
    assert_eq!(version_count(&t).await, 1);
    let out = run(false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(version_count(&t).await, 2);
    assert!(columns(&t, "registry", "product")
        .await
        .contains(&"weight_kg".to_string()));
    // Export writes the same format back.
    let export = std::env::temp_dir().join(format!("platform-export-{}", Uuid::new_v4().simple()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_platform"))
        .args(["metadata", "export"])
        .arg(&export)
        .env("DATABASE_URL", &url)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = platform::app::load_catalog(&export).expect("exported files load");
    assert!(again
        .get("product")
        .and_then(|p| p.field("weight_kg"))
        .is_some());
    t.app.refresh().await.expect("refresh");
    assert_eq!(t.app.meta().version, 2);
    t.cleanup().await;
}
