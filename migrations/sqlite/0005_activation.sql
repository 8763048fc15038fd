-- Activation links of company sign-ups: stored hashed, single use, 48 hours.
CREATE TABLE activation_tokens (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX activation_tokens_account ON activation_tokens (account_id);
