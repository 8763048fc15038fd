-- The organization's OpenID Connect clients (SPEC §14): the applications that sign their people
-- in through brama. The id is the client_id; a confidential client's secret is stored only as
-- its SHA-256 (it is 256 random bits, shown once), a public client has none. URI lists are JSON
-- arrays, matched exactly.
CREATE TABLE oidc_clients (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    secret_hash TEXT,
    redirect_uris TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    first_party BIGINT NOT NULL DEFAULT 0,
    id_token_alg TEXT NOT NULL DEFAULT 'RS256',
    created_at BIGINT NOT NULL
);
CREATE INDEX oidc_clients_organization ON oidc_clients (organization_id, created_at);
