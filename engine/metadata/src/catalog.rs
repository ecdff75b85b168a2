//! A checked set of definitions, compiled for the request path: JSON Schemas, expressions
//! and autonumber formats, built once per metadata version and shared behind an `Arc`.

use crate::autonumber;
use crate::check::{self, DefinitionError, Source};
use crate::expr::CompiledExprs;
use crate::model::*;
use crate::values::{self, Mode};
use platform_plugin_api::Registry;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// One object, compiled.
#[derive(Debug)]
pub struct Object {
    pub def: ObjectDef,
    /// Name of the parent object for child (line) objects.
    pub parent: Option<String>,
    pub(crate) create_validator: jsonschema::Validator,
    pub(crate) patch_validator: jsonschema::Validator,
    /// Rules, then expression defaults, then formulas: see the index maps.
    pub(crate) exprs: CompiledExprs,
    pub(crate) default_exprs: HashMap<String, usize>,
    pub(crate) formula_exprs: Vec<(usize, usize)>,
    pub(crate) field_index: HashMap<String, usize>,
    pub(crate) autonumbers: Vec<(String, Vec<autonumber::Part>)>,
    /// A short hash of the definition. Generated SQL carries it in a comment, so a
    /// connection's cached prepared statements are never reused across a change of the
    /// table's shape ("cached plan must not change result type").
    pub shape: String,
    /// Record input schemas as JSON (for OpenAPI and form schemas).
    pub create_schema: Value,
    pub patch_schema: Value,
}

impl Object {
    pub fn name(&self) -> &str {
        &self.def.name
    }

    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.field_index.get(name).map(|&i| &self.def.fields[i])
    }

    /// Fields stored in the object's table.
    pub fn columns(&self) -> impl Iterator<Item = &FieldDef> {
        self.def.fields.iter().filter(|f| f.has_column())
    }

    /// The tenant's custom fields (only on an object from [`Catalog::overlay`]).
    pub fn custom_fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.def.fields.iter().filter(|f| f.custom)
    }

    pub fn children(&self) -> impl Iterator<Item = &FieldDef> {
        self.def
            .fields
            .iter()
            .filter(|f| f.kind == FieldType::Children)
    }

    pub fn autonumbers(&self) -> &[(String, Vec<autonumber::Part>)] {
        &self.autonumbers
    }

    /// Whether `role` may do `action`; `admin` may do everything.
    pub fn allows(&self, roles: &[String], action: Action) -> bool {
        roles.iter().any(|r| {
            r == "admin"
                || self
                    .def
                    .permissions
                    .get(r)
                    .is_some_and(|acts| acts.contains(&action))
        })
    }

    /// Whether `roles` may take transition `t`: its roles when it names any, else
    /// permission to update; `admin` always.
    pub fn may_transition(&self, roles: &[String], t: &crate::model::TransitionDef) -> bool {
        if t.roles.is_empty() {
            self.allows(roles, Action::Update)
        } else {
            roles.iter().any(|r| r == "admin" || t.roles.contains(r))
        }
    }

    /// The lifecycle's initial state (the state field's default).
    pub fn initial_state(&self) -> Option<&str> {
        let lc = self.def.lifecycle.as_ref()?;
        match &self.field(&lc.field)?.default {
            Some(crate::model::DefaultValue::Literal(Value::String(s))) => Some(s),
            _ => None,
        }
    }

    pub fn plural_label(&self) -> String {
        self.def
            .plural_label
            .clone()
            .unwrap_or_else(|| format!("{}s", self.def.label))
    }
}

/// Every object of one metadata version.
#[derive(Debug)]
pub struct Catalog {
    objects: BTreeMap<String, Arc<Object>>,
    /// Definitions in load order.
    order: Vec<String>,
    /// SHA-256 of the canonical definitions: equal hashes, equal metadata.
    pub hash: String,
    pub plugins: Registry,
}

impl Catalog {
    /// Checks sources and compiles them.
    pub fn from_sources(
        sources: &[Source],
        plugins: Registry,
    ) -> Result<Catalog, Vec<DefinitionError>> {
        let names: BTreeSet<String> = plugins.names().map(String::from).collect();
        let defs = check::check_sources(sources, &names)?;
        Self::from_defs(defs, plugins)
    }

    /// Checks already-parsed definitions (for example from the database) and compiles them.
    pub fn from_defs(
        defs: Vec<ObjectDef>,
        plugins: Registry,
    ) -> Result<Catalog, Vec<DefinitionError>> {
        let names: BTreeSet<String> = plugins.names().map(String::from).collect();
        let labelled: Vec<(String, ObjectDef)> = defs
            .into_iter()
            .map(|d| (format!("object {}", d.name), d))
            .collect();
        let mut errors = check::check_defs(&labelled, &names);
        for (file, def) in &labelled {
            for (i, h) in def.hooks.iter().enumerate() {
                if let Some(p) = plugins.get(&h.plugin) {
                    if let Err(e) = p.check_config(&h.config) {
                        errors.push(DefinitionError {
                            file: file.clone(),
                            path: format!("$.hooks[{i}].config"),
                            code: "plugin_config".into(),
                            message: e,
                        });
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let defs: Vec<ObjectDef> = labelled.into_iter().map(|(_, d)| d).collect();
        let by_name: BTreeMap<&str, &ObjectDef> =
            defs.iter().map(|d| (d.name.as_str(), d)).collect();
        let mut parents: HashMap<String, String> = HashMap::new();
        for d in &defs {
            for f in d.fields.iter().filter(|f| f.kind == FieldType::Children) {
                if let Some(o) = &f.object {
                    parents.insert(o.clone(), d.name.clone());
                }
            }
        }
        let lookup = |n: &str| by_name.get(n).copied();
        let mut objects = BTreeMap::new();
        let mut hasher = Sha256::new();
        for d in &defs {
            hasher.update(serde_json::to_vec(d).unwrap_or_default());
            let obj = compile(d.clone(), parents.get(&d.name).cloned(), &lookup).map_err(|m| {
                vec![DefinitionError {
                    file: format!("object {}", d.name),
                    path: "$".into(),
                    code: "compile".into(),
                    message: m,
                }]
            })?;
            objects.insert(d.name.clone(), Arc::new(obj));
        }
        Ok(Catalog {
            order: defs.iter().map(|d| d.name.clone()).collect(),
            objects,
            hash: hex::encode(hasher.finalize()),
            plugins,
        })
    }

    /// `object` with a tenant's custom fields added, checked and compiled.
    pub fn overlay(
        &self,
        object: &str,
        custom: &[FieldDef],
    ) -> Result<Object, Vec<DefinitionError>> {
        let Some(base) = self.get(object) else {
            return Err(vec![DefinitionError {
                file: "tenant".into(),
                path: "$".into(),
                code: "unknown_object".into(),
                message: format!("no object named `{object}`"),
            }]);
        };
        let mut def = base.def.clone();
        for f in custom {
            let mut f = f.clone();
            f.custom = true;
            def.fields.push(f);
        }
        let label = format!("tenant fields of {object}");
        let labelled: Vec<(String, ObjectDef)> = self
            .objects()
            .map(|o| {
                if o.name() == object {
                    (label.clone(), def.clone())
                } else {
                    (format!("object {}", o.name()), o.def.clone())
                }
            })
            .collect();
        let names: BTreeSet<String> = self.plugins.names().map(String::from).collect();
        let errors: Vec<DefinitionError> = check::check_defs(&labelled, &names)
            .into_iter()
            .filter(|e| e.file == label)
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        let by_name: BTreeMap<&str, &ObjectDef> =
            labelled.iter().map(|(_, d)| (d.name.as_str(), d)).collect();
        let lookup = |n: &str| by_name.get(n).copied();
        compile(def, base.parent.clone(), &lookup).map_err(|m| {
            vec![DefinitionError {
                file: label.clone(),
                path: "$".into(),
                code: "compile".into(),
                message: m,
            }]
        })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Object>> {
        self.objects.get(name)
    }

    /// Objects in definition order.
    pub fn objects(&self) -> impl Iterator<Item = &Arc<Object>> {
        self.order.iter().filter_map(|n| self.objects.get(n))
    }

    /// The definitions, as they would be written to files.
    pub fn defs(&self) -> Vec<ObjectDef> {
        self.objects().map(|o| o.def.clone()).collect()
    }

    /// Objects ordered so that every reference target comes before the objects that
    /// reference it (the order tables are created and examples posted in).
    pub fn dependency_order(&self) -> Vec<Arc<Object>> {
        let mut out: Vec<Arc<Object>> = Vec::new();
        let mut done = BTreeSet::new();
        fn visit(
            c: &Catalog,
            o: &Arc<Object>,
            done: &mut BTreeSet<String>,
            out: &mut Vec<Arc<Object>>,
            depth: usize,
        ) {
            if done.contains(o.name()) || depth > 64 {
                return;
            }
            done.insert(o.name().to_string());
            for f in &o.def.fields {
                let dep = match f.kind {
                    FieldType::Reference => f.target.as_deref(),
                    _ => None,
                };
                if let Some(t) = dep.and_then(|t| c.get(t)) {
                    if t.name() != o.name() {
                        visit(c, t, done, out, depth + 1);
                    }
                }
            }
            // A child is created after its parent.
            if let Some(p) = o.parent.as_deref().and_then(|p| c.get(p)) {
                visit(c, p, done, out, depth + 1);
            }
            out.push(o.clone());
            for f in o.children() {
                if let Some(ch) = f.object.as_deref().and_then(|n| c.get(n)) {
                    visit(c, ch, done, out, depth + 1);
                }
            }
        }
        for o in self.objects() {
            visit(self, o, &mut done, &mut out, 0);
        }
        out
    }
}

fn compile<'a>(
    def: ObjectDef,
    parent: Option<String>,
    lookup: &dyn Fn(&str) -> Option<&'a ObjectDef>,
) -> Result<Object, String> {
    let create_schema = values::record_schema(&def, lookup, Mode::Create);
    let patch_schema = values::record_schema(&def, lookup, Mode::Patch);
    let build = |s: &Value| {
        jsonschema::options()
            .should_validate_formats(true)
            .build(s)
            .map_err(|e| format!("record schema of `{}` does not compile: {e}", def.name))
    };
    let create_validator = build(&create_schema)?;
    let patch_validator = build(&patch_schema)?;
    let mut sources: Vec<String> = def.rules.iter().map(|r| r.expression.clone()).collect();
    let mut default_exprs = HashMap::new();
    let mut formula_exprs = Vec::new();
    for (i, f) in def.fields.iter().enumerate() {
        if let Some(DefaultValue::Expr { expr }) = &f.default {
            default_exprs.insert(f.name.clone(), sources.len());
            sources.push(expr.clone());
        }
        if let (FieldType::Formula, Some(e)) = (f.kind, &f.expression) {
            formula_exprs.push((i, sources.len()));
            sources.push(e.clone());
        }
    }
    let exprs = CompiledExprs::compile(&sources)?;
    let autonumbers = def
        .fields
        .iter()
        .filter(|f| f.kind == FieldType::Autonumber)
        .map(|f| {
            autonumber::parse(f.format.as_deref().unwrap_or_default()).map(|p| (f.name.clone(), p))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let field_index = def
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name.clone(), i))
        .collect();
    let shape =
        hex::encode(Sha256::digest(serde_json::to_vec(&def).unwrap_or_default()))[..16].to_string();
    Ok(Object {
        shape,
        def,
        parent,
        create_validator,
        patch_validator,
        exprs,
        default_exprs,
        formula_exprs,
        field_index,
        autonumbers,
        create_schema,
        patch_schema,
    })
}
