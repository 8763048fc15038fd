-- A pending change of an account's email address (SPEC §15): the new address, confirmed by the
-- link sent to it (SHA-256 of the token, 24 hours, single use). The address changes only then.
CREATE TABLE email_changes (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    new_email TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX email_changes_account ON email_changes (account_id);
CREATE INDEX email_changes_expires ON email_changes (expires_at);
