-- Tenants' own custom fields. A definition here adds a field to one object for one
-- tenant only; its values live in the record's `custom` JSONB column (every generated
-- top-level table has one), so adding, changing or dropping such a field runs no DDL,
-- takes no lock on the shared table, and other tenants never see it.
CREATE TABLE engine.tenant_fields (
    tenant_id   uuid NOT NULL,
    object      text NOT NULL,
    name        text NOT NULL,
    position    integer NOT NULL,
    definition  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL,
    PRIMARY KEY (tenant_id, object, name)
);

-- Every change of a tenant's custom fields: who, when, before and after. Its highest id
-- is the revision every process compares to know it must reload.
CREATE TABLE engine.tenant_field_log (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    object      text NOT NULL,
    field       text NOT NULL,
    action      text NOT NULL,
    actor       text NOT NULL,
    before      jsonb,
    after       jsonb,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenant_field_log_tenant_idx ON engine.tenant_field_log (tenant_id, at DESC);

-- Both are read and written by the engine's admin connection; the runtime role has no
-- access at all.
ALTER TABLE engine.tenant_fields ENABLE ROW LEVEL SECURITY;
ALTER TABLE engine.tenant_field_log ENABLE ROW LEVEL SECURITY;
