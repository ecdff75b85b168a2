-- People who sign in to the browser pages (/app). A sign-in issues the same HS256 JWT
-- the REST API takes, kept in an HttpOnly SameSite=Strict cookie; this table only
-- answers "who is this, which tenant, which roles" at sign-in.
--
-- The user name is unique across tenants so the sign-in form needs no tenant field.
-- Passwords are stored as PHC strings (argon2id with its salt and parameters), never
-- in a form that can be reversed. Read and written only by the engine's admin
-- connection, before a tenant is known; the runtime role has no access at all.
CREATE TABLE engine.web_users (
    username      text PRIMARY KEY CHECK (username = lower(username) AND length(username) BETWEEN 1 AND 100),
    tenant_id     uuid NOT NULL,
    display_name  text NOT NULL,
    password_hash text NOT NULL,
    roles         text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz
);
CREATE INDEX web_users_tenant_idx ON engine.web_users (tenant_id);
ALTER TABLE engine.web_users ENABLE ROW LEVEL SECURITY;
