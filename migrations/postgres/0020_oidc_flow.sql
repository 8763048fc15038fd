-- OpenID Connect's sign-ins (SPEC §14).
--
-- A client's grant is a session of its own: `client_id` names the client (NULL for brama's own
-- sessions, the page's and API clients'), `scope` what was granted, `parent_id` the browser
-- session it came from (the ID token's `sid`; a logout there ends the grants too). Its refresh
-- tokens rotate in `refresh_tokens` like any other, but only at the token endpoint and only for
-- their client: the rotation matches `client_id`.
ALTER TABLE sessions ADD COLUMN client_id TEXT;
ALTER TABLE sessions ADD COLUMN scope TEXT;
ALTER TABLE sessions ADD COLUMN parent_id TEXT;
-- Partial: brama's own sessions (no parent, no client) get no entries, so the rotation's update
-- of a session row pays for no extra index.
CREATE INDEX sessions_parent ON sessions (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX sessions_client ON sessions (client_id) WHERE client_id IS NOT NULL;

-- An authorization request parked while its person logs in or consents; the page carries only
-- its random id (never a cookie), and it lives 10 minutes.
CREATE TABLE oidc_requests (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    state TEXT,
    nonce TEXT,
    code_challenge TEXT,
    -- A login is asked for after this time (prompt=login, max_age): an older one does not do.
    login_after BIGINT,
    -- prompt=consent: the consent screen even where consent was given before.
    consent_asked BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oidc_requests_expiry ON oidc_requests (expires_at);

-- Authorization codes: 60 s, single use, bound to client, redirect URI and PKCE challenge; only
-- the SHA-256 is kept. `grant_session_id` is what the exchange opened, revoked if the code is
-- presented again.
CREATE TABLE oidc_codes (
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    sso_session_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT,
    auth_time BIGINT NOT NULL,
    amr TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    grant_session_id TEXT
);
CREATE INDEX oidc_codes_expiry ON oidc_codes (expires_at);

-- What a person allowed a client that is not first-party: asked again only for more.
CREATE TABLE oidc_consents (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, client_id)
);
