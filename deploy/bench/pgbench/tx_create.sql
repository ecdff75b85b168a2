-- What the server does for POST /objects/offer/records (http::create: records::insert,
-- insert_children, record_event), as platform_app under row-level security (app.tenant_id
-- comes from PGOPTIONS), one round trip per statement as the server. The number comes
-- from a block of 32 reserved in engine.sequences by a transaction of its own
-- (records::NumberBlocks), so one create in 32 also runs that.
\set r random(1, 32)
\if :r = 1
BEGIN;
INSERT INTO engine.sequences AS s (tenant_id, object, field, period, value) VALUES (:tenant, 'offer', 'number', :period, 32)
 ON CONFLICT (tenant_id, object, field, period) DO UPDATE SET value = s.value + 32 RETURNING value;
COMMIT;
\endif
BEGIN;
INSERT INTO "offers"."offer" (id, tenant_id, created_by, updated_by, "number", "customer", "company", "status", "title", "offer_date", "valid_until", "currency", "notes", "line_count", "subtotal", "discount_total", "net_total", "tax_total", "grand_total", "custom")
VALUES (gen_random_uuid(), :tenant, 'bench', 'bench', 'PB-' || gen_random_uuid(), :customer, NULL, 'draft', 'Bench offer', current_date, current_date + 30, 'EUR', NULL, 1, 20.00, 0.00, 20.00, 5.00, 25.00, '{}')
RETURNING id, version, created_at, updated_at, created_by, updated_by, custom, "number", "customer", "company", "status", "title", "offer_date", "valid_until", "currency", "notes", "line_count", "subtotal", "discount_total", "net_total", "tax_total", "grand_total" \gset
INSERT INTO "offers"."offer_line" (id, tenant_id, created_by, updated_by, parent_id, position, "product", "description", "quantity", "unit", "unit_price", "discount_percent", "tax_rate", "amount", "discount_amount", "net_amount", "tax_amount", "gross_amount")
VALUES (gen_random_uuid(), :tenant, 'bench', 'bench', :id, 0, NULL, 'Consulting', 2.000, 'pcs', 10.00, 0.0000, 25.0000, 20.00, 0.00, 20.00, 5.00, 25.00)
RETURNING position, id, version, created_at, updated_at, created_by, updated_by, parent_id, "product", "description", "quantity", "unit", "unit_price", "discount_percent", "tax_rate", "amount", "discount_amount", "net_amount", "tax_amount", "gross_amount";
WITH audit AS (
    INSERT INTO engine.audit_events (id, tenant_id, object, record_id, action, record_version, actor, roles,
        request_id, correlation_id, metadata_version, changes, occurred_at)
    VALUES (:id, :tenant, 'offer', :id, 'created', 1, 'bench', '{admin}', :id, :id, 1, :changes, now()))
INSERT INTO engine.outbox (id, tenant_id, event_type, envelope, created_at) VALUES (:id, :tenant, 'offers.offer.created', :envelope, now());
COMMIT;
