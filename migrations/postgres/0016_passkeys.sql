-- Passkeys (SPEC §13, WebAuthn level 2). `credential` is webauthn-rs's `Passkey` as JSON: the
-- credential id, its public key (COSE) and signature counter, nothing secret. `credential_id`
-- (base64url) is unique across all accounts: a credential is registered to one account only.
-- `sign_count` is the authenticator's signature counter at the last use, read under the row's
-- lock when the next use is checked (a counter that does not go up is a cloned authenticator).
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    credential TEXT NOT NULL,
    sign_count BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX passkeys_account ON passkeys (account_id, created_at);

-- A WebAuthn ceremony between its start and its finish, so that any node can finish what another
-- started. Found by the SHA-256 of its challenge (the browser signs the challenge into the
-- response it sends back); `kind` is `register`, `mfa` (second step of a login, bound to the
-- ticket) or `login` (passwordless). Used once (deleted when finished), five minutes.
CREATE TABLE webauthn_ceremonies (
    challenge_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    account_id TEXT REFERENCES accounts (id) ON DELETE CASCADE,
    ticket_hash TEXT,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_expires ON webauthn_ceremonies (expires_at);
