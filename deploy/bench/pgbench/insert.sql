-- Baseline: the server's INSERT ... RETURNING of an offer row (records::insert), alone:
-- autocommit, as the connecting superuser (no row-level security), no line, no audit.
INSERT INTO "offers"."offer" (id, tenant_id, created_by, updated_by, "number", "customer", "company", "status", "title", "offer_date", "valid_until", "currency", "notes", "line_count", "subtotal", "discount_total", "net_total", "tax_total", "grand_total", "custom")
VALUES (gen_random_uuid(), :tenant, 'pgbench', 'pgbench', 'PB-' || gen_random_uuid(), :customer, NULL, 'draft', 'Bench offer', current_date, current_date + 30, 'EUR', NULL, 1, 20.00, 0.00, 20.00, 5.00, 25.00, '{}')
RETURNING id, version, created_at, updated_at, created_by, updated_by, custom, "number", "customer", "company", "status", "title", "offer_date", "valid_until", "currency", "notes", "line_count", "subtotal", "discount_total", "net_total", "tax_total", "grand_total";
