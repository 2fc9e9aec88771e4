-- Tenants and their API keys. A tenant id is a subject-safe slug (it travels in NATS subjects);
-- 'zf-system' is reserved for records that belong to no tenant.
CREATE TABLE tenants (
    id         text PRIMARY KEY
               CONSTRAINT tenants_id_slug CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$')
               CONSTRAINT tenants_id_not_reserved CHECK (id <> 'zf-system'),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Keys are stored as SHA-256 of the whole key; `prefix` is the start of the key, shown to
-- humans to tell keys apart. A revoked key stays for the audit trail.
CREATE TABLE api_keys (
    id         uuid PRIMARY KEY,
    tenant_id  text NOT NULL REFERENCES tenants (id),
    name       text NOT NULL,
    prefix     text NOT NULL,
    key_hash   bytea NOT NULL CONSTRAINT api_keys_hash_unique UNIQUE,
    scopes     text[] NOT NULL DEFAULT '{admin}',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);
