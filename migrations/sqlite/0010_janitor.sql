-- What the janitor (src/core/janitor.rs) needs to delete what can no longer matter, in small
-- batches, without scanning whole tables.

-- An email's link dies with its token: the outbox row goes when its link expires. Rows queued
-- before this migration get the longest link lifetime (an activation link's 48 hours).
ALTER TABLE outbox ADD COLUMN expires_at BIGINT;
UPDATE outbox SET expires_at = created_at + 172800000;
CREATE INDEX outbox_expires ON outbox (expires_at);
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- Sessions by the time they ended (expired or revoked); their refresh tokens go with them.
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE INDEX password_resets_expires ON password_resets (expires_at);
CREATE INDEX activation_tokens_expires ON activation_tokens (expires_at);
CREATE INDEX audit_events_created ON audit_events (created_at);

-- Work that one node at a time does (the janitor): the node named `holder` has it until `held_until`
-- (Unix milliseconds), and renews it while it works; once that has passed, any node may take it.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    held_until BIGINT NOT NULL
);
