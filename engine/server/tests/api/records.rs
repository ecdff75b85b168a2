//! Writing and reading records: every field type, validation, locking, idempotency.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

fn kitchen_sink() -> Vec<(&'static str, Value)> {
    vec![
        (
            "gadget",
            json!({
                "name": "gadget", "label": "Gadget", "service": "lab",
                "fields": [
                    {"name": "title", "type": "text", "required": true, "max_length": 20, "pattern": "^[A-Z]"},
                    {"name": "body", "type": "long_text"},
                    {"name": "count", "type": "integer", "min": 0, "max": 1000},
                    {"name": "ratio", "type": "decimal", "precision": 10, "scale": 3, "min": -5},
                    {"name": "price", "type": "money", "currency_field": "currency"},
                    {"name": "rate", "type": "percent", "max": 100},
                    {"name": "active", "type": "boolean", "default": true},
                    {"name": "day", "type": "date", "min": "2000-01-01"},
                    {"name": "moment", "type": "datetime", "min": "2000-01-01"},
                    {"name": "mail", "type": "email"},
                    {"name": "phone", "type": "phone"},
                    {"name": "site", "type": "url"},
                    {"name": "currency", "type": "picklist", "options": ["EUR", "USD"], "default": "EUR"},
                    {"name": "labels", "type": "multi_picklist", "options": ["a", "b", "c"]},
                    {"name": "owner", "type": "reference", "target": "customer", "on_delete": "set_null"},
                    {"name": "parts", "type": "children", "object": "gadget_part"},
                    {"name": "doubled", "type": "formula", "expression": "count * 2", "returns": "integer"},
                    {"name": "quadrupled", "type": "formula", "expression": "doubled * 2 if doubled is not none else none", "returns": "integer"},
                    {"name": "origin", "type": "text", "read_only": true, "default": "api"},
                    {"name": "code", "type": "autonumber", "format": "G-{YYYY}-{seq:4}", "gapless": true},
                    {"name": "extra", "type": "json"},
                    {"name": "status", "type": "picklist", "options": ["new", "done"], "default": "new"}
                ],
                "rules": [
                    {"name": "done_needs_parts", "expression": "status != 'done' or (parts | length) > 0", "message": "A done gadget needs parts.", "field": "status"},
                    {"name": "parts_are_small", "expression": "parts | selectattr('qty', 'gt', 100) | list | length == 0", "message": "No part above 100.", "field": "parts"},
                    {"name": "frozen_after_ten_edits", "expression": "version is none or version < 10", "message": "Too many edits."}
                ]
            }),
        ),
        (
            "gadget_part",
            json!({
                "name": "gadget_part", "label": "Part", "service": "lab", "child": true,
                "fields": [
                    {"name": "label", "type": "text", "required": true},
                    {"name": "qty", "type": "decimal", "scale": 2, "min": 0.01, "required": true}
                ]
            }),
        ),
    ]
}

#[tokio::test]
async fn every_field_type_round_trips() {
    let t = TestApp::start(&metadata_with(&kitchen_sink()), None)
        .await
        .expect("starts");
    let token = t.token(Uuid::new_v4(), &["admin"]);
    let owner = customer(&t, &token, "Owner").await;
    let input = json!({
        "title": "Alpha", "body": "long\ntext", "count": 21, "ratio": "1.2345", "price": 19.99, "rate": "12.5",
        "active": false, "day": "2026-02-28", "moment": "2026-02-28T10:11:12.123456+02:00", "mail": "a@example.com",
        "phone": "+385 1 234 567", "site": "https://example.com/x", "currency": "USD", "labels": ["a", "c"],
        "owner": owner.to_uppercase(), "parts": [{"label": "bolt", "qty": "2"}, {"label": "nut", "qty": 0.5}],
        "extra": {"nested": [1, "two", null]}
    });
    let r = t
        .post(&token, "/api/v1/objects/gadget/records", &input)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().expect("id").to_string();
    let got = t
        .get(&token, &format!("/api/v1/objects/gadget/records/{id}"))
        .await;
    assert_eq!(got.status, StatusCode::OK);
    let b = &got.body;
    assert_eq!(b["title"], "Alpha");
    assert_eq!(b["body"], "long\ntext");
    assert_eq!(b["count"], 21);
    assert_eq!(b["ratio"], "1.235", "rounded half up to scale 3");
    assert_eq!(b["price"], "19.99");
    assert_eq!(b["rate"], "12.5000");
    assert_eq!(b["active"], false);
    assert_eq!(b["day"], "2026-02-28");
    assert_eq!(b["moment"], "2026-02-28T08:11:12.123456Z");
    assert_eq!(b["mail"], "a@example.com");
    assert_eq!(b["phone"], "+385 1 234 567");
    assert_eq!(b["site"], "https://example.com/x");
    assert_eq!(b["currency"], "USD");
    assert_eq!(b["labels"], json!(["a", "c"]));
    assert_eq!(b["owner"], json!(owner));
    assert_eq!(b["parts"][0]["label"], "bolt");
    assert_eq!(b["parts"][0]["qty"], "2.00");
    assert_eq!(b["parts"][1]["qty"], "0.50");
    assert_eq!(b["doubled"], 42);
    assert_eq!(b["quadrupled"], 84, "a formula sees the formulas before it");
    assert_eq!(
        b["origin"], "api",
        "a read-only field takes its default on create"
    );
    assert!(
        b["code"].as_str().expect("code").ends_with("-0001"),
        "{}",
        b["code"]
    );
    assert_eq!(b["extra"], json!({"nested": [1, "two", null]}));
    assert_eq!(b["version"], 1);
    assert_eq!(got.headers["etag"], "\"1\"");
    // A second record numbers on.
    let r2 = t
        .post(
            &token,
            "/api/v1/objects/gadget/records",
            &json!({"title": "Beta"}),
        )
        .await;
    assert!(r2.body["code"].as_str().expect("code").ends_with("-0002"));
    assert_eq!(r2.body["active"], true, "literal default");
    assert_eq!(r2.body["parts"], json!([]));
    t.cleanup().await;
}

#[tokio::test]
async fn bad_input_gets_one_422_listing_every_problem_and_writes_nothing() {
    let t = TestApp::start(&metadata_with(&kitchen_sink()), None)
        .await
        .expect("starts");
    let token = t.token(Uuid::new_v4(), &["admin"]);
    let before = t.count_all("lab.gadget").await;
    let r = t
        .post(
            &token,
            "/api/v1/objects/gadget/records",
            &json!({
                "title": "lowercase and far too long", "count": -1, "ratio": "abc", "day": "1999-12-31",
                "mail": "not-an-email", "currency": "JPY", "labels": ["z"], "owner": "not-a-uuid",
                "doubled": 5, "version": 3, "nonsense": true, "status": "done",
                "parts": [{"label": "ok", "qty": "1"}, {"qty": "0"}]
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["error"], "validation_failed");
    let details = r.body["details"].as_array().expect("details");
    let has = |field: &str, rule: &str| {
        details
            .iter()
            .any(|d| d["field"] == field && d["rule"] == rule)
    };
    assert!(has("title", "max_length"), "{details:#?}");
    assert!(has("title", "pattern"), "{details:#?}");
    assert!(has("count", "minimum"), "{details:#?}");
    assert!(has("ratio", "type"), "{details:#?}");
    assert!(
        has("day", "minimum"),
        "normalised although other fields failed the schema: {details:#?}"
    );
    assert!(has("mail", "format"), "{details:#?}");
    assert!(has("currency", "options"), "{details:#?}");
    assert!(has("labels[0]", "options"), "{details:#?}");
    assert!(has("owner", "format"), "{details:#?}");
    assert!(has("doubled", "read_only"), "{details:#?}");
    assert!(has("version", "system_field"), "{details:#?}");
    assert!(has("nonsense", "unknown_field"), "{details:#?}");
    assert!(has("parts[1].label", "required"), "{details:#?}");
    assert!(details
        .iter()
        .all(|d| d.get("message").is_some() && d.get("value").is_some()));
    let bad = details
        .iter()
        .find(|d| d["field"] == "count")
        .expect("count");
    assert_eq!(bad["value"], -1);

    // Past the schema: normalisation and rules, still all at once.
    let r = t
        .post(&token, "/api/v1/objects/gadget/records", &json!({"title": "Ok", "day": "1999-12-31", "status": "done", "parts": [{"label": "x", "qty": "0"}]}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let details = r.body["details"].as_array().expect("details");
    let has = |field: &str, rule: &str| {
        details
            .iter()
            .any(|d| d["field"] == field && d["rule"] == rule)
    };
    assert!(has("day", "minimum"), "{details:#?}");
    assert!(has("parts[0].qty", "minimum"), "{details:#?}");
    let r = t.post(&token, "/api/v1/objects/gadget/records", &json!({"title": "Ok", "moment": "1999-12-31T23:59:59Z", "parts": [{"label": "big", "qty": "100.5"}]})).await;
    let details = r.body["details"].as_array().expect("details");
    assert!(
        details
            .iter()
            .any(|d| d["field"] == "moment" && d["rule"] == "minimum"),
        "{details:#?}"
    );
    let r = t
        .post(
            &token,
            "/api/v1/objects/gadget/records",
            &json!({"title": "Ok", "parts": [{"label": "big", "qty": "100.5"}]}),
        )
        .await;
    assert!(
        r.body["details"]
            .as_array()
            .expect("details")
            .iter()
            .any(|d| d["rule"] == "parts_are_small"),
        "decimals in lines compare as numbers: {}",
        r.body
    );
    let r = t
        .post(
            &token,
            "/api/v1/objects/gadget/records",
            &json!({"title": "Ok", "status": "done"}),
        )
        .await;
    assert!(
        r.body["details"]
            .as_array()
            .expect("details")
            .iter()
            .any(|d| d["field"] == "status" && d["rule"] == "done_needs_parts"),
        "{}",
        r.body
    );
    assert_eq!(t.count_all("lab.gadget").await, before);
    assert_eq!(t.count_all("lab.gadget_part").await, 0);
    assert_eq!(t.count_all("engine.audit_events").await, 0);
    t.cleanup().await;
}

#[tokio::test]
async fn offer_totals_are_computed_to_the_cent_by_the_pricing_plugin() {
    let t = TestApp::new().await;
    let token = t.token(Uuid::new_v4(), &["sales"]);
    let c = customer(&t, &token, "Buyer").await;
    let r = t
        .post(
            &token,
            "/api/v1/objects/offer/records",
            &json!({"customer": c, "lines": [
                {"description": "A", "quantity": "3", "unit_price": "19.99", "discount_percent": "10", "tax_rate": "25"},
                {"description": "B", "quantity": "1.5", "unit_price": "0.33", "tax_rate": "13"}
            ]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().expect("id");
    let o = t
        .get(&token, &format!("/api/v1/objects/offer/records/{id}"))
        .await
        .body;
    assert_eq!(o["lines"][0]["net_amount"], "53.97");
    assert_eq!(o["lines"][0]["tax_amount"], "13.49");
    assert_eq!(o["lines"][1]["net_amount"], "0.50"); // 0.495 rounds half up
    assert_eq!(o["lines"][1]["tax_amount"], "0.07"); // 0.065 rounds half up
    assert_eq!(o["subtotal"], "60.47");
    assert_eq!(o["discount_total"], "6.00");
    assert_eq!(o["net_total"], "54.47");
    assert_eq!(o["tax_total"], "13.56");
    assert_eq!(o["grand_total"], "68.03");
    assert_eq!(o["line_count"], 2);
    assert_eq!(o["status"], "draft");
    assert!(o["number"].as_str().expect("number").starts_with("OF-"));

    // Changing a line recomputes the totals; the line keeps its id.
    let line0 = o["lines"][0]["id"].as_str().expect("line id");
    let r = t
        .patch(&token, &format!("/api/v1/objects/offer/records/{id}"), &json!({"lines": [{"id": line0, "description": "A", "quantity": "1", "unit_price": "100"}]}), &[("if-match", "\"1\"")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["grand_total"], "125.00");
    assert_eq!(r.body["lines"][0]["id"], line0);
    assert_eq!(r.body["version"], 2);
    let events: i64 = t.count_all("engine.outbox").await;
    assert_eq!(events, 3, "customer created, offer created, offer updated");
    t.cleanup().await;
}

#[tokio::test]
async fn a_stale_version_gets_409_and_changes_nothing() {
    let t = TestApp::new().await;
    let token = t.token(Uuid::new_v4(), &["admin"]);
    let id = customer(&t, &token, "Versioned").await;
    let path = format!("/api/v1/objects/customer/records/{id}");
    let ok = t
        .patch(
            &token,
            &path,
            &json!({"notes": "first"}),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.headers["etag"], "\"2\"");
    let stale = t
        .patch(
            &token,
            &path,
            &json!({"notes": "second"}),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    assert_eq!(stale.body["error"], "version_conflict");
    let stale_body = t
        .send(
            Method::PUT,
            &path,
            Some(&token),
            Some(&json!({"name": "X", "version": 1})),
            &[],
        )
        .await;
    assert_eq!(stale_body.status, StatusCode::CONFLICT);
    let stale_delete = t
        .send(
            Method::DELETE,
            &format!("{path}?version=1"),
            Some(&token),
            None,
            &[],
        )
        .await;
    assert_eq!(stale_delete.status, StatusCode::CONFLICT);
    let now = t.get(&token, &path).await;
    assert_eq!(now.body["notes"], "first");
    assert_eq!(now.body["version"], 2);
    let put = t
        .send(
            Method::PUT,
            &path,
            Some(&token),
            Some(&json!({"name": "Replaced", "version": 2})),
            &[],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(
        put.body["notes"],
        Value::Null,
        "PUT replaces every writable field"
    );
    assert_eq!(
        put.body["status"], "active",
        "PUT applies defaults to absent fields"
    );
    let del = t
        .send(
            Method::DELETE,
            &path,
            Some(&token),
            None,
            &[("if-match", "\"3\"")],
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_eq!(t.get(&token, &path).await.status, StatusCode::NOT_FOUND);
    t.cleanup().await;
}

#[tokio::test]
async fn idempotent_post_replays_and_refuses_another_body() {
    let t = TestApp::new().await;
    let token = t.token(Uuid::new_v4(), &["admin"]);
    let body = json!({"name": "Once Only"});
    let key = [("idempotency-key", "key-123")];
    let path = "/api/v1/objects/customer/records";
    let (a, b) = tokio::join!(
        t.send(Method::POST, path, Some(&token), Some(&body), &key),
        t.send(Method::POST, path, Some(&token), Some(&body), &key)
    );
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(b.status, StatusCode::CREATED, "{}", b.body);
    assert_eq!(a.body["id"], b.body["id"]);
    let c = t
        .send(Method::POST, path, Some(&token), Some(&body), &key)
        .await;
    assert_eq!(c.body["id"], a.body["id"]);
    assert_eq!(c.headers["idempotent-replayed"], "true");
    let other = t
        .send(
            Method::POST,
            path,
            Some(&token),
            Some(&json!({"name": "Different"})),
            &key,
        )
        .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.body["error"], "idempotency_key_reused");
    assert_eq!(t.count_all("registry.customer").await, 1);
    // The same key in another tenant is another request.
    let token_b = t.token(Uuid::new_v4(), &["admin"]);
    let d = t
        .send(Method::POST, path, Some(&token_b), Some(&body), &key)
        .await;
    assert_eq!(d.status, StatusCode::CREATED);
    assert_ne!(d.body["id"], a.body["id"]);
    t.cleanup().await;
}

#[tokio::test]
async fn every_error_is_structured_json() {
    let t = TestApp::new().await;
    let token = t.token(Uuid::new_v4(), &["admin"]);
    let viewer = t.token(Uuid::new_v4(), &["viewer"]);
    let path = "/api/v1/objects/customer/records";
    let cases = [
        (
            t.send(Method::GET, path, None, None, &[]).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            t.send(Method::GET, path, Some("not.a.jwt"), None, &[])
                .await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            t.post(&viewer, path, &json!({"name": "x"})).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            t.get(&token, "/api/v1/objects/nothing/records").await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            t.get(&token, "/api/v1/objects/offer_line/records").await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            t.get(&token, &format!("{path}/{}", Uuid::new_v4())).await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            t.get(&token, "/nowhere").await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            t.send(Method::DELETE, path, Some(&token), None, &[]).await,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            t.get(&token, &format!("{path}?filter=name:like:x")).await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            t.patch(
                &token,
                &format!("{path}/{}", Uuid::new_v4()),
                &json!({}),
                &[("if-match", "abc")],
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_if_match",
        ),
        (
            t.post(&token, path, &json!([1, 2])).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];
    for (r, status, code) in cases {
        assert_eq!(r.status, status, "{}", r.body);
        assert_eq!(r.body["error"], code, "{}", r.body);
        assert!(r.body["message"].is_string());
    }
    let raw = |ct: &str, body: Vec<u8>| {
        let req = axum::http::Request::post(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", ct)
            .body(axum::body::Body::from(body))
            .expect("request");
        let router = t.router.clone();
        async move {
            use tower::ServiceExt;
            let resp = router.oneshot(req).await.expect("response");
            let status = resp.status();
            let bytes = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .expect("body")
                .to_bytes();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).expect("json error body"),
            )
        }
    };
    let (s, b) = raw("text/plain", b"{}".to_vec()).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );
    let (s, b) = raw("application/json", b"{\"name\": ".to_vec()).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let (s, b) = raw("application/json", big.into_bytes()).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    assert_eq!(t.count_all("registry.customer").await, 0);
    t.cleanup().await;
}

#[tokio::test]
async fn deleting_a_referenced_record_is_a_conflict_and_audit_rows_follow_every_write() {
    let t = TestApp::new().await;
    let token = t.token(Uuid::new_v4(), &["admin"]);
    let c = customer(&t, &token, "Referenced").await;
    let r = t
        .post(
            &token,
            "/api/v1/objects/offer/records",
            &json!({"customer": c}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let del = t
        .send(
            Method::DELETE,
            &format!("/api/v1/objects/customer/records/{c}"),
            Some(&token),
            None,
            &[],
        )
        .await;
    assert_eq!(del.status, StatusCode::CONFLICT, "{}", del.body);
    assert_eq!(del.body["error"], "referenced");
    let missing = t
        .post(
            &token,
            "/api/v1/objects/offer/records",
            &json!({"customer": Uuid::new_v4()}),
        )
        .await;
    assert_eq!(
        missing.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        missing.body
    );
    assert_eq!(missing.body["details"][0]["field"], "customer");
    assert_eq!(missing.body["details"][0]["rule"], "reference");
    let audits: Vec<(String, String)> =
        sqlx::query_as("SELECT object, action FROM engine.audit_events ORDER BY occurred_at")
            .fetch_all(&t.app.db.admin)
            .await
            .expect("audit");
    assert_eq!(
        audits,
        vec![
            ("customer".into(), "created".into()),
            ("offer".into(), "created".into())
        ]
    );
    let types: Vec<String> =
        sqlx::query_scalar("SELECT event_type FROM engine.outbox ORDER BY created_at")
            .fetch_all(&t.app.db.admin)
            .await
            .expect("outbox");
    assert_eq!(
        types,
        vec!["registry.customer.created", "offers.offer.created"]
    );
    t.cleanup().await;
}

#[tokio::test]
async fn history_lists_every_change_newest_first_with_field_level_diffs() {
    let t = TestApp::new().await;
    let token = t.token(Uuid::new_v4(), &["admin"]);
    let other = t.token(Uuid::new_v4(), &["admin"]);
    let id = customer(&t, &token, "Historic").await;
    let path = format!("/api/v1/objects/customer/records/{id}");
    t.patch(&token, &path, &json!({"notes": "one"}), &[]).await;
    t.patch(
        &token,
        &path,
        &json!({"notes": "two", "addresses": [{"street": "S 1", "city": "Split"}]}),
        &[("x-correlation-id", "corr-7")],
    )
    .await;
    assert_eq!(
        t.send(Method::DELETE, &path, Some(&token), None, &[])
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let h = t.get(&token, &format!("{path}/history?limit=2")).await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.body);
    let actions: Vec<&str> = h.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["deleted", "updated"]);
    let upd = &h.body["data"][1];
    assert_eq!(
        upd["changes"]["notes"],
        json!({"before": "one", "after": "two"})
    );
    assert_eq!(upd["changes"]["addresses"]["after"][0]["city"], "Split");
    assert_eq!(upd["correlation_id"], "corr-7");
    assert_eq!(upd["record_version"], 3);
    let next = h.body["next_cursor"].as_str().expect("cursor");
    let h2 = t
        .get(&token, &format!("{path}/history?limit=2&cursor={next}"))
        .await;
    let actions: Vec<&str> = h2.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["updated", "created"], "{}", h2.body);
    assert_eq!(h2.body["has_more"], false);
    assert_eq!(
        t.get(&other, &format!("{path}/history")).await.body["data"],
        json!([])
    );
    t.cleanup().await;
}
