//! HTML pages rendered from the engine's form and list schemas (the JSON of
//! `GET /api/v1/objects/{object}/form-schema` and `/list-schema`) plus record data.
//!
//! Nothing here knows a particular object: there is one template per kind of page
//! (`templates/pages/`) and one per field widget (`templates/widgets/`, named after the
//! schema's `widget` key), all embedded at compile time. The crate has no HTTP or
//! database code; the engine's `web` module fetches schemas and records through its own
//! API handlers and hands them here, so another front end could use the same JSON.
//!
//! - [`view`] turns schemas and records into view models (field by field: input name,
//!   id, value, display text, options, errors) that the templates only lay out.
//! - [`input`] turns a submitted HTML form back into the JSON body the REST API takes.
//! - [`assets`] are the stylesheet and script, served by the engine with a content hash.

pub mod assets;
pub mod input;
pub mod url;
pub mod view;

use minijinja::{Environment, Value as JValue};
use serde_json::Value;

pub use input::{form_to_json, FormInput};
pub use view::{Chrome, FieldError, FormOptions, ListState};

/// Every template, by name. Widgets are looked up by the schema's `widget` key.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html")),
    (
        "pages/login.html",
        include_str!("../templates/pages/login.html"),
    ),
    (
        "pages/home.html",
        include_str!("../templates/pages/home.html"),
    ),
    (
        "pages/list.html",
        include_str!("../templates/pages/list.html"),
    ),
    (
        "pages/form.html",
        include_str!("../templates/pages/form.html"),
    ),
    (
        "pages/history.html",
        include_str!("../templates/pages/history.html"),
    ),
    (
        "pages/admin_fields.html",
        include_str!("../templates/pages/admin_fields.html"),
    ),
    (
        "pages/admin_users.html",
        include_str!("../templates/pages/admin_users.html"),
    ),
    (
        "pages/error.html",
        include_str!("../templates/pages/error.html"),
    ),
    (
        "widgets/_parts.html",
        include_str!("../templates/widgets/_parts.html"),
    ),
    (
        "widgets/_line_row.html",
        include_str!("../templates/widgets/_line_row.html"),
    ),
    (
        "widgets/text.html",
        include_str!("../templates/widgets/text.html"),
    ),
    (
        "widgets/textarea.html",
        include_str!("../templates/widgets/textarea.html"),
    ),
    (
        "widgets/integer.html",
        include_str!("../templates/widgets/integer.html"),
    ),
    (
        "widgets/decimal.html",
        include_str!("../templates/widgets/decimal.html"),
    ),
    (
        "widgets/money.html",
        include_str!("../templates/widgets/money.html"),
    ),
    (
        "widgets/checkbox.html",
        include_str!("../templates/widgets/checkbox.html"),
    ),
    (
        "widgets/date.html",
        include_str!("../templates/widgets/date.html"),
    ),
    (
        "widgets/datetime.html",
        include_str!("../templates/widgets/datetime.html"),
    ),
    (
        "widgets/email.html",
        include_str!("../templates/widgets/email.html"),
    ),
    (
        "widgets/tel.html",
        include_str!("../templates/widgets/tel.html"),
    ),
    (
        "widgets/url.html",
        include_str!("../templates/widgets/url.html"),
    ),
    (
        "widgets/select.html",
        include_str!("../templates/widgets/select.html"),
    ),
    (
        "widgets/multiselect.html",
        include_str!("../templates/widgets/multiselect.html"),
    ),
    (
        "widgets/lookup.html",
        include_str!("../templates/widgets/lookup.html"),
    ),
    (
        "widgets/lines.html",
        include_str!("../templates/widgets/lines.html"),
    ),
    (
        "widgets/readonly.html",
        include_str!("../templates/widgets/readonly.html"),
    ),
    (
        "widgets/json.html",
        include_str!("../templates/widgets/json.html"),
    ),
];

/// Widget keys that have a template; a schema naming another one is rendered with
/// `text` (and [`Renderer::widgets`] lets a test notice).
pub fn widgets() -> impl Iterator<Item = &'static str> {
    TEMPLATES.iter().filter_map(|(n, _)| {
        n.strip_prefix("widgets/")
            .and_then(|w| w.strip_suffix(".html"))
            .filter(|w| !w.starts_with('_'))
    })
}

/// A rendering failure: a template bug, never a user's mistake.
#[derive(Debug)]
pub struct RenderError(pub String);

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RenderError {}

impl From<minijinja::Error> for RenderError {
    fn from(e: minijinja::Error) -> Self {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        RenderError(msg)
    }
}

/// The template environment; build once and share.
pub struct Renderer {
    env: Environment<'static>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Renderer")
    }
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

impl Renderer {
    pub fn new() -> Renderer {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            // The sources are part of this crate; a syntax error fails every test.
            if let Err(e) = env.add_template(name, source) {
                panic!("template {name} does not parse: {e}");
            }
        }
        env.add_global("asset_version", JValue::from(assets::version()));
        Renderer { env }
    }

    /// Renders `template` with `ctx` (a JSON object).
    pub fn render(&self, template: &str, ctx: &Value) -> Result<String, RenderError> {
        let t = self.env.get_template(template)?;
        Ok(t.render(JValue::from_serialize(ctx))?)
    }

    /// The sign-in page.
    pub fn login_page(
        &self,
        next: &str,
        username: &str,
        error: Option<&str>,
    ) -> Result<String, RenderError> {
        self.render(
            "pages/login.html",
            &serde_json::json!({"title": "Sign in", "next": next, "username": username, "error": error}),
        )
    }

    /// The start page: every object the caller may read.
    pub fn home_page(&self, chrome: &Chrome) -> Result<String, RenderError> {
        self.render(
            "pages/home.html",
            &serde_json::json!({"chrome": chrome, "title": "Home"}),
        )
    }

    /// An error page (404, 403, ...).
    pub fn error_page(
        &self,
        chrome: Option<&Chrome>,
        status: u16,
        title: &str,
        message: &str,
    ) -> Result<String, RenderError> {
        self.render(
            "pages/error.html",
            &serde_json::json!({"chrome": chrome, "status": status, "title": title, "message": message}),
        )
    }

    /// A list page from a list schema and one page of records.
    pub fn list_page(
        &self,
        chrome: &Chrome,
        schema: &Value,
        records: &[Value],
        state: &ListState,
    ) -> Result<String, RenderError> {
        let ctx = view::list_context(chrome, schema, records, state);
        self.render("pages/list.html", &ctx)
    }

    /// A record form (new or existing) from a form schema and the record's values.
    pub fn form_page(
        &self,
        chrome: &Chrome,
        schema: &Value,
        record: &Value,
        opts: &FormOptions,
    ) -> Result<String, RenderError> {
        let ctx = view::form_context(chrome, schema, record, opts);
        self.render("pages/form.html", &ctx)
    }

    /// A record's history from its audit events (the API's history JSON).
    pub fn history_page(
        &self,
        chrome: &Chrome,
        schema: &Value,
        record: &Value,
        history: &Value,
    ) -> Result<String, RenderError> {
        let ctx = view::history_context(chrome, schema, record, history);
        self.render("pages/history.html", &ctx)
    }

    /// The users of the caller's tenant and a form to add one. `users` are
    /// `{username, display_name, roles, last_login}`; `roles` the roles to offer.
    pub fn admin_users_page(
        &self,
        chrome: &Chrome,
        users: &[serde_json::Value],
        roles: &[String],
        submitted: &serde_json::Value,
        errors: &[FieldError],
        flash: Option<&str>,
    ) -> Result<String, RenderError> {
        let chosen: Vec<&str> = submitted["roles"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r.as_str()).collect())
            .unwrap_or_default();
        let roles: Vec<serde_json::Value> = roles
            .iter()
            .map(|r| serde_json::json!({"name": r, "checked": chosen.contains(&r.as_str())}))
            .collect();
        let err = |k: &str| -> Vec<&str> {
            errors
                .iter()
                .filter(|e| e.field == k)
                .map(|e| e.message.as_str())
                .collect()
        };
        self.render(
            "pages/admin_users.html",
            &serde_json::json!({
                "chrome": chrome, "title": "Users", "admin_page": "users", "users": users, "roles": roles, "form": submitted,
                "errors": {"username": err("username"), "display_name": err("display_name"),
                           "password": err("password"), "roles": err("roles")},
                "has_errors": !errors.is_empty(), "flash": flash,
            }),
        )
    }

    /// The custom-field admin page of one object: its fields and a form to add one.
    pub fn admin_fields_page(
        &self,
        chrome: &Chrome,
        schema: &Value,
        submitted: &Value,
        errors: &[FieldError],
        flash: Option<&str>,
    ) -> Result<String, RenderError> {
        let ctx = view::admin_context(chrome, schema, submitted, errors, flash);
        self.render("pages/admin_fields.html", &ctx)
    }
}
