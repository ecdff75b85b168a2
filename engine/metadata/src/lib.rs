//! Object definitions: the file format, loading and checking, and everything derived
//! from a definition that needs neither HTTP nor SQL (record JSON Schemas, normalised
//! values, the write pipeline, expressions, autonumber formats, examples).
//!
//! The engine's server crate turns a [`Catalog`] into tables and endpoints; this crate
//! knows nothing about either, so definitions can be checked offline (`platform check`).

pub mod autonumber;
pub mod catalog;
pub mod check;
pub mod example;
pub mod expr;
pub mod form;
pub mod model;
pub mod validate;
pub mod values;

pub use catalog::{Catalog, Object};
pub use check::{DefinitionError, Source};
pub use model::*;
pub use platform_plugin_api::{Issue, Record};
