//! Lists: every filter operator, multi-field sort, keyset pagination, fields, expand.

use crate::harness::*;
use axum::http::StatusCode;
use serde_json::{json, Value};
use std::collections::HashSet;
use uuid::Uuid;

async fn names(t: &TestApp, token: &str, query: &str) -> Vec<String> {
    let r = t
        .get(
            token,
            &format!("/api/v1/objects/customer/records?limit=200&sort=name&{query}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
    r.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn every_filter_operator_and_sort_works() {
    let t = TestApp::new().await;
    let token = t.token(Uuid::new_v4(), &["admin"]);
    let rows = [
        json!({"name": "Alpha", "payment_terms_days": 10, "credit_limit": "100.00", "tags": ["retail"], "customer_since": "2020-01-01", "email": "alpha@x.example"}),
        json!({"name": "Beta", "payment_terms_days": 20, "credit_limit": "200.50", "tags": ["retail", "wholesale"], "customer_since": "2021-06-15"}),
        json!({"name": "Gamma", "payment_terms_days": 30, "credit_limit": "300.00", "tags": ["key_account"], "customer_since": "2022-12-31", "status": "blocked"}),
        json!({"name": "delta", "payment_terms_days": 30, "kind": "person", "last_name": "Delta"}),
    ];
    for r in &rows {
        let resp = t.post(&token, "/api/v1/objects/customer/records", r).await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
    }
    let cases: &[(&str, &[&str])] = &[
        ("filter=payment_terms_days:eq:30", &["Gamma", "delta"]),
        ("filter=status:ne:blocked", &["Alpha", "Beta", "delta"]),
        ("filter=credit_limit:ne:100", &["Beta", "Gamma", "delta"]),
        ("filter=payment_terms_days:lt:20", &["Alpha"]),
        ("filter=payment_terms_days:lte:20", &["Alpha", "Beta"]),
        ("filter=credit_limit:gt:200.5", &["Gamma"]),
        ("filter=credit_limit:gte:200.50", &["Beta", "Gamma"]),
        ("filter=name:in:Alpha,Gamma,Nobody", &["Alpha", "Gamma"]),
        ("filter=name:contains:ET", &["Beta"]),
        ("filter=name:starts_with:DEL", &["delta"]),
        ("filter=tags:contains:retail", &["Alpha", "Beta"]),
        ("filter=email:is_null:true", &["Beta", "Gamma", "delta"]),
        ("filter=email:is_null:false", &["Alpha"]),
        (
            "filter=customer_since:between:2021-01-01,2022-12-31",
            &["Beta", "Gamma"],
        ),
        (
            "filter=payment_terms_days:gte:20&filter=status:eq:active",
            &["Beta", "delta"],
        ),
        ("filter=name:contains:%25", &[]),
    ];
    for (q, expected) in cases {
        assert_eq!(names(&t, &token, q).await, *expected, "{q}");
    }
    // Multi-field sort: descending terms, then name; NULLs last in both directions.
    let r = t
        .get(
            &token,
            "/api/v1/objects/customer/records?sort=-payment_terms_days,name",
        )
        .await;
    let order: Vec<&str> = r.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(order, ["Gamma", "delta", "Beta", "Alpha"]);
    let r = t
        .get(
            &token,
            "/api/v1/objects/customer/records?sort=-credit_limit",
        )
        .await;
    let order: Vec<&str> = r.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(order, ["delta", "Gamma", "Beta", "Alpha"]);
    // Field selection.
    let r = t
        .get(
            &token,
            "/api/v1/objects/customer/records?fields=name&limit=1",
        )
        .await;
    let keys: HashSet<&str> = r.body["data"][0]
        .as_object()
        .expect("row")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, HashSet::from(["id", "name", "version"]));
    // Bad parameters are 400s that name the parameter.
    let by_id_desc = t
        .get(
            &token,
            "/api/v1/objects/customer/records?sort=-id&fields=name",
        )
        .await;
    let ids: Vec<&str> = by_id_desc.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(ids, sorted, "sort=-id sorts by id descending");
    for q in [
        "filter=tags:in:retail",
        "filter=tags:between:a,b",
        "filter=nope:eq:1",
        "filter=payment_terms_days:eq:abc",
        "filter=name:between:a",
        "sort=notes",
        "limit=0",
        "cursor=garbage",
        "fields=nope",
        "expand=name",
        "color=red",
    ] {
        let r = t
            .get(&token, &format!("/api/v1/objects/customer/records?{q}"))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.body);
        assert_eq!(r.body["error"], "invalid_query");
        assert!(r.body["details"][0]["field"].is_string());
    }
    t.cleanup().await;
}

#[tokio::test]
async fn pagination_neither_skips_nor_repeats_while_rows_are_inserted() {
    let t = TestApp::new().await;
    let token = t.token(Uuid::new_v4(), &["admin"]);
    let mut original = HashSet::new();
    for i in 0..23 {
        // Several rows share a value so the id tie-breaker matters; some have none.
        let body = if i % 5 == 0 {
            json!({"name": format!("C{i:02}")})
        } else {
            json!({"name": format!("C{i:02}"), "credit_limit": format!("{}.00", i % 4)})
        };
        let r = t
            .post(&token, "/api/v1/objects/customer/records", &body)
            .await;
        original.insert(r.body["id"].as_str().expect("id").to_string());
    }
    for sort in [
        "-credit_limit",
        "credit_limit,-name",
        "created_at",
        "-created_at",
    ] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut page = 0;
        loop {
            let mut q = format!("/api/v1/objects/customer/records?limit=4&sort={sort}");
            if let Some(c) = &cursor {
                q.push_str(&format!("&cursor={c}"));
            }
            let r = t.get(&token, &q).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            for row in r.body["data"].as_array().expect("data") {
                seen.push(row["id"].as_str().expect("id").to_string());
            }
            // Insert between pages, with values that sort before and after the cursor.
            let extra = json!({"name": format!("New {sort} {page}"), "credit_limit": format!("{}.50", page % 4)});
            assert_eq!(
                t.post(&token, "/api/v1/objects/customer/records", &extra)
                    .await
                    .status,
                StatusCode::CREATED
            );
            page += 1;
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
            assert!(page < 100, "pagination does not end");
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{sort}: a row was repeated");
        for id in &original {
            assert!(unique.contains(id), "{sort}: row {id} was skipped");
        }
    }
    // A cursor is bound to its sort.
    let r = t
        .get(&token, "/api/v1/objects/customer/records?limit=2&sort=name")
        .await;
    let c = r.body["next_cursor"].as_str().expect("cursor");
    let r = t
        .get(
            &token,
            &format!("/api/v1/objects/customer/records?limit=2&sort=-name&cursor={c}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    t.cleanup().await;
}

#[tokio::test]
async fn expand_embeds_references_and_lines() {
    let t = TestApp::new().await;
    let token = t.token(Uuid::new_v4(), &["admin"]);
    let c = customer(&t, &token, "Expanded").await;
    let r = t
        .post(
            &token,
            "/api/v1/objects/offer/records",
            &json!({"customer": c, "lines": [{"description": "x", "unit_price": "5"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let list = t
        .get(
            &token,
            "/api/v1/objects/offer/records?expand=customer,lines",
        )
        .await;
    assert_eq!(list.body["data"][0]["customer"]["name"], "Expanded");
    assert_eq!(list.body["data"][0]["lines"][0]["net_amount"], "5.00");
    let plain = t.get(&token, "/api/v1/objects/offer/records").await;
    assert_eq!(plain.body["data"][0]["customer"], json!(c));
    assert_eq!(plain.body["data"][0].get("lines"), None::<&Value>);
    // A page sorted on a reference and expanding it still continues.
    t.post(
        &token,
        "/api/v1/objects/offer/records",
        &json!({"customer": c}),
    )
    .await;
    let page = t
        .get(
            &token,
            "/api/v1/objects/offer/records?sort=customer&expand=customer&limit=1",
        )
        .await;
    let next = page.body["next_cursor"].as_str().expect("cursor");
    let page2 = t
        .get(
            &token,
            &format!(
                "/api/v1/objects/offer/records?sort=customer&expand=customer&limit=1&cursor={next}"
            ),
        )
        .await;
    assert_eq!(page2.status, StatusCode::OK, "{}", page2.body);
    assert_eq!(page2.body["data"][0]["customer"]["name"], "Expanded");
    let id = r.body["id"].as_str().expect("id");
    let one = t
        .get(
            &token,
            &format!("/api/v1/objects/offer/records/{id}?expand=customer"),
        )
        .await;
    assert_eq!(one.body["customer"]["id"], json!(c));
    assert_eq!(one.body["lines"].as_array().map(Vec::len), Some(1));
    t.cleanup().await;
}
