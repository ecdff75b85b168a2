-- What the server does for GET /objects/offer/records?filter=status:eq:draft&sort=-grand_total&limit=50
-- (http::list, query::ListQuery::sql), as platform_app under row-level security.
BEGIN;
SELECT id, version, created_at, updated_at, created_by, updated_by, custom, "number", "customer", "company", "status", "title", "offer_date", "valid_until", "currency", "notes", "line_count", "subtotal", "discount_total", "net_total", "tax_total", "grand_total" FROM "offers"."offer" WHERE tenant_id = :tenant AND "status" = :status ORDER BY "grand_total" DESC NULLS FIRST, id DESC LIMIT 51;
COMMIT;
