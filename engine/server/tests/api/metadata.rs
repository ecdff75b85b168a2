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
async fn a_field_added_through_one_process_is_accepted_by_another_without_restart() {
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
    // The other process promptly: at once by LISTEN/NOTIFY, within a second by the
    // poll; the bound is loose so a loaded CI machine does not fail it.
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
            start.elapsed() < Duration::from_secs(10),
            "not seen by the other process within 10 seconds: {}",
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
    let export = TempDir::new("platform-export");
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

#[tokio::test]
async fn a_tenant_custom_field_is_typed_filterable_and_invisible_to_other_tenants() {
    let t = TestApp::new().await;
    let other_process = TestApp::start(&shipped_metadata(), Some(&t.db_name))
        .await
        .expect("second process");
    let (ta, tb) = (Uuid::new_v4(), Uuid::new_v4());
    let a = t.token(ta, &["tenant_admin", "sales"]);
    let b = t.token(tb, &["admin"]);
    let a_viewer = t.token(ta, &["viewer"]);
    let tf = format!("{META}/tenant/objects/customer/fields");
    // Only tenant admins; names need the cf_ prefix; checked like any field.
    assert_eq!(
        t.send(
            Method::POST,
            &tf,
            Some(&a_viewer),
            Some(&json!({"name": "cf_region", "type": "text"})),
            &[]
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    let r = t
        .send(
            Method::POST,
            &tf,
            Some(&a),
            Some(&json!({"name": "region", "type": "text"})),
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_definition")),
        "{}",
        r.body
    );
    let r = t
        .send(
            Method::POST,
            &tf,
            Some(&a),
            Some(&json!({"name": "cf_rank", "type": "integr"})),
            &[],
        )
        .await;
    assert_eq!(r.body["details"][0]["field"], "$.type", "{}", r.body);
    // A tenant admin may not change shared metadata.
    let r = t
        .send(
            Method::POST,
            &format!("{META}/objects/customer/fields"),
            Some(&a),
            Some(&json!({"name": "x", "type": "text"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let versions = version_count(&t).await;
    let cols = columns(&t, "registry", "customer").await;
    let r = t.send(Method::POST, &tf, Some(&a), Some(&json!({"name": "cf_rank", "type": "integer", "min": 1, "max": 10, "label": "Rank"})), &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = t
        .send(
            Method::POST,
            &tf,
            Some(&a),
            Some(&json!({"name": "cf_code", "type": "text"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        version_count(&t).await,
        versions,
        "tenant fields make no shared version"
    );
    assert_eq!(
        columns(&t, "registry", "customer").await,
        cols,
        "and run no DDL"
    );
    for (name, rank, code) in [("One", 3, "12"), ("Two", 1, "x7"), ("Three", 7, "300")] {
        let r = t
            .post(
                &a,
                "/api/v1/objects/customer/records",
                &json!({"name": name, "cf_rank": rank, "cf_code": code}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["cf_rank"], rank);
    }
    let bad = t
        .post(
            &a,
            "/api/v1/objects/customer/records",
            &json!({"name": "Bad", "cf_rank": 11}),
        )
        .await;
    assert_eq!(bad.body["details"][0]["field"], "cf_rank");
    assert_eq!(bad.body["details"][0]["rule"], "maximum");
    let list = t
        .get(
            &a,
            "/api/v1/objects/customer/records?filter=cf_rank:gte:2&sort=-cf_rank",
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let names: Vec<&str> = list.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["Three", "One"], "{}", list.body);
    // Paging on a custom field.
    let page = t
        .get(&a, "/api/v1/objects/customer/records?sort=cf_rank&limit=2")
        .await;
    let next = page.body["next_cursor"].as_str().expect("cursor");
    let page2 = t
        .get(
            &a,
            &format!("/api/v1/objects/customer/records?sort=cf_rank&limit=2&cursor={next}"),
        )
        .await;
    assert_eq!(page2.body["data"][0]["name"], "Three", "{}", page2.body);
    // Tenant B sees none of it: records, writes, OpenAPI.
    let rb = t
        .post(
            &b,
            "/api/v1/objects/customer/records",
            &json!({"name": "B", "cf_rank": 2}),
        )
        .await;
    assert_eq!(
        rb.body["details"][0]["rule"], "unknown_field",
        "{}",
        rb.body
    );
    let rb = t
        .post(
            &b,
            "/api/v1/objects/customer/records",
            &json!({"name": "B"}),
        )
        .await;
    assert!(rb.body.get("cf_rank").is_none());
    let doc_b = t
        .send(Method::GET, "/api/v1/openapi.json", Some(&b), None, &[])
        .await;
    assert!(
        doc_b.body["components"]["schemas"]["Customer"]["properties"]
            .get("cf_rank")
            .is_none()
    );
    let doc_a = t
        .send(Method::GET, "/api/v1/openapi.json", Some(&a), None, &[])
        .await;
    assert!(
        doc_a.body["components"]["schemas"]["Customer"]["properties"]
            .get("cf_rank")
            .is_some()
    );
    let public = t
        .send(Method::GET, "/api/v1/openapi.json", None, None, &[])
        .await;
    assert!(
        public.body["components"]["schemas"]["Customer"]["properties"]
            .get("cf_rank")
            .is_none()
    );
    // The other process serves it within a second.
    let start = Instant::now();
    loop {
        let r = other_process
            .get(&a, "/api/v1/objects/customer/records?filter=cf_rank:eq:3")
            .await;
        if r.status == StatusCode::OK && r.body["data"].as_array().map(Vec::len) == Some(1) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "not seen by the other process: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Changing the type converts values, or is refused with the rows that do not fit.
    let f = |n: &str| format!("{tf}/{n}");
    let r = t
        .send(
            Method::PATCH,
            &f("cf_code"),
            Some(&a),
            Some(&json!({"type": "integer"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["details"][0]["value"]["count"], 1);
    assert_eq!(r.body["details"][0]["value"]["samples"][0]["value"], "x7");
    let r = t
        .send(
            Method::PATCH,
            &f("cf_rank"),
            Some(&a),
            Some(&json!({"type": "decimal", "scale": 1, "name": "cf_score"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let list = t
        .get(
            &a,
            "/api/v1/objects/customer/records?sort=cf_score&filter=cf_score:gt:2.5",
        )
        .await;
    let scores: Vec<&str> = list.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|c| c["cf_score"].as_str())
        .collect();
    assert_eq!(scores, ["3.0", "7.0"], "{}", list.body);
    // Removing needs the flag; the values stay and return with the field.
    assert_eq!(
        t.send(Method::DELETE, &f("cf_code"), Some(&a), None, &[])
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        t.send(
            Method::DELETE,
            &format!("{}?allow_destructive=true", f("cf_code")),
            Some(&a),
            None,
            &[]
        )
        .await
        .status,
        StatusCode::OK
    );
    let one = t
        .get(&a, "/api/v1/objects/customer/records?filter=name:eq:One")
        .await;
    assert!(one.body["data"][0].get("cf_code").is_none());
    let id = one.body["data"][0]["id"].as_str().expect("id").to_string();
    let r = t
        .patch(
            &a,
            &format!("/api/v1/objects/customer/records/{id}"),
            &json!({"notes": "kept"}),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        t.send(
            Method::POST,
            &tf,
            Some(&a),
            Some(&json!({"name": "cf_code", "type": "text"})),
            &[]
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let back = t
        .get(&a, &format!("/api/v1/objects/customer/records/{id}"))
        .await;
    assert_eq!(back.body["cf_code"], "12", "{}", back.body);
    let listed = t.get(&a, &format!("{META}/tenant/fields")).await;
    assert_eq!(
        listed.body["objects"]["customer"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        t.get(&b, &format!("{META}/tenant/fields")).await.body["objects"],
        json!({})
    );
    other_process.app.db.app.close().await;
    other_process.app.db.admin.close().await;
    t.cleanup().await;
}
