//! Integration tests against a real PostgreSQL: every test gets its own database,
//! created by the engine's own start-up and dropped at the end. All tests live in one
//! binary to keep builds fast.

mod harness;

mod broker;
mod definitions;
mod events;
mod listing;
mod metadata;
mod openapi;
mod records;
mod tenancy;
