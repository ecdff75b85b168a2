-- What the server does for GET /objects/offer/records/{id} (http::read: records::fetch,
-- attach_children), as platform_app under row-level security.
\set n random(1, :nseed)
BEGIN;
SELECT id, version, created_at, updated_at, created_by, updated_by, custom, "number", "customer", "company", "status", "title", "offer_date", "valid_until", "currency", "notes", "line_count", "subtotal", "discount_total", "net_total", "tax_total", "grand_total" FROM "offers"."offer" WHERE tenant_id = :tenant AND id = md5('bench-offer-' || :n)::uuid;
SELECT id, version, created_at, updated_at, created_by, updated_by, parent_id, "product", "description", "quantity", "unit", "unit_price", "discount_percent", "tax_rate", "amount", "discount_amount", "net_amount", "tax_amount", "gross_amount" FROM "offers"."offer_line" WHERE tenant_id = :tenant AND parent_id = ANY(ARRAY[md5('bench-offer-' || :n)::uuid]) ORDER BY parent_id, position;
COMMIT;
