-- Baseline: the server's SELECT of one offer by primary key (records::fetch), alone.
-- The seeded offers' ids are md5('bench-offer-' || n), n in 1..nseed.
\set n random(1, :nseed)
SELECT id, version, created_at, updated_at, created_by, updated_by, custom, "number", "customer", "company", "status", "title", "offer_date", "valid_until", "currency", "notes", "line_count", "subtotal", "discount_total", "net_total", "tax_total", "grand_total" FROM "offers"."offer" WHERE tenant_id = :tenant AND id = md5('bench-offer-' || :n)::uuid;
