-- Organizations, accounts, sessions, refresh tokens, signing keys, secrets and audit events.
-- Ids are UUIDv7 text and times are Unix milliseconds, so the SQL is the same on both backends.
CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    state BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    owner_bootstrapped BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    username TEXT,
    username_norm TEXT UNIQUE,
    email TEXT NOT NULL,
    email_norm TEXT NOT NULL UNIQUE,
    phone TEXT,
    phone_norm TEXT UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    surname TEXT NOT NULL DEFAULT '',
    password_hash TEXT,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX accounts_organization ON accounts (organization_id);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    user_agent TEXT,
    ip TEXT,
    revoked_at BIGINT,
    revoke_reason TEXT
);
CREATE INDEX sessions_account ON sessions (account_id, revoked_at);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    private_key TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    organization_id TEXT,
    actor_id TEXT,
    action TEXT NOT NULL,
    target TEXT,
    ip TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX audit_events_organization ON audit_events (organization_id, created_at);
