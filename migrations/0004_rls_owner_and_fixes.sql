-- Row-level security is enforced on the runtime role (platform_app), which owns no
-- table. FORCE ROW LEVEL SECURITY also hid rows from the owner, the DATABASE_URL user
-- that runs migrations, schema changes and their checks against existing rows; a
-- non-superuser owner then saw no rows and every check passed. Isolation does not
-- depend on it (platform_app is never an owner; superusers bypass RLS regardless).
DO $$
DECLARE r record;
BEGIN
    FOR r IN
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND c.relforcerowsecurity
    LOOP
        EXECUTE format('ALTER TABLE %I.%I NO FORCE ROW LEVEL SECURITY', r.nspname, r.relname);
    END LOOP;
END
$$;

-- Generated top-level tables made before tenants' custom fields existed get their
-- `custom` column (tables with tenant_id and version but no parent_id).
DO $$
DECLARE r record;
BEGIN
    FOR r IN
        SELECT t.table_schema, t.table_name FROM information_schema.tables t
        WHERE t.table_schema NOT IN ('engine', 'public', 'pg_catalog', 'information_schema')
          AND EXISTS (SELECT 1 FROM information_schema.columns c WHERE c.table_schema = t.table_schema AND c.table_name = t.table_name AND c.column_name = 'tenant_id')
          AND EXISTS (SELECT 1 FROM information_schema.columns c WHERE c.table_schema = t.table_schema AND c.table_name = t.table_name AND c.column_name = 'version')
          AND NOT EXISTS (SELECT 1 FROM information_schema.columns c WHERE c.table_schema = t.table_schema AND c.table_name = t.table_name AND c.column_name = 'parent_id')
          AND t.table_name NOT LIKE '\_dropped\_%'
    LOOP
        EXECUTE format('ALTER TABLE %I.%I ADD COLUMN IF NOT EXISTS custom jsonb NOT NULL DEFAULT ''{}''', r.table_schema, r.table_name);
    END LOOP;
END
$$;

-- A replayed response must come back byte for byte as first sent: json keeps the key
-- order that jsonb normalises away.
ALTER TABLE engine.idempotency_keys ALTER COLUMN response TYPE json USING response::json;
CREATE INDEX idempotency_keys_created_idx ON engine.idempotency_keys (created_at);
