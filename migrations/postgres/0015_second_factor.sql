-- A second factor (SPEC §13). An account has at most one TOTP factor: `secret` is its base32
-- secret sealed under the data key (src/crypto/datakey.rs, bound to the account), `confirmed_at`
-- is NULL until a first code proved the authenticator has it, and `last_step` is the last time
-- step whose code was accepted, so that no code is accepted twice.
CREATE TABLE totp_factors (
    account_id TEXT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_step BIGINT NOT NULL DEFAULT 0
);

-- Recovery codes: SHA-256 of each (80 random bits), spent once.
CREATE TABLE recovery_codes (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (account_id, code_hash)
);

-- The ticket a password login gets when a second factor is due (`mfaToken`): its SHA-256, five
-- minutes, five wrong codes, used once.
CREATE TABLE mfa_tickets (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    used_at BIGINT
);
CREATE INDEX mfa_tickets_expires ON mfa_tickets (expires_at);

-- How a session's holder proved who they are (RFC 8176 `amr`, space-separated), carried into
-- every access token the session issues.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
