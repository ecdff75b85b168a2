//! The OpenAPI document, generated from the current definitions with utoipa's builders:
//! for every object its record paths, its record, input and list schemas, and a create
//! example that succeeds when posted as it is (see `platform_metadata::example`).

use platform_metadata::example::create_example;
use platform_metadata::values::field_schema;
use platform_metadata::{Catalog, FieldType, Object};
use serde_json::{json, Map, Value};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathItem,
    PathsBuilder, Ref, RefOr, Required, ResponseBuilder, Schema,
};

/// JSON Schema allows a schema without `type` (any value); utoipa's model does not, so
/// such schemas get the list of every type.
fn fill_types(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        if !["type", "$ref", "anyOf", "oneOf", "allOf"]
            .iter()
            .any(|k| m.contains_key(*k))
        {
            m.insert(
                "type".into(),
                json!(["object", "array", "string", "number", "boolean", "null"]),
            );
        }
        if let Some(Value::Object(props)) = m.get_mut("properties") {
            for p in props.values_mut() {
                *p = fill_types(p.take());
            }
        }
        for k in ["items", "additionalProperties"] {
            if let Some(inner) = m.get_mut(k).filter(|x| x.is_object()) {
                *inner = fill_types(inner.take());
            }
        }
    }
    v
}

fn schema(v: Value) -> RefOr<Schema> {
    serde_json::from_value(fill_types(v)).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "schema not representable in OpenAPI");
        RefOr::T(Schema::default())
    })
}

fn pascal(name: &str) -> String {
    name.split('_')
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The JSON Schema of a record as the API returns it.
fn record_schema(cat: &Catalog, obj: &Object) -> Value {
    let mut props = Map::new();
    props.insert(
        "id".into(),
        json!({"type": "string", "format": "uuid", "readOnly": !obj.def.child}),
    );
    for f in &obj.def.fields {
        let mut s = if f.kind == FieldType::Children {
            let child = f
                .object
                .as_deref()
                .and_then(|c| cat.get(c))
                .map(|c| pascal(c.name()))
                .unwrap_or_default();
            json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{child}")}})
        } else {
            let mut s = field_schema(f);
            if !f.is_writable() {
                s["readOnly"] = json!(true);
            }
            s
        };
        let mut desc = f.label();
        if let Some(h) = &f.help {
            desc = format!("{desc}. {h}");
        }
        if f.kind.is_decimal() {
            desc = format!("{desc} (decimal as a string, {} places)", f.scale());
        }
        if f.kind == FieldType::Reference {
            desc = format!("{desc} (id of a {})", f.target.clone().unwrap_or_default());
        }
        s["description"] = json!(desc);
        props.insert(f.name.clone(), s);
    }
    if !obj.def.child {
        props.insert("version".into(), json!({"type": "integer", "readOnly": true, "description": "Optimistic lock; also the ETag"}));
        for c in ["created_at", "updated_at"] {
            props.insert(
                c.into(),
                json!({"type": "string", "format": "date-time", "readOnly": true}),
            );
        }
        for c in ["created_by", "updated_by"] {
            props.insert(c.into(), json!({"type": "string", "readOnly": true}));
        }
    }
    json!({"type": "object", "title": obj.def.label, "description": obj.def.description.clone().unwrap_or_default(), "properties": props})
}

fn json_content(s: RefOr<Schema>, example: Option<Value>) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(s))
        .example(example)
        .build()
}

fn error_response(desc: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(desc)
        .content(
            "application/json",
            json_content(RefOr::Ref(Ref::from_schema_name("Error")), None),
        )
        .build()
}

fn query_param(name: &str, desc: &str, s: Value) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(desc))
        .schema(Some(schema(s)))
        .build()
}

fn header_param(name: &str, desc: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(desc))
        .schema(Some(schema(json!({"type": "string"}))))
        .build()
}

fn id_param() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .schema(Some(schema(json!({"type": "string", "format": "uuid"}))))
        .build()
}

/// Builds the document for `cat` at metadata version `version`; objects in `overlay`
/// (one tenant's objects with its custom fields) replace the shared ones.
pub fn build(
    cat: &Catalog,
    version: i64,
    overlay: &std::collections::HashMap<String, std::sync::Arc<Object>>,
) -> OpenApi {
    let mut paths = PathsBuilder::new();
    let mut components = ComponentsBuilder::new()
        .schema(
            "Error",
            schema(json!({
                "type": "object", "required": ["error", "message"],
                "properties": {
                    "error": {"type": "string", "description": "A stable code: validation_failed, not_found, version_conflict, ..."},
                    "message": {"type": "string"},
                    "details": {"type": "array", "items": {"type": "object", "properties": {
                        "field": {"type": "string", "example": "lines[1].quantity"},
                        "rule": {"type": "string", "example": "minimum"},
                        "message": {"type": "string"},
                        "value": {}
                    }}}
                }
            })),
        )
        .security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()));
    let security = SecurityRequirement::new("bearer", Vec::<String>::new());
    for obj in cat.objects() {
        let obj = overlay.get(obj.name()).unwrap_or(obj);
        let name = pascal(obj.name());
        components = components.schema(name.clone(), schema(record_schema(cat, obj)));
        if obj.def.child {
            continue;
        }
        let mut create_in = obj.create_schema.clone();
        if let Some(p) = create_in
            .get_mut("properties")
            .and_then(|p| p.as_object_mut())
        {
            p.insert("id".into(), json!({"type": "string", "format": "uuid", "description": "Optional client-chosen id"}));
        }
        components = components
            .schema(format!("{name}Create"), schema(create_in))
            .schema(format!("{name}Patch"), schema(obj.patch_schema.clone()))
            .schema(
                format!("{name}Page"),
                schema(json!({"type": "object", "properties": {
                    "data": {"type": "array", "items": {"$ref": format!("#/components/schemas/{name}")}},
                    "next_cursor": {"type": ["string", "null"]},
                    "has_more": {"type": "boolean"},
                    "limit": {"type": "integer"}
                }})),
            );
        let rec_ref = || RefOr::Ref(Ref::from_schema_name(name.clone()));
        let ok = |desc: &str| {
            ResponseBuilder::new()
                .description(desc)
                .content("application/json", json_content(rec_ref(), None))
                .build()
        };
        let tag = obj.def.label.clone();
        let o = obj.name();
        let create = OperationBuilder::new()
            .tag(tag.clone())
            .operation_id(Some(format!("create_{o}")))
            .summary(Some(format!("Create a {}", obj.def.label.to_lowercase())))
            .parameter(header_param(
                "Idempotency-Key",
                "Retries with the same key and body replay the first response",
            ))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        json_content(
                            RefOr::Ref(Ref::from_schema_name(format!("{name}Create"))),
                            Some(create_example(cat, obj)),
                        ),
                    )
                    .build(),
            ))
            .response("201", ok("Created"))
            .response("401", error_response("No valid token"))
            .response("403", error_response("The caller's roles may not create"))
            .response(
                "422",
                error_response("Invalid input: every problem in details"),
            )
            .security(security.clone());
        let list = OperationBuilder::new()
            .tag(tag.clone())
            .operation_id(Some(format!("list_{o}")))
            .summary(Some(format!("List {}", obj.plural_label().to_lowercase())))
            .parameter(query_param(
                "filter",
                "field:op:value, repeatable; op is eq, ne, lt, lte, gt, gte, in (a,b), contains, starts_with, is_null (true/false), between (low,high)",
                json!({"type": "array", "items": {"type": "string"}}),
            ))
            .parameter(query_param("sort", "Comma-separated fields, `-` for descending, e.g. -created_at,number", json!({"type": "string"})))
            .parameter(query_param("limit", "Page size, 1 to 200 (default 25)", json!({"type": "integer", "minimum": 1, "maximum": 200})))
            .parameter(query_param("cursor", "next_cursor of the previous page", json!({"type": "string"})))
            .parameter(query_param("fields", "Comma-separated fields to return", json!({"type": "string"})))
            .parameter(query_param("expand", "Reference fields to embed as records, children fields to include", json!({"type": "string"})))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("A page")
                    .content("application/json", json_content(RefOr::Ref(Ref::from_schema_name(format!("{name}Page"))), None))
                    .build(),
            )
            .response("400", error_response("Invalid filter, sort, limit or cursor"))
            .response("401", error_response("No valid token"))
            .security(security.clone());
        let get = OperationBuilder::new()
            .tag(tag.clone())
            .operation_id(Some(format!("get_{o}")))
            .parameter(id_param())
            .parameter(query_param(
                "expand",
                "Reference fields to embed as records",
                json!({"type": "string"}),
            ))
            .response("200", ok("The record; its version is the ETag"))
            .response("404", error_response("No such record for this tenant"))
            .security(security.clone());
        let write = |method: &str, body: String, desc: &str| {
            OperationBuilder::new()
                .tag(tag.clone())
                .operation_id(Some(format!("{method}_{o}")))
                .summary(Some(desc.to_string()))
                .parameter(id_param())
                .parameter(header_param(
                    "If-Match",
                    "\"<version>\": refused with 409 when the record changed since",
                ))
                .request_body(Some(
                    RequestBodyBuilder::new()
                        .required(Some(Required::True))
                        .content(
                            "application/json",
                            json_content(RefOr::Ref(Ref::from_schema_name(body)), None),
                        )
                        .build(),
                ))
                .response("200", ok("Updated"))
                .response("404", error_response("No such record for this tenant"))
                .response("409", error_response("Stale version"))
                .response("422", error_response("Invalid input"))
                .security(security.clone())
        };
        let delete = OperationBuilder::new()
            .tag(tag.clone())
            .operation_id(Some(format!("delete_{o}")))
            .parameter(id_param())
            .parameter(header_param("If-Match", "\"<version>\" (or ?version=)"))
            .response("204", ResponseBuilder::new().description("Deleted").build())
            .response("404", error_response("No such record for this tenant"))
            .response("409", error_response("Stale version, or still referenced"))
            .security(security.clone());
        paths = paths
            .path(
                format!("/api/v1/objects/{o}/records"),
                PathItem::builder()
                    .operation(HttpMethod::Post, create)
                    .operation(HttpMethod::Get, list)
                    .build(),
            )
            .path(
                format!("/api/v1/objects/{o}/records/{{id}}"),
                PathItem::builder()
                    .operation(HttpMethod::Get, get)
                    .operation(
                        HttpMethod::Patch,
                        write("patch", format!("{name}Patch"), "Change some fields"),
                    )
                    .operation(
                        HttpMethod::Put,
                        write(
                            "put",
                            format!("{name}Create"),
                            "Replace all writable fields",
                        ),
                    )
                    .operation(HttpMethod::Delete, delete)
                    .build(),
            );
        for t in obj.def.lifecycle.iter().flat_map(|lc| &lc.transitions) {
            let event = format!("{}.{o}.{}", obj.def.service, t.event());
            let op = OperationBuilder::new()
                .tag(tag.clone())
                .operation_id(Some(format!("{}_{o}", t.name)))
                .summary(Some(t.label()))
                .description(Some(format!(
                    "Moves the record from {} to `{}` and publishes `{event}`. The record is validated in its new state.",
                    t.from.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(" or "),
                    t.to
                )))
                .parameter(id_param())
                .parameter(header_param("If-Match", "\"<version>\": refused with 409 when the record changed since"))
                .response("200", ok("The record in its new state"))
                .response("403", error_response("The caller's roles may not take this transition"))
                .response("404", error_response("No such record for this tenant"))
                .response("409", error_response("Not allowed from the record's state, or stale version"))
                .response("422", error_response("The record is not valid in the new state"))
                .security(security.clone());
            paths = paths.path(
                format!("/api/v1/objects/{o}/records/{{id}}/transitions/{}", t.name),
                PathItem::builder().operation(HttpMethod::Post, op).build(),
            );
        }
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Platform API")
                .version(format!("metadata-{version}"))
                .description(Some(
                    "REST API generated from the object definitions. Money and decimals are strings; every error is {error, message, details}.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_schema_is_representable_in_openapi() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../metadata");
        let cat = crate::app::load_catalog(&dir).expect("shipped metadata loads");
        for obj in cat.objects() {
            for s in [
                record_schema(&cat, obj),
                obj.create_schema.clone(),
                obj.patch_schema.clone(),
            ] {
                let filled = fill_types(s);
                let parsed: Result<RefOr<Schema>, _> = serde_json::from_value(filled.clone());
                assert!(parsed.is_ok(), "{}: {filled}", obj.name());
            }
        }
    }
}
