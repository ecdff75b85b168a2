//! Every shipped object's form and list render from its schemas alone: each field has a
//! labelled control with the widget its type asks for, validation issues land by their
//! fields, and the HTML is balanced. A new object in `metadata/objects/` is checked
//! here without a line of test code, so its pages cannot silently break.

use platform_metadata::validate::{prepare, WriteMode};
use platform_metadata::{form, Catalog};
use platform_web_renderer::view::NavItem;
use platform_web_renderer::{Chrome, FieldError, FormOptions, ListState, Renderer};
use serde_json::{json, Value};
use std::path::Path;

fn catalog() -> Catalog {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata");
    let sources = platform_metadata::check::read_dir(&dir).expect("metadata readable");
    let mut plugins = platform_plugin_api::Registry::new();
    plugins.register(platform_plugin_pricing::Pricing);
    Catalog::from_sources(&sources, plugins).expect("shipped metadata is valid")
}

fn chrome(cat: &Catalog) -> Chrome {
    Chrome {
        user: "Demo Clerk".into(),
        username: "demo".into(),
        csrf: "token123".into(),
        nav: cat
            .objects()
            .filter(|o| !o.def.child)
            .map(|o| NavItem {
                object: o.name().to_string(),
                label: o.plural_label(),
                description: o.def.description.clone(),
            })
            .collect(),
        current: None,
        can_admin: true,
    }
}

/// Opening and closing tags of the elements templates nest.
fn assert_balanced(html: &str, what: &str) {
    for tag in [
        "div", "table", "form", "section", "select", "tr", "td", "ul", "fieldset", "template",
    ] {
        let open =
            html.matches(&format!("<{tag}>")).count() + html.matches(&format!("<{tag} ")).count();
        let close = html.matches(&format!("</{tag}>")).count();
        assert_eq!(
            open, close,
            "{what}: <{tag}> opened {open} times, closed {close} times"
        );
    }
}

/// Keeps the page in the temporary folder, to look at when an assertion fails.
fn dump(what: &str, html: &mut String) {
    *html = html.replace("&#x2f;", "/");
    let _ = std::fs::write(
        std::env::temp_dir().join(format!("platform-render-{what}.html")),
        html,
    );
}

fn dom_id(path: &str) -> String {
    let mut id = String::from("f-");
    for c in path.chars() {
        id.push(if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '-'
        });
    }
    id.trim_end_matches('-').to_string()
}

/// Every input path the form should show for `rec`, with whether it is editable.
fn expected_paths(schema: &Value, rec: &Value) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for sec in schema["sections"].as_array().expect("sections") {
        for name in sec["fields"].as_array().expect("fields") {
            let name = name.as_str().expect("name");
            let fs = &schema["fields"][name];
            let ro = fs["read_only"].as_bool().unwrap_or(false) && fs["type"] != "children";
            if fs["type"] == "children" {
                let cols = fs["lines"]["columns"].as_array().expect("columns");
                let n = rec[name].as_array().map(Vec::len).unwrap_or(0);
                for i in 0..n {
                    for c in cols {
                        let c = c.as_str().expect("column");
                        let cfs = &fs["lines"]["fields"][c];
                        out.push((
                            format!("{name}[{i}].{c}"),
                            !cfs["read_only"].as_bool().unwrap_or(false),
                        ));
                    }
                }
            } else if !(ro && rec.get(name).is_none_or(Value::is_null)) {
                out.push((name.to_string(), !ro));
            }
        }
    }
    out
}

#[test]
fn every_shipped_object_renders_its_form_and_list() {
    let cat = catalog();
    let r = Renderer::new();
    let roles = vec!["admin".to_string()];
    let known: Vec<&str> = platform_web_renderer::widgets().collect();
    let mut checked = 0;
    for obj in cat.objects().filter(|o| !o.def.child) {
        let name = obj.name();
        let fs = form::form_schema(&cat, obj, &roles);
        let ls = form::list_schema(&cat, obj, &roles);
        for (f, def) in fs["fields"].as_object().expect("fields") {
            let w = def["widget"].as_str().expect("widget");
            assert!(
                known.contains(&w),
                "{name}.{f}: widget `{w}` has no template"
            );
            for (c, cdef) in def["lines"]["fields"].as_object().into_iter().flatten() {
                let w = cdef["widget"].as_str().expect("widget");
                assert!(
                    known.contains(&w),
                    "{name}.{f}.{c}: widget `{w}` has no template"
                );
            }
        }
        let mut ch = chrome(&cat);
        ch.current = Some(name.to_string());

        // A new record.
        let mut html = r
            .form_page(&ch, &fs, &json!({}), &FormOptions::default())
            .unwrap_or_else(|e| panic!("{name}: new form: {e}"));
        dump(&format!("{name}-new"), &mut html);
        assert_balanced(&html, &format!("{name} new form"));
        assert!(
            html.contains(&format!("action=\"/app/o/{name}/new\"")),
            "{name}: new form posts to /new"
        );
        assert!(
            html.contains("name=\"_csrf\" value=\"token123\""),
            "{name}: form carries the CSRF token"
        );

        // An existing record: the create example through the write pipeline, so computed
        // values (line amounts, totals) are there as after a save.
        let mut example = platform_metadata::example::create_example(&cat, obj);
        example.as_object_mut().expect("object").remove("id");
        let mut rec = prepare(&cat, obj, &example, WriteMode::Create, None)
            .unwrap_or_else(|e| panic!("{name}: example does not prepare: {e:?}"));
        rec.insert("id".into(), json!("0190a0b0-0000-7000-8000-000000000001"));
        rec.insert("version".into(), json!(3));
        let rec = Value::Object(rec);
        let paths = expected_paths(&fs, &rec);
        let errors: Vec<FieldError> = paths
            .iter()
            .filter(|(_, editable)| *editable)
            .map(|(p, _)| FieldError {
                field: p.clone(),
                message: format!("problem with {p}"),
            })
            .collect();
        let opts = FormOptions {
            id: Some("0190a0b0-0000-7000-8000-000000000001".into()),
            errors: errors.clone(),
            ..Default::default()
        };
        let mut html = r
            .form_page(&ch, &fs, &rec, &opts)
            .unwrap_or_else(|e| panic!("{name}: edit form: {e}"));
        dump(&format!("{name}-edit"), &mut html);
        assert_balanced(&html, &format!("{name} edit form"));
        for (path, editable) in &paths {
            let id = dom_id(path);
            assert!(
                html.contains(&format!("id=\"{id}\"")),
                "{name}: no element for `{path}`"
            );
            if *editable {
                let wrapped = html.contains(&format!("<label for=\"{id}\""))
                    || html.contains(&format!("id=\"{id}\" aria-describedby"))
                    || html.contains("<legend>");
                assert!(wrapped, "{name}: `{path}` has no label");
                assert!(
                    html.contains(&format!("id=\"{id}-error\"")),
                    "{name}: the issue of `{path}` is not shown by its field"
                );
                assert!(
                    html.contains(&format!("problem with {path}")),
                    "{name}: `{path}` message missing"
                );
            }
        }
        assert!(
            html.contains("aria-invalid=\"true\""),
            "{name}: invalid fields are marked"
        );
        assert!(
            html.contains("Nothing was saved"),
            "{name}: the error summary is shown"
        );
        checked += 1;

        // The list with that record.
        let state = ListState {
            base: format!("/app/o/{name}"),
            ..Default::default()
        };
        let mut html = r
            .list_page(&ch, &ls, std::slice::from_ref(&rec), &state)
            .unwrap_or_else(|e| panic!("{name}: list: {e}"));
        dump(&format!("{name}-list"), &mut html);
        assert_balanced(&html, &format!("{name} list"));
        for c in ls["columns"].as_array().expect("columns") {
            let label = ls["fields"][c.as_str().expect("column")]["label"]
                .as_str()
                .expect("label");
            assert!(
                html.contains(label),
                "{name}: list column `{label}` missing"
            );
        }
        assert!(
            html.contains(&format!(
                "href=\"/app/o/{name}/0190a0b0-0000-7000-8000-000000000001\""
            )),
            "{name}: list rows link to their record"
        );
    }
    assert!(checked >= 4, "only {checked} objects were checked");
}

#[test]
fn offer_form_shows_money_with_its_currency_and_computed_totals() {
    let cat = catalog();
    let obj = cat.get("offer").expect("offer");
    let fs = form::form_schema(&cat, obj, &["admin".to_string()]);
    let body = json!({"customer": "0190a0b0-0000-7000-8000-0000000000aa", "currency": "EUR", "lines": [
        {"description": "Consulting", "quantity": "12", "unit_price": "95.00", "discount_percent": "10"},
        {"description": "Licence", "quantity": "1", "unit_price": "1200.00"}]});
    let mut rec = prepare(&cat, obj, &body, WriteMode::Create, None).expect("valid offer");
    rec.insert("id".into(), json!("0190a0b0-0000-7000-8000-000000000002"));
    rec.insert("version".into(), json!(1));
    let mut titles = serde_json::Map::new();
    titles.insert("customer".into(), json!("Acme d.o.o."));
    let mut html = Renderer::new()
        .form_page(
            &chrome(&cat),
            &fs,
            &Value::Object(rec),
            &FormOptions {
                id: Some("0190a0b0-0000-7000-8000-000000000002".into()),
                titles,
                ..Default::default()
            },
        )
        .expect("renders");
    dump("offer-priced", &mut html);
    assert!(
        html.contains("2,782.50 EUR"),
        "grand total with its currency"
    );
    assert!(html.contains("1,026.00"), "line net amount");
    assert!(
        html.contains("value=\"Acme d.o.o.\""),
        "the customer's title in its search box"
    );
    assert!(
        html.contains("name=\"lines[1].description\""),
        "the second line is editable"
    );
    assert!(html.contains("data-add-line"), "lines can be added");
}

#[test]
fn lifecycle_actions_follow_the_current_state() {
    let cat = catalog();
    let obj = cat.get("offer").expect("offer");
    let mut fs = form::form_schema(&cat, obj, &["admin".to_string()]);
    fs["lifecycle"] = json!({"field": "status", "transitions": [
        {"name": "send", "label": "Send", "from": ["draft"], "to": "sent"},
        {"name": "accept", "label": "Accept", "from": ["sent"], "to": "accepted"}]});
    let rec = json!({"id": "x", "version": 1, "status": "draft", "number": "OF-1"});
    let opts = FormOptions {
        id: Some("x".into()),
        ..Default::default()
    };
    let mut html = Renderer::new()
        .form_page(&chrome(&cat), &fs, &rec, &opts)
        .expect("renders");
    dump("offer-lifecycle", &mut html);
    assert!(html.contains("/app/o/offer/x/transitions/send"));
    assert!(!html.contains("/transitions/accept"));
    fs.as_object_mut().expect("object").remove("lifecycle");
    let mut html = Renderer::new()
        .form_page(&chrome(&cat), &fs, &rec, &opts)
        .expect("renders");
    dump("offer-no-lifecycle", &mut html);
    assert!(!html.contains("/transitions/"), "no lifecycle, no actions");
}

#[test]
fn a_caller_who_may_not_update_sees_values_not_inputs() {
    let cat = catalog();
    let obj = cat.get("offer").expect("offer");
    let fs = form::form_schema(&cat, obj, &["viewer".to_string()]);
    assert_eq!(
        fs["permissions"]["update"],
        json!(false),
        "viewers only read offers"
    );
    let mut example = platform_metadata::example::create_example(&cat, obj);
    example.as_object_mut().expect("object").remove("id");
    let mut rec = prepare(&cat, obj, &example, WriteMode::Create, None).expect("valid");
    rec.insert("id".into(), json!("x"));
    rec.insert("version".into(), json!(1));
    let opts = FormOptions {
        id: Some("x".into()),
        ..Default::default()
    };
    let mut html = Renderer::new()
        .form_page(&chrome(&cat), &fs, &Value::Object(rec), &opts)
        .expect("renders");
    dump("offer-viewer", &mut html);
    assert_balanced(&html, "offer for a viewer");
    for name in ["title", "customer", "lines[0].quantity"] {
        assert!(
            !html.contains(&format!("name=\"{name}\"")),
            "`{name}` is editable for a viewer"
        );
    }
    assert!(!html.contains("data-add-line") && !html.contains("data-remove-line"));
    assert!(!html.contains(">Save<"), "no save button");
}

#[test]
fn the_users_page_lists_users_and_shows_errors_by_their_fields() {
    let cat = catalog();
    let users = vec![
        json!({"username": "demo", "display_name": "Demo Clerk", "roles": ["admin"], "last_login": null}),
    ];
    let roles = vec!["admin".to_string(), "viewer".to_string()];
    let errors = vec![FieldError {
        field: "password".into(),
        message: "Use at least 8 characters.".into(),
    }];
    let mut html = Renderer::new()
        .admin_users_page(
            &chrome(&cat),
            &users,
            &roles,
            &json!({"username": "vera", "roles": ["viewer"]}),
            &errors,
            None,
        )
        .unwrap_or_else(|e| panic!("users page: {e}"));
    dump("admin-users", &mut html);
    assert_balanced(&html, "users page");
    assert!(html.contains("Demo Clerk") && html.contains("id=\"u-password-error\""));
    assert!(html.contains("value=\"viewer\" checked"));
}
