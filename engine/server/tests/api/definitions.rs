//! Bad definitions are refused with every error at once; start-up evolves tables.

use crate::harness::*;
use platform_metadata::{Catalog, Source};
use serde_json::{json, Value};
use std::process::Command;

fn check(files: &[(&str, Value)]) -> Vec<platform_metadata::DefinitionError> {
    let sources: Vec<Source> = files
        .iter()
        .map(|(n, v)| Source {
            file: format!("objects/{n}.json"),
            text: v.to_string(),
        })
        .collect();
    match Catalog::from_sources(&sources, platform::app::plugins()) {
        Ok(_) => Vec::new(),
        Err(e) => e,
    }
}

fn obj(name: &str, fields: Value) -> Value {
    json!({"name": name, "label": name, "service": "test", "fields": fields})
}

fn has(errors: &[platform_metadata::DefinitionError], code: &str, path: &str) -> bool {
    errors.iter().any(|e| e.code == code && e.path == path)
}

#[test]
fn each_kind_of_bad_definition_is_reported_with_file_path_and_code() {
    let errors = check(&[
        (
            "a",
            obj(
                "a",
                json!([
                    {"name": "x", "type": "texty"},
                ]),
            ),
        ),
        (
            "b",
            obj(
                "b",
                json!([
                    {"name": "customer", "type": "reference", "target": "nowhere"},
                    {"name": "dup", "type": "text"},
                    {"name": "dup", "type": "integer"},
                    {"name": "version", "type": "integer"},
                    {"name": "f", "type": "formula", "expression": "1 +* 2", "returns": "integer"},
                    {"name": "g", "type": "formula", "expression": "missing_field > 1", "returns": "boolean"},
                ]),
            ),
        ),
        (
            "c",
            json!({"name": "c", "label": "C", "service": "test", "child": true, "fields": [
                {"name": "lines", "type": "children", "object": "d"}
            ]}),
        ),
        (
            "d",
            json!({"name": "d", "label": "D", "service": "test", "child": true, "fields": [
                {"name": "lines", "type": "children", "object": "c"}
            ]}),
        ),
    ]);
    assert!(has(&errors, "schema", "$.fields[0].type"), "{errors:#?}");
    assert!(
        has(&errors, "unknown_object", "$.fields[0].target"),
        "{errors:#?}"
    );
    assert!(
        has(&errors, "duplicate_name", "$.fields[2].name"),
        "{errors:#?}"
    );
    assert!(
        has(&errors, "reserved_name", "$.fields[3].name"),
        "{errors:#?}"
    );
    assert!(
        has(&errors, "expression", "$.fields[4].expression"),
        "{errors:#?}"
    );
    assert!(
        has(&errors, "unknown_field", "$.fields[5].expression"),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.code == "children_cycle" && e.message.contains("c -> d -> c")),
        "{errors:#?}"
    );
    assert!(errors.iter().all(|e| e.file.starts_with("objects/")));
}

#[test]
fn duplicate_objects_bad_defaults_and_unknown_plugins_are_refused() {
    let errors = check(&[
        (
            "a",
            obj(
                "a",
                json!([{"name": "n", "type": "integer", "default": "seven"}]),
            ),
        ),
        ("b", obj("a", json!([{"name": "n", "type": "text"}]))),
        (
            "e",
            json!({"name": "e", "label": "E", "service": "public", "fields": [{"name": "n", "type": "text"}], "hooks": [{"plugin": "nope"}]}),
        ),
    ]);
    assert!(
        has(&errors, "invalid_default", "$.fields[0].default"),
        "{errors:#?}"
    );
    assert!(has(&errors, "duplicate_name", "$.name"), "{errors:#?}");
    assert!(has(&errors, "file_name", "$.name"), "{errors:#?}");
    assert!(has(&errors, "reserved_name", "$.service"), "{errors:#?}");
    assert!(
        has(&errors, "unknown_plugin", "$.hooks[0].plugin"),
        "{errors:#?}"
    );
}

#[test]
fn platform_check_prints_every_error_and_exits_1() {
    let dir = metadata_with(&[(
        "broken",
        obj(
            "broken",
            json!([{"name": "a", "type": "nope"}, {"name": "b", "type": "reference", "target": "ghost"}]),
        ),
    )]);
    let out = Command::new(env!("CARGO_BIN_EXE_platform"))
        .args(["check", "--metadata"])
        .arg(&dir)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("objects/broken.json: $.fields[0].type"),
        "{err}"
    );
    let ok = Command::new(env!("CARGO_BIN_EXE_platform"))
        .args(["check", "--metadata"])
        .arg(shipped_metadata())
        .output()
        .expect("runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[tokio::test]
async fn bad_definitions_stop_start_up_before_anything_is_written() {
    let dir = metadata_with(&[(
        "broken",
        obj("broken", json!([{"name": "a", "type": "nope"}])),
    )]);
    let name = format!("platform_test_{}", uuid::Uuid::new_v4().simple());
    let err = TestApp::start(&dir, Some(&name))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("$.fields[0].type"), "{err}");
    let mut c =
        <sqlx::PgConnection as sqlx::Connection>::connect(&format!("{}/postgres", server_url()))
            .await
            .expect("pg");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut c)
            .await
            .expect("query");
    assert!(!exists, "a refused start must not create the database");
}

#[tokio::test]
async fn restart_applies_additive_changes_and_refuses_destructive_ones() {
    let first = TestApp::new().await;
    let db = first.db_name.clone();
    let tenant = uuid::Uuid::new_v4();
    let token = first.token(tenant, &["admin"]);
    let id = customer(&first, &token, "Keeps Data").await;
    first.app.db.app.close().await;
    first.app.db.admin.close().await;

    // A new field: the column is added, existing data stays.
    let mut def: Value = serde_json::from_str(
        &std::fs::read_to_string(shipped_metadata().join("objects/customer.json")).expect("read"),
    )
    .expect("json");
    def["fields"]
        .as_array_mut()
        .expect("fields")
        .push(json!({"name": "loyalty_level", "type": "integer", "indexed": true}));
    let dir = metadata_with(&[("customer", def.clone())]);
    let second = TestApp::start(&dir, Some(&db))
        .await
        .expect("additive change applies");
    assert_eq!(second.app.meta().version, 2);
    let r = second
        .patch(
            &token,
            &format!("/api/v1/objects/customer/records/{id}"),
            &json!({"loyalty_level": 3}),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["loyalty_level"], 3);
    assert_eq!(r.body["name"], "Keeps Data");
    second.app.db.app.close().await;
    second.app.db.admin.close().await;

    // Dropping the field again is destructive: refused, nothing changes.
    let err = TestApp::start(&shipped_metadata(), Some(&db))
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("drop column customer.loyalty_level"),
        "{err}"
    );
    let third = TestApp::start(&dir, Some(&db))
        .await
        .expect("same definitions start");
    assert_eq!(
        third.app.meta().version,
        2,
        "a refused change creates no version"
    );
    let r = third
        .get(&token, &format!("/api/v1/objects/customer/records/{id}"))
        .await;
    assert_eq!(r.body["loyalty_level"], 3);
    third.cleanup().await;
}
