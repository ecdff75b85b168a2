//! The demo tenant: a company, products, customers and offers with lines, created
//! through the same write pipeline as the API (validated, priced, audited). Runs once:
//! a tenant that already has customers is left alone.

use crate::app::App;
use crate::auth::Principal;
use crate::db::tenant_tx;
use crate::http::create_in_tx;
use crate::records::WriteCtx;
use anyhow::Context;
use serde_json::{json, Value};
use uuid::Uuid;

/// The demo tenant's fixed id.
pub const DEMO_TENANT: Uuid = Uuid::from_u128(0x1111_1111_1111_4111_8111_1111_1111_1111);

pub async fn seed(app: &App) -> anyhow::Result<bool> {
    let meta = app.meta();
    let p = Principal {
        tenant: DEMO_TENANT,
        user: "demo-seed".into(),
        roles: vec!["admin".into()],
    };
    let wctx = WriteCtx {
        principal: &p,
        numbers: &app.numbers,
        request_id: "demo-seed".into(),
        correlation_id: "demo-seed".into(),
        metadata_version: meta.version,
    };
    let mut tx = tenant_tx(&app.db.app, DEMO_TENANT).await?;
    let customer = meta.catalog.get("customer").context("no customer object")?;
    let existing: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {}",
        crate::ddl::table(&customer.def)
    ))
    .fetch_one(&mut *tx)
    .await?;
    if existing > 0 {
        return Ok(false);
    }
    let mut create = async |object: &str, body: Value| -> anyhow::Result<String> {
        let obj = meta
            .catalog
            .get(object)
            .with_context(|| format!("no object {object}"))?;
        let rec = create_in_tx(&mut tx, &meta, obj, Uuid::now_v7(), &body, &wctx)
            .await
            .map_err(|e| anyhow::anyhow!("demo {object}: {} {:?}", e.message, e.details))?;
        Ok(rec
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string())
    };
    let company = create(
        "company",
        json!({"name": "Demo Trgovina d.o.o.", "tax_id": "12345678903", "vat_id": "HR12345678903", "city": "Zagreb",
               "street": "Ilica 242", "postal_code": "10000", "email": "office@demo.example", "website": "https://demo.example"}),
    )
    .await?;
    let products = [
        (
            "CONS-SR",
            "Consulting, senior",
            "service",
            "h",
            "95.00",
            "25",
        ),
        (
            "CONS-JR",
            "Consulting, junior",
            "service",
            "h",
            "55.00",
            "25",
        ),
        (
            "LIC-STD",
            "Software licence, standard",
            "goods",
            "pcs",
            "1200.00",
            "25",
        ),
        (
            "SUP-M",
            "Support, monthly",
            "service",
            "month",
            "349.90",
            "25",
        ),
        ("BOOK-1", "Handbook (print)", "goods", "pcs", "39.99", "5"),
    ];
    let mut product_ids = Vec::new();
    for (sku, name, kind, unit, price, tax) in products {
        let id = create("product", json!({"sku": sku, "name": name, "kind": kind, "unit": unit, "unit_price": price, "tax_rate": tax})).await?;
        product_ids.push((id, name, unit, price, tax));
    }
    let customers = [
        (
            "Acme Trading d.o.o.",
            "company",
            "98765432106",
            "billing@acme.example",
            "Zagreb",
        ),
        (
            "Jadran Logistika j.d.o.o.",
            "company",
            "11223344556",
            "racuni@jadran.example",
            "Split",
        ),
        (
            "Ana Horvat",
            "person",
            "55667788990",
            "ana.horvat@example.com",
            "Rijeka",
        ),
        (
            "Panonija Agro d.d.",
            "company",
            "44332211009",
            "finance@panonija.example",
            "Osijek",
        ),
        (
            "Istra Tours d.o.o.",
            "company",
            "66778899001",
            "office@istratours.example",
            "Pula",
        ),
    ];
    let mut customer_ids = Vec::new();
    for (i, (name, kind, tax_id, email, city)) in customers.iter().enumerate() {
        let mut body = json!({
            "name": name, "kind": kind, "tax_id": tax_id, "email": email, "payment_terms_days": 15 * (i as i64 % 3 + 1),
            "addresses": [{"kind": "billing", "street": format!("Glavna ulica {}", i + 1), "city": city, "postal_code": "10000", "is_default": true}],
            "bank_accounts": [{"iban": format!("HR12100100518630001{:02}", 60 + i), "bank_name": "Demo banka"}]
        });
        if *kind == "person" {
            body["first_name"] = json!("Ana");
            body["last_name"] = json!("Horvat");
        }
        customer_ids.push(create("customer", body).await?);
    }
    let statuses = ["draft", "sent", "accepted", "sent", "rejected", "draft"];
    for n in 0..24usize {
        let lines: Vec<Value> = (0..(n % 4 + 1))
            .map(|j| {
                let (pid, name, unit, price, tax) = &product_ids[(n + j) % product_ids.len()];
                json!({"product": pid, "description": name, "unit": unit, "unit_price": price, "tax_rate": tax,
                       "quantity": format!("{}", (j + 1) * (n % 3 + 1)), "discount_percent": if j == 0 { "0" } else { "5" }})
            })
            .collect();
        create(
            "offer",
            json!({"customer": customer_ids[n % customer_ids.len()], "company": company, "title": format!("Offer {} for project {}", n + 1, ["Alpha", "Beta", "Gamma", "Delta"][n % 4]),
                   "status": statuses[n % statuses.len()], "lines": lines}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}
