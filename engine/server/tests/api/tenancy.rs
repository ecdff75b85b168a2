//! Tenant isolation: by id, in lists, in references, and in the database itself.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn another_tenant_cannot_see_change_or_delete_a_record() {
    let t = TestApp::new().await;
    let (ta, tb) = (Uuid::new_v4(), Uuid::new_v4());
    let a = t.token(ta, &["admin"]);
    let b = t.token(tb, &["admin"]);
    let id = customer(&t, &a, "A's customer").await;
    customer(&t, &b, "B's customer").await;
    let path = format!("/api/v1/objects/customer/records/{id}");
    assert_eq!(t.get(&b, &path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        t.patch(&b, &path, &json!({"name": "stolen"}), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.send(
            Method::PUT,
            &path,
            Some(&b),
            Some(&json!({"name": "stolen"})),
            &[]
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.send(Method::DELETE, &path, Some(&b), None, &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let still = t.get(&a, &path).await;
    assert_eq!(still.body["name"], "A's customer");
    assert_eq!(still.body["version"], 1);
    let list_a = t.get(&a, "/api/v1/objects/customer/records").await;
    let names: Vec<&str> = list_a.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["A's customer"]);
    // B cannot reference A's customer even knowing its id.
    let r = t
        .post(
            &b,
            "/api/v1/objects/offer/records",
            &json!({"customer": id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    // Ids are per tenant: B choosing A's id makes B's own record and reveals nothing.
    let r = t
        .post(
            &b,
            "/api/v1/objects/customer/records",
            &json!({"id": id, "name": "B's own"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(t.get(&a, &path).await.body["name"], "A's customer");
    assert_eq!(t.get(&b, &path).await.body["name"], "B's own");
    let again = t
        .post(
            &b,
            "/api/v1/objects/customer/records",
            &json!({"id": id, "name": "twice"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(
        t.send(Method::DELETE, &path, Some(&b), None, &[])
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.get(&a, &path).await.status,
        StatusCode::OK,
        "B deleting its own id leaves A's record"
    );
    // A new tenant just works, starting empty.
    let c = t.token(Uuid::new_v4(), &["viewer"]);
    let empty = t.get(&c, "/api/v1/objects/customer/records").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.body["data"], json!([]));
    t.cleanup().await;
}

#[tokio::test]
async fn row_level_security_holds_for_the_runtime_role_even_from_a_superuser_url() {
    let t = TestApp::new().await;
    let (ta, tb) = (Uuid::new_v4(), Uuid::new_v4());
    customer(&t, &t.token(ta, &["admin"]), "A").await;
    customer(&t, &t.token(tb, &["admin"]), "B").await;
    // The test's DATABASE_URL names the superuser `postgres`; the app pool still runs as
    // platform_app, and without a WHERE clause only the transaction's tenant shows.
    let mut tx = platform::db::tenant_tx(&t.app.db.app, ta)
        .await
        .expect("tx");
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *tx)
        .await
        .expect("role");
    assert_eq!(role, "platform_app");
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM registry.customer")
        .fetch_all(&mut *tx)
        .await
        .expect("select");
    assert_eq!(names, ["A"]);
    let updated = sqlx::query("UPDATE registry.customer SET name = 'hacked'")
        .execute(&mut *tx)
        .await
        .expect("update")
        .rows_affected();
    assert_eq!(updated, 1, "only the tenant's own row");
    let insert = sqlx::query("INSERT INTO registry.customer (id, tenant_id, created_by, updated_by, kind, name, status, currency) VALUES ($1, $2, 'x', 'x', 'company', 'evil', 'active', 'EUR')")
        .bind(Uuid::new_v4())
        .bind(tb)
        .execute(&mut *tx)
        .await;
    assert!(
        insert.is_err(),
        "writing into another tenant is refused by the policy"
    );
    drop(tx);
    let audit_delete = {
        let mut tx = platform::db::tenant_tx(&t.app.db.app, ta)
            .await
            .expect("tx");
        sqlx::query("DELETE FROM engine.audit_events")
            .execute(&mut *tx)
            .await
    };
    assert!(
        audit_delete.is_err(),
        "the runtime role cannot delete audit events"
    );
    // No tenant set: nothing at all.
    let mut conn = t.app.db.app.acquire().await.expect("conn");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM registry.customer")
        .fetch_one(&mut *conn)
        .await
        .expect("count");
    assert_eq!(n, 0);
    drop(conn);
    assert_eq!(t.count_all("registry.customer").await, 2);
    t.cleanup().await;
}

#[tokio::test]
async fn a_non_superuser_database_owner_runs_the_engine_and_its_checks_see_every_row() {
    // platform_app exists once any engine has started on this cluster.
    let first = TestApp::new().await;
    let role = format!("owner_{}", Uuid::new_v4().simple());
    let admin = &first.app.db.admin;
    sqlx::query(&format!(
        "CREATE ROLE {role} LOGIN CREATEDB NOCREATEROLE NOSUPERUSER NOBYPASSRLS"
    ))
    .execute(admin)
    .await
    .expect("role");
    sqlx::query(&format!("GRANT platform_app TO {role}"))
        .execute(admin)
        .await
        .expect("grant");
    let url = server_url().replace("postgres@", &format!("{role}@"));
    let result = TestApp::start_as(&shipped_metadata(), None, &url).await;
    let t = match result {
        Ok(t) => t,
        Err(e) => {
            let _ = sqlx::query(&format!("DROP ROLE {role}"))
                .execute(admin)
                .await;
            panic!("a non-superuser owner could not start the engine: {e:#}");
        }
    };
    let token = t.token(Uuid::new_v4(), &["admin"]);
    customer(&t, &token, "Same").await;
    customer(&t, &token, "Same").await;
    // The owner's check of existing rows sees them (RLS is not forced on the owner).
    let r = t
        .send(
            Method::PATCH,
            "/api/v1/metadata/objects/customer/fields/name",
            Some(&token),
            Some(&json!({"unique": true})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["error"], "unsafe_change");
    let db = t.db_name.clone();
    t.app.db.app.close().await;
    t.app.db.admin.close().await;
    drop_database(&db).await;
    sqlx::query(&format!("DROP ROLE {role}"))
        .execute(admin)
        .await
        .expect("drop role");
    first.cleanup().await;
}
