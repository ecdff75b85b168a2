-- Events: the outbox becomes the event store (kept, ordered, re-publishable), consumers
-- get an inbox and a dead-letter table, the audit trail a per-tenant hash chain, and
-- tenants webhook subscriptions with a delivery log.

-- The outbox, in commit-independent insertion order. Rows stay after publishing: they
-- are the stored events that `platform events replay` publishes again.
ALTER TABLE engine.outbox ADD COLUMN seq bigserial;
ALTER TABLE engine.outbox ADD COLUMN publish_count integer NOT NULL DEFAULT 0;
ALTER TABLE engine.outbox ADD COLUMN last_error text;
CREATE UNIQUE INDEX outbox_seq_idx ON engine.outbox (seq);
DROP INDEX engine.outbox_unpublished_idx;
CREATE INDEX outbox_pending_idx ON engine.outbox (seq) WHERE published_at IS NULL;
CREATE INDEX outbox_created_idx ON engine.outbox (created_at);
GRANT USAGE ON SEQUENCE engine.outbox_seq_seq TO platform_app;

-- Audit events not yet linked into their tenant's chain. The writing transaction adds
-- the event here; the sealer links it and removes it. The runtime may only insert.
CREATE TABLE engine.audit_unsealed (
    event_id  uuid PRIMARY KEY,
    tenant_id uuid NOT NULL
);
GRANT INSERT ON engine.audit_unsealed TO platform_app;

-- The hash chain: link `seq` of a tenant covers one audit event, hash =
-- sha256(prev_hash || canonical text of the event). Only the sealer (the owner) writes;
-- the runtime role has no privilege on it at all.
CREATE TABLE engine.audit_chain (
    tenant_id uuid NOT NULL,
    seq       bigint NOT NULL,
    event_id  uuid NOT NULL UNIQUE,
    prev_hash bytea NOT NULL,
    hash      bytea NOT NULL,
    sealed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, seq)
);

-- Which consumer has had its effect for which event: a redelivered event is skipped.
CREATE TABLE engine.inbox (
    consumer     text NOT NULL,
    event_id     uuid NOT NULL,
    tenant_id    uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Events a consumer kept failing on, with the error, until retried.
CREATE TABLE engine.dead_letters (
    id          uuid PRIMARY KEY,
    consumer    text NOT NULL,
    event_id    uuid NOT NULL,
    tenant_id   uuid NOT NULL,
    event_type  text NOT NULL,
    envelope    jsonb NOT NULL,
    error       text NOT NULL,
    attempts    integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    UNIQUE (consumer, event_id)
);

-- The built-in projection: how many events of each type each object has had. It is
-- rebuilt from the stored events by `platform events rebuild activity`.
CREATE TABLE engine.activity (
    tenant_id     uuid NOT NULL,
    object        text NOT NULL,
    event_type    text NOT NULL,
    events        bigint NOT NULL,
    last_event_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, object, event_type)
);

-- Webhook subscriptions, per tenant, managed through the Metadata API.
CREATE TABLE engine.webhooks (
    id         uuid PRIMARY KEY,
    tenant_id  uuid NOT NULL,
    name       text NOT NULL,
    url        text NOT NULL,
    events     text[] NOT NULL,
    secret     text NOT NULL,
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

-- One row per (webhook, event): what the sender works through, with backoff.
CREATE TABLE engine.webhook_deliveries (
    id              uuid PRIMARY KEY,
    webhook_id      uuid NOT NULL REFERENCES engine.webhooks (id) ON DELETE CASCADE,
    tenant_id       uuid NOT NULL,
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    body            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending', -- pending | delivered | failed
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON engine.webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- Every attempt: the delivery log.
CREATE TABLE engine.webhook_attempts (
    delivery_id uuid NOT NULL REFERENCES engine.webhook_deliveries (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    status_code integer,
    error       text,
    duration_ms integer NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['inbox', 'dead_letters', 'activity', 'webhooks', 'webhook_deliveries'] LOOP
        EXECUTE format('ALTER TABLE engine.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON engine.%I
            USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
            WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)$p$, t);
    END LOOP;
END
$$;
-- Consumers' handlers run as the runtime role inside the event's tenant.
GRANT SELECT, INSERT ON engine.inbox TO platform_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON engine.activity, engine.webhook_deliveries TO platform_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON engine.webhooks TO platform_app;
GRANT SELECT ON engine.dead_letters TO platform_app;
