-- What the server does for GET /objects/offer/records?filter=status:eq:draft&sort=-grand_total&limit=50
-- (query::ListQuery::sql in http::list), as platform_app under row-level security.
BEGIN;
SELECT id, version, created_at, updated_at, created_by, updated_by, "number", "customer", "company", "status", "title", "offer_date", "valid_until", "currency", "notes", "line_count", "subtotal", "discount_total", "net_total", "tax_total", "grand_total" FROM "offers"."offer" WHERE tenant_id = :tenant AND "status" = :status ORDER BY "grand_total" DESC NULLS LAST, id ASC LIMIT 51;
COMMIT;
