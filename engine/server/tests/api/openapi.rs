//! The OpenAPI document and the docs page.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

#[tokio::test]
async fn every_create_example_succeeds_when_posted_as_it_is() {
    let t = TestApp::new().await;
    let doc = t
        .send(Method::GET, "/api/v1/openapi.json", None, None, &[])
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.body;
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    let token = t.token(Uuid::new_v4(), &["admin"]);
    let meta = t.app.meta();
    let mut posted = 0;
    for obj in meta.catalog.dependency_order() {
        if obj.def.child {
            assert!(doc["components"]["schemas"]
                .get(pascal(obj.name()))
                .is_some());
            continue;
        }
        let path = format!("/api/v1/objects/{}/records", obj.name());
        let op = &doc["paths"][&path]["post"];
        for m in ["get", "post"] {
            assert!(doc["paths"][&path].get(m).is_some(), "{path} {m}");
        }
        for m in ["get", "patch", "put", "delete"] {
            assert!(
                doc["paths"][format!("{path}/{{id}}")].get(m).is_some(),
                "{path}/{{id}} {m}"
            );
        }
        let example: Value = op["requestBody"]["content"]["application/json"]["example"].clone();
        assert!(example.is_object(), "{path} has an example");
        let r = t.post(&token, &path, &example).await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{path} example {example}: {}",
            r.body
        );
        posted += 1;
    }
    assert!(posted >= 4);
    t.cleanup().await;
}

fn pascal(n: &str) -> String {
    n.split('_')
        .map(|p| p[..1].to_uppercase() + &p[1..])
        .collect()
}

#[tokio::test]
async fn the_docs_page_and_health_need_no_token_and_no_network() {
    let t = TestApp::new().await;
    let page = t.send(Method::GET, "/api/docs/", None, None, &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.body.as_str().expect("html");
    assert!(html.contains("swagger") || html.contains("Swagger"));
    assert!(!html.contains("https://cdn"), "no CDN");
    let init = t
        .send(
            Method::GET,
            "/api/docs/swagger-initializer.js",
            None,
            None,
            &[],
        )
        .await;
    assert!(init
        .body
        .as_str()
        .expect("js")
        .contains("/api/v1/openapi.json"));
    assert_eq!(
        t.send(Method::GET, "/health", None, None, &[]).await.status,
        StatusCode::OK
    );
    let ready = t.send(Method::GET, "/ready", None, None, &[]).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["metadata_version"], 1);
    let schema = t
        .send(Method::GET, "/api/v1/metadata/schema", None, None, &[])
        .await;
    assert_eq!(schema.status, StatusCode::UNAUTHORIZED);
    t.cleanup().await;
}

#[tokio::test]
async fn every_shipped_object_has_a_form_and_list_schema_with_its_layout() {
    let t = TestApp::new().await;
    let admin = t.token(Uuid::new_v4(), &["admin"]);
    let viewer = t.token(Uuid::new_v4(), &["viewer"]);
    let meta = t.app.meta();
    for obj in meta.catalog.objects().filter(|o| !o.def.child) {
        let form = t
            .get(
                &admin,
                &format!("/api/v1/objects/{}/form-schema", obj.name()),
            )
            .await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let placed: Vec<&str> = form.body["sections"]
            .as_array()
            .expect("sections")
            .iter()
            .flat_map(|s| {
                s["fields"]
                    .as_array()
                    .expect("fields")
                    .iter()
                    .filter_map(|f| f.as_str())
            })
            .collect();
        for f in &obj.def.fields {
            assert!(
                placed.contains(&f.name.as_str()),
                "{}.{} is on no section",
                obj.name(),
                f.name
            );
            assert!(form.body["fields"][&f.name]["widget"].is_string());
        }
        let list = t
            .get(
                &admin,
                &format!("/api/v1/objects/{}/list-schema", obj.name()),
            )
            .await;
        assert_eq!(list.status, StatusCode::OK);
        assert!(!list.body["columns"].as_array().expect("columns").is_empty());
    }
    let offer = t
        .get(&viewer, "/api/v1/objects/offer/form-schema")
        .await
        .body;
    assert_eq!(offer["permissions"]["create"], false);
    assert_eq!(offer["permissions"]["read"], true);
    assert_eq!(offer["fields"]["customer"]["target"]["object"], "customer");
    assert_eq!(
        offer["fields"]["lines"]["lines"]["fields"]["quantity"]["widget"],
        "decimal"
    );
    assert_eq!(offer["fields"]["status"]["options"][0]["value"], "draft");
    assert_eq!(offer["fields"]["grand_total"]["read_only"], true);
    // A tenant's custom field shows on that tenant's form only.
    let tenant = Uuid::new_v4();
    let a = t.token(tenant, &["admin"]);
    let r = t
        .send(
            Method::POST,
            "/api/v1/metadata/tenant/objects/offer/fields",
            Some(&a),
            Some(
                &serde_json::json!({"name": "cf_po_number", "type": "text", "label": "PO number"}),
            ),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let form = t.get(&a, "/api/v1/objects/offer/form-schema").await.body;
    assert_eq!(form["fields"]["cf_po_number"]["label"], "PO number");
    assert!(form["sections"]
        .as_array()
        .expect("sections")
        .last()
        .expect("last")["fields"]
        .as_array()
        .expect("fields")
        .contains(&serde_json::json!("cf_po_number")));
    assert!(t
        .get(&admin, "/api/v1/objects/offer/form-schema")
        .await
        .body["fields"]
        .get("cf_po_number")
        .is_none());
    let list = t.get(&a, "/api/v1/objects/offer/list-schema").await.body;
    assert!(list["columns"]
        .as_array()
        .expect("columns")
        .contains(&serde_json::json!("cf_po_number")));
    t.cleanup().await;
}
