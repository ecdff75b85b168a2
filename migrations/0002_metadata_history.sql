-- Metadata versions made through the Metadata API keep, besides the definitions and
-- the DDL, what changed (a field-level diff) and the version the change was based on.
-- Versions made from the definition files also keep those files' definitions and hash,
-- so a restart with unchanged files keeps the API's changes, and a restart with changed
-- files merges the files' change into them (engine/server/src/evolve.rs).
ALTER TABLE engine.metadata_versions
    ADD COLUMN diff jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN base_version bigint,
    ADD COLUMN files_hash text,
    ADD COLUMN files_definitions jsonb;
