//! The platform engine: turns checked object definitions into PostgreSQL tables and a
//! REST API with validation, plugins, tenancy, optimistic locking, idempotency, audit
//! events and an outbox. The `platform` binary (main.rs) is glue over this library.
//!
//! Layers, outermost first: `http` (router, extractors, handlers), `auth` (JWT ->
//! principal), `openapi`, `query` (list parameters -> SQL), `records` (all SQL on
//! generated tables), `ddl` (generated tables and their evolution), `sqlvalue` (typed
//! binding and decoding), `db` (pools, migrations, tenant transactions).

pub mod app;
pub mod audit;
pub mod auth;
pub mod db;
pub mod ddl;
pub mod demo;
pub mod error;
pub mod events;
pub mod evolve;
pub mod http;
pub mod metadata_api;
pub mod openapi;
pub mod query;
pub mod records;
pub mod sqlvalue;
pub mod web;
pub mod webhooks;
