-- The engine's own tables. Generated object tables live in one schema per service and
-- are created from metadata at start (see engine/server/src/ddl.rs), not here.

-- The runtime role. Every request runs as this role (SET ROLE after connect), which is
-- neither a superuser, nor the owner of any table, nor BYPASSRLS: row-level security
-- applies to it even when DATABASE_URL names a superuser. Roles are cluster-wide, so
-- several databases (tests) share it; creating it twice is not an error.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'platform_app') THEN
        CREATE ROLE platform_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
-- The connecting user must be able to SET ROLE platform_app (a superuser always can).
DO $$
BEGIN
    EXECUTE format('GRANT platform_app TO %I', current_user);
EXCEPTION WHEN OTHERS THEN
    NULL;
END
$$;

CREATE SCHEMA engine;
GRANT USAGE ON SCHEMA engine TO platform_app;

-- Every metadata version ever applied, immutable: the definitions as a JSON array, the
-- hash that identifies them and the DDL that brought the tables to that shape. The
-- newest row is what the tables were built from; start-up diffs the files against it.
CREATE TABLE engine.metadata_versions (
    version     bigint PRIMARY KEY,
    hash        text NOT NULL,
    definitions jsonb NOT NULL,
    ddl         text NOT NULL,
    source      text NOT NULL,
    applied_by  text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT ON engine.metadata_versions TO platform_app;

-- Tenant-scoped rows below all carry tenant_id and the same policy: a row is visible and
-- writable only when it belongs to the tenant set for the transaction
-- (set_config('app.tenant_id', ..., true)). No tenant set: no rows.

-- POST Idempotency-Key: the first request's body hash and response, replayed for a
-- retry with the same key and body, refused for another body.
CREATE TABLE engine.idempotency_keys (
    tenant_id     uuid NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    status        smallint,
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

-- Autonumber counters, per tenant, object, field and period (e.g. a year). Incremented
-- in the writing transaction, so numbers are gap-free: a rolled back create returns its
-- number.
CREATE TABLE engine.sequences (
    tenant_id uuid NOT NULL,
    object    text NOT NULL,
    field     text NOT NULL,
    period    text NOT NULL,
    value     bigint NOT NULL,
    PRIMARY KEY (tenant_id, object, field, period)
);

-- The audit trail: one row per create, update and delete, written in the same
-- transaction as the change. The runtime role may insert and read, never update or
-- delete.
CREATE TABLE engine.audit_events (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    object           text NOT NULL,
    record_id        uuid NOT NULL,
    action           text NOT NULL,
    record_version   bigint NOT NULL,
    actor            text NOT NULL,
    roles            text[] NOT NULL,
    request_id       text,
    correlation_id   text,
    metadata_version bigint NOT NULL,
    changes          jsonb NOT NULL,
    occurred_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_record_idx ON engine.audit_events (tenant_id, object, record_id, occurred_at DESC);

-- The transactional outbox: the event envelope of every committed change, written in
-- the same transaction, published later by a relay.
CREATE TABLE engine.outbox (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL,
    event_type     text NOT NULL,
    envelope       jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz
);
CREATE INDEX outbox_unpublished_idx ON engine.outbox (created_at) WHERE published_at IS NULL;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['idempotency_keys', 'sequences', 'audit_events', 'outbox'] LOOP
        EXECUTE format('ALTER TABLE engine.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON engine.%I
            USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
            WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)$p$, t);
    END LOOP;
END
$$;
GRANT SELECT, INSERT, UPDATE, DELETE ON engine.idempotency_keys, engine.sequences TO platform_app;
GRANT SELECT, INSERT ON engine.audit_events, engine.outbox TO platform_app;
