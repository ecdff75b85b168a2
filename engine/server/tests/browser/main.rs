//! The browser pages tested in a real browser: headless Chromium driven over WebDriver
//! against the engine on a fresh database. One journey a clerk makes, step by step,
//! plus every object's pages and the session's protections.
//!
//! Chromium and chromedriver come from Debian (`deploy/dev/browser.sh`); when missing,
//! the test fails and says so, it is never skipped.

mod harness;

use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use harness::*;
use serde_json::json;

async fn rows(c: &Client) -> usize {
    wait(c, ".data-table").await;
    c.find_all(Locator::Css(".data-table tbody tr a.row-link"))
        .await
        .expect("rows")
        .len()
}

async fn first_row(c: &Client) -> String {
    text(c, ".data-table tbody tr").await
}

async fn sign_in(c: &Client, s: &Server) {
    c.goto(&s.url("/app/o/offer")).await.expect("goto");
    // Not signed in: sent to the sign-in page, which comes back here afterwards.
    wait(c, "#username").await;
    fill(c, "#username", USER).await;
    fill(c, "#password", "wrong password").await;
    click_then(c, "form button[type=submit]", ".alert-error").await;
    let pw = wait(c, "#password").await;
    assert_eq!(
        pw.attr("aria-invalid").await.expect("attr").as_deref(),
        Some("true")
    );
    screenshot(c, "sign-in-error").await;
    fill(c, "#password", PASSWORD).await;
    click_then(c, "form button[type=submit]", ".data-table").await;
    assert!(c
        .current_url()
        .await
        .expect("url")
        .path()
        .ends_with("/app/o/offer"));
}

async fn create_customer(c: &Client, s: &Server) -> String {
    c.goto(&s.url("/app/o/customer/new")).await.expect("goto");
    fill(c, "#f-name", "Browser d.o.o.").await;
    fill(c, "#f-email", "office@browser.example").await;
    click_then(c, ".form-actions button[type=submit]", ".alert-success").await;
    let url = c.current_url().await.expect("url");
    assert!(url.path().starts_with("/app/o/customer/"), "{url}");
    assert!(text(c, "h1").await.starts_with("Browser d.o.o."));
    url.path().rsplit('/').next().expect("id").to_string()
}

/// Chooses the record titled like `query` in a reference's search box.
async fn choose_reference(c: &Client, input: &str, query: &str) {
    fill(c, input, query).await;
    let option = wait(c, &format!("{input}-list [role=option]")).await;
    assert!(option.text().await.expect("text").contains(query));
    screenshot(c, "reference-search").await;
    option.click().await.expect("choose");
}

async fn create_offer_with_two_lines(c: &Client, s: &Server) -> String {
    s.api_create(
        "product",
        json!({"sku": "CONS-H", "name": "Consulting hour", "unit": "h", "unit_price": "95.00"}),
    )
    .await;
    c.goto(&s.url("/app/o/offer/new")).await.expect("goto");
    choose_reference(c, "#f-customer", "Browser").await;
    fill(c, "#f-title", "Website relaunch").await;
    // A line's product chosen with the keyboard alone: type, arrow down, Enter.
    let product = wait(c, "#f-lines-0--product").await;
    product.send_keys("Consult").await.expect("type");
    wait(c, "#f-lines-0--product-list [role=option]").await;
    let keys = format!("{}{}", char::from(Key::Down), char::from(Key::Enter));
    product.send_keys(&keys).await.expect("keys");
    let chosen = wait(c, "input[name='lines[0].product']").await;
    assert!(!chosen
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default()
        .is_empty());
    assert_eq!(
        product.prop("value").await.expect("value").as_deref(),
        Some("Consulting hour")
    );
    // The product's unit and price fill the line's inputs of the same name.
    let price = wait(c, "#f-lines-0--unit_price").await;
    assert_eq!(
        price.prop("value").await.expect("value").as_deref(),
        Some("95.00")
    );
    let unit = wait(c, "#f-lines-0--unit").await;
    assert_eq!(
        unit.prop("value").await.expect("value").as_deref(),
        Some("h")
    );
    fill(c, "#f-lines-0--description", "Consulting").await;
    fill(c, "#f-lines-0--quantity", "12").await;
    wait(c, "#f-lines-0--unit")
        .await
        .select_by_value("h")
        .await
        .expect("unit");
    fill(c, "#f-lines-0--unit_price", "95.00").await;
    fill(c, "#f-lines-0--discount_percent", "10").await;
    click(c, "[data-add-line]").await;
    fill(c, "#f-lines-1--description", "Licence").await;
    fill(c, "#f-lines-1--quantity", "1").await;
    fill(c, "#f-lines-1--unit_price", "1200.00").await;
    // A third row added and removed again leaves nothing behind.
    click(c, "[data-add-line]").await;
    fill(c, "#f-lines-2--description", "Mistake").await;
    click(c, "#f-lines-2 [data-remove-line]").await;
    screenshot(c, "offer-new").await;
    click_then(c, ".form-actions button[type=submit]", ".alert-success").await;
    // Computed by the pricing plugin, shown with the offer's currency.
    assert_eq!(text(c, "#f-grand_total").await, "2,782.50 EUR");
    assert_eq!(text(c, "#f-net_total").await, "2,226.00 EUR");
    assert_eq!(text(c, "#f-lines-0--net_amount").await, "1,026.00");
    let product = wait(c, "#f-lines-0--product").await;
    assert_eq!(
        product.prop("value").await.expect("value").as_deref(),
        Some("Consulting hour")
    );
    let customer = wait(c, "#f-customer").await;
    assert_eq!(
        customer.prop("value").await.expect("value").as_deref(),
        Some("Browser d.o.o.")
    );
    assert_eq!(
        c.find_all(Locator::Css("tr[data-line-row]"))
            .await
            .expect("rows")
            .len(),
        2
    );
    c.set_window_size(1360, 1640).await.expect("resize");
    screenshot(c, "offer-form").await;
    // On a phone the page does not scroll sideways (the lines table scrolls by itself).
    c.set_window_size(400, 900).await.expect("resize");
    let fits = c
        .execute(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(fits, json!(true), "the form is wider than a narrow window");
    screenshot(c, "offer-form-narrow").await;
    c.set_window_size(1360, 900).await.expect("resize");
    let url = c.current_url().await.expect("url");
    url.path().rsplit('/').next().expect("id").to_string()
}

async fn bad_value_is_shown_by_its_field(c: &Client, s: &Server, offer: &str) {
    c.goto(&s.url(&format!("/app/o/offer/{offer}")))
        .await
        .expect("goto");
    fill(c, "#f-lines-1--quantity", "-1").await;
    fill(c, "#f-valid_until", "").await;
    click_then(c, ".form-actions button[type=submit]", "#error-summary").await;
    let input = wait(c, "#f-lines-1--quantity").await;
    assert_eq!(
        input.attr("aria-invalid").await.expect("attr").as_deref(),
        Some("true")
    );
    let described = input
        .attr("aria-describedby")
        .await
        .expect("attr")
        .unwrap_or_default();
    assert!(
        described.contains("f-lines-1--quantity-error"),
        "{described}"
    );
    let msg = text(c, "#f-lines-1--quantity-error").await;
    assert!(
        msg.contains("at least"),
        "the API's message by the field: {msg}"
    );
    assert!(text(c, "#error-summary")
        .await
        .contains("Lines, row 2: Quantity"));
    // The submitted value is kept for correcting.
    assert_eq!(
        input.prop("value").await.expect("value").as_deref(),
        Some("-1")
    );
    c.set_window_size(1360, 1200).await.expect("resize");
    screenshot(c, "offer-error").await;
    c.set_window_size(1360, 900).await.expect("resize");
    // Nothing was saved.
    c.goto(&s.url(&format!("/app/o/offer/{offer}")))
        .await
        .expect("goto");
    assert_eq!(text(c, "#f-grand_total").await, "2,782.50 EUR");
    assert!(text(c, ".page-head").await.contains("Version 1"));
}

async fn edit_and_save(c: &Client, s: &Server, offer: &str) {
    c.goto(&s.url(&format!("/app/o/offer/{offer}")))
        .await
        .expect("goto");
    fill(c, "#f-title", "Website relaunch, phase 2").await;
    fill(c, "#f-lines-1--quantity", "2").await;
    click_then(c, ".form-actions button[type=submit]", ".alert-success").await;
    assert_eq!(text(c, "#f-grand_total").await, "4,282.50 EUR");
    assert!(text(c, ".page-head").await.contains("Version 2"));
    let title = wait(c, "#f-title").await;
    assert_eq!(
        title.prop("value").await.expect("value").as_deref(),
        Some("Website relaunch, phase 2")
    );
    // The history shows every version, newest first.
    click_then(c, "a[href$='/history']", ".timeline").await;
    let events = c
        .find_all(Locator::Css(".timeline .event"))
        .await
        .expect("events");
    assert_eq!(events.len(), 2);
    assert!(text(c, ".timeline .event")
        .await
        .contains("Website relaunch, phase 2"));
    screenshot(c, "history").await;
}

async fn page_sort_and_filter_the_list(c: &Client, s: &Server) {
    for i in 1..=30 {
        s.api_create("customer", json!({"name": format!("Bulk customer {i:02}")}))
            .await;
    }
    c.goto(&s.url("/app/o/customer")).await.expect("goto");
    assert_eq!(rows(c).await, 25);
    assert!(first_row(c).await.contains("Browser d.o.o."));
    screenshot(c, "customer-list").await;
    click_then(c, "a[rel=next]", ".data-table").await;
    assert_eq!(rows(c).await, 6);
    assert!(first_row(c).await.contains("Bulk customer 25"));
    click_then(c, "a[rel=prev]", ".data-table").await;
    assert_eq!(rows(c).await, 25);
    // Search on the title field.
    fill(c, "#q", "Bulk customer 1").await;
    click_then(c, "form.search button", ".data-table").await;
    assert_eq!(rows(c).await, 10);
    // Sort by a column header (descending on the second click).
    let header = wait(c, "th a.sort-link[href*='sort=-name']").await;
    header.click().await.expect("sort");
    wait(c, "th[aria-sort=descending]").await;
    assert!(first_row(c).await.contains("Bulk customer 19"));
    // A filter from the filter form, shown as a chip that removes it.
    click(c, ".filter-add summary").await;
    wait(c, "#ff")
        .await
        .select_by_value("name")
        .await
        .expect("field");
    wait(c, "#fo")
        .await
        .select_by_value("contains")
        .await
        .expect("op");
    fill(c, "#fv", "5").await;
    click_then(c, ".filter-form button[type=submit]", ".chips").await;
    assert_eq!(rows(c).await, 1);
    assert!(first_row(c).await.contains("Bulk customer 15"));
    c.set_window_size(1360, 700).await.expect("resize");
    screenshot(c, "customer-list-filtered").await;
    c.set_window_size(1360, 900).await.expect("resize");
    click_then(c, ".chip a", ".data-table").await;
    assert_eq!(rows(c).await, 10);
    // A bad filter value is explained, not a crash.
    c.goto(&s.url("/app/o/customer?filter=payment_terms_days:gt:soon"))
        .await
        .expect("goto");
    assert!(text(c, ".alert-error").await.contains("filter"));
}

async fn add_custom_field_and_fill_it(c: &Client, s: &Server, offer: &str) {
    c.goto(&s.url("/app/admin/fields/offer"))
        .await
        .expect("goto");
    fill(c, "#cf-label", "PO number").await;
    wait(c, "#cf-type")
        .await
        .select_by_value("text")
        .await
        .expect("type");
    fill(c, "#cf-help", "The customer's purchase order number.").await;
    click_then(c, "form.stack button[type=submit]", ".alert-success").await;
    assert!(text(c, ".alert-success").await.contains("cf_po_number"));
    assert!(text(c, ".custom-row").await.contains("PO number"));
    screenshot(c, "admin-fields").await;
    // On the form at once, without a restart.
    c.goto(&s.url(&format!("/app/o/offer/{offer}")))
        .await
        .expect("goto");
    fill(c, "#f-cf_po_number", "PO-4711").await;
    click_then(c, ".form-actions button[type=submit]", ".alert-success").await;
    let po = wait(c, "#f-cf_po_number").await;
    assert_eq!(
        po.prop("value").await.expect("value").as_deref(),
        Some("PO-4711")
    );
    // And in the list.
    c.goto(&s.url("/app/o/offer")).await.expect("goto");
    assert!(
        text(c, ".data-table thead").await.contains("PO NUMBER")
            || text(c, ".data-table thead").await.contains("PO number")
    );
    assert!(text(c, ".data-table tbody").await.contains("PO-4711"));
    assert!(text(c, ".data-table tbody").await.contains("4,282.50 EUR"));
    screenshot(c, "offer-list").await;
    // A mistake in the admin form is shown by its field.
    c.goto(&s.url("/app/admin/fields/offer"))
        .await
        .expect("goto");
    wait(c, "#cf-type")
        .await
        .select_by_value("picklist")
        .await
        .expect("type");
    fill(c, "#cf-label", "Region").await;
    click_then(c, "form.stack button[type=submit]", "#cf-options-error").await;
}

/// The offer's lifecycle: the buttons are the transitions its current state allows, and
/// pressing one moves the record on (draft -> sent -> accepted).
async fn press_lifecycle_actions(c: &Client, s: &Server, offer: &str) {
    c.goto(&s.url(&format!("/app/o/offer/{offer}")))
        .await
        .expect("goto");
    assert!(text(c, "h1 .badge").await.contains("Draft"));
    assert_eq!(actions(c).await, vec!["send"]);
    click_then(c, "button[data-action=send]", ".alert-success").await;
    assert!(text(c, ".alert-success").await.contains("Send to customer"));
    assert!(text(c, "h1 .badge").await.contains("Sent"));
    assert_eq!(actions(c).await, vec!["accept", "reject", "expire"]);
    screenshot(c, "offer-sent").await;
    click_then(c, "button[data-action=accept]", ".alert-success").await;
    assert!(text(c, "h1 .badge").await.contains("Accepted"));
    assert!(actions(c).await.is_empty());
    // The state is not a field to edit: it changes through the actions only.
    assert!(c
        .find_all(Locator::Css("select[name=status]"))
        .await
        .expect("find")
        .is_empty());
}

async fn actions(c: &Client) -> Vec<String> {
    let mut names = Vec::new();
    for b in c
        .find_all(Locator::Css("button[data-action]"))
        .await
        .expect("actions")
    {
        names.push(
            b.attr("data-action")
                .await
                .expect("attr")
                .unwrap_or_default(),
        );
    }
    names
}

async fn every_object_has_its_pages(c: &Client, s: &Server) {
    c.goto(&s.url("/app")).await.expect("goto");
    let links = c
        .find_all(Locator::Css(".sidebar a[href^='/app/o/']"))
        .await
        .expect("nav");
    let mut objects = Vec::new();
    for l in links {
        objects.push(l.attr("href").await.expect("href").unwrap_or_default());
    }
    assert!(objects.len() >= 4, "{objects:?}");
    for href in objects {
        c.goto(&s.url(&href)).await.expect("goto");
        wait(c, ".data-table").await;
        let title = c.title().await.expect("title");
        assert!(
            !title.starts_with("Not found") && !title.starts_with("Something"),
            "{href}: {title}"
        );
        c.goto(&s.url(&format!("{href}/new"))).await.expect("goto");
        wait(c, "form.record-form .form-actions").await;
    }
}

/// An administrator adds a user who may only read; that user sees offers but no input,
/// no save button, no actions and no administration.
async fn a_reader_sees_but_cannot_change(c: &Client, s: &Server, offer: &str) {
    c.goto(&s.url("/app/admin/users")).await.expect("goto");
    fill(c, "#u-username", "vera").await;
    fill(c, "#u-display_name", "Vera Viewer").await;
    fill(c, "#u-password", "short").await;
    click(c, "input[name=roles][value=viewer]").await;
    click_then(c, "form.stack button[type=submit]", "#u-password-error").await;
    fill(c, "#u-password", "viewer-pass-1").await;
    click_then(c, "form.stack button[type=submit]", ".alert-success").await;
    assert!(text(c, ".data-table tbody").await.contains("Vera Viewer"));
    screenshot(c, "admin-users").await;
    click_then(c, ".topbar form button[type=submit]", "#username").await;
    fill(c, "#username", "vera").await;
    fill(c, "#password", "viewer-pass-1").await;
    click_then(c, "form button[type=submit]", ".cards").await;
    assert!(text(c, ".topbar").await.contains("Vera Viewer"));
    assert!(!text(c, ".sidebar").await.contains("Custom fields"));
    c.goto(&s.url(&format!("/app/o/offer/{offer}")))
        .await
        .expect("goto");
    wait(c, "#f-title").await;
    assert!(c
        .find_all(Locator::Css("input[name=title]"))
        .await
        .expect("find")
        .is_empty());
    assert!(c
        .find_all(Locator::Css(".form-actions"))
        .await
        .expect("find")
        .is_empty());
    assert!(c
        .find_all(Locator::Css("button[data-action]"))
        .await
        .expect("find")
        .is_empty());
    c.goto(&s.url("/app/admin/users")).await.expect("goto");
    assert!(text(c, "h1").await.contains("Not allowed"));
}

async fn journey(c: Client, server: std::sync::Arc<Server>) {
    let (c, server) = (&c, &*server);
    sign_in(c, server).await;
    create_customer(c, server).await;
    let offer = create_offer_with_two_lines(c, server).await;
    bad_value_is_shown_by_its_field(c, server, &offer).await;
    edit_and_save(c, server, &offer).await;
    page_sort_and_filter_the_list(c, server).await;
    add_custom_field_and_fill_it(c, server, &offer).await;
    press_lifecycle_actions(c, server, &offer).await;
    every_object_has_its_pages(c, server).await;
    a_reader_sees_but_cannot_change(c, server, &offer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clerk_works_through_the_forms_in_a_browser() {
    let driver = Driver::start().await;
    let server = std::sync::Arc::new(Server::start().await);
    let c = driver.browser().await;
    // The journey runs as its own task so that, pass or fail, the browser is closed
    // and the database dropped afterwards.
    let outcome = tokio::spawn(journey(c.clone(), server.clone())).await;
    let _ = c.close().await;
    if let Ok(server) = std::sync::Arc::try_unwrap(server) {
        server.stop().await;
    }
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A request through the router, as a browser would send it (no Chromium needed).
async fn send(
    s: &Server,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
    origin: Option<&str>,
) -> axum::response::Response {
    use tower::ServiceExt;
    let mut req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", s.base.trim_start_matches("http://"));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    if form.is_some() {
        req = req.header("content-type", "application/x-www-form-urlencoded");
    }
    let body = axum::body::Body::from(form.unwrap_or("").to_string());
    platform::http::router(s.app.clone())
        .oneshot(req.body(body).expect("request"))
        .await
        .expect("response")
}

async fn body_text(r: axum::response::Response) -> String {
    let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .expect("body");
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn the_session_is_an_httponly_cookie_and_posts_need_its_csrf_token() {
    let s = Server::start().await;
    let origin = s.base.clone();
    // Signed out: pages send to the sign-in page and back.
    let r = send(&s, "GET", "/app/o/offer?sort=number", None, None, None).await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/app/login?next=%2Fapp%2Fo%2Foffer%3Fsort%3Dnumber"
    );
    // A wrong password is refused; the right one sets the cookie.
    let form = format!("username={USER}&password=nope&next=%2Fapp");
    let r = send(&s, "POST", "/app/login", None, Some(&form), Some(&origin)).await;
    assert_eq!(r.status(), 401);
    let form = format!(
        "username={USER}&password={}&next=https%3A%2F%2Fevil.example",
        PASSWORD.replace(' ', "+")
    );
    let r = send(&s, "POST", "/app/login", None, Some(&form), Some(&origin)).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/app", "no open redirect");
    let set = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().expect("pair").to_string();
    // The page carries the CSRF token and a strict content policy.
    let r = send(&s, "GET", "/app/o/customer/new", Some(&cookie), None, None).await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let html = body_text(r).await;
    let csrf = html
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("csrf token")
        .to_string();
    // Without the token, or from another site, nothing is created.
    let r = send(
        &s,
        "POST",
        "/app/o/customer/new",
        Some(&cookie),
        Some("name=Forged"),
        Some(&origin),
    )
    .await;
    assert_eq!(r.status(), 403);
    let form = format!("_csrf={csrf}&name=Forged");
    let r = send(
        &s,
        "POST",
        "/app/o/customer/new",
        Some(&cookie),
        Some(&form),
        Some("http://evil.example"),
    )
    .await;
    assert_eq!(r.status(), 403);
    let form = format!("_csrf={csrf}&name=Real+customer");
    let r = send(
        &s,
        "POST",
        "/app/o/customer/new",
        Some(&cookie),
        Some(&form),
        Some(&origin),
    )
    .await;
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .expect("location")
        .contains("saved=created"));
    // A bad value comes back as the form with the error by its field, status 422.
    let form = format!("_csrf={csrf}&name=X&payment_terms_days=soon");
    let r = send(
        &s,
        "POST",
        "/app/o/customer/new",
        Some(&cookie),
        Some(&form),
        Some(&origin),
    )
    .await;
    assert_eq!(r.status(), 422);
    let html = body_text(r).await;
    assert!(
        html.contains("id=\"f-payment_terms_days-error\""),
        "error by the field"
    );
    assert!(html.contains("aria-invalid=\"true\""));
    // Assets: versioned links are cached for a year.
    let v = platform_web_renderer::assets::version();
    let r = send(
        &s,
        "GET",
        &format!("/app/assets/app.css?v={v}"),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["cache-control"]
        .to_str()
        .expect("cc")
        .contains("immutable"));
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/css"));
    s.stop().await;
}
