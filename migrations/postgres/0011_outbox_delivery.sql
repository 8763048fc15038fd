-- Every email goes through the outbox. With SMTP set, a delivery task on some node claims the
-- rows that are due (`next_attempt_at`), sends them and marks them sent, or, when the server
-- refuses, counts the attempt and sets the next one (backoff, for at most 24 hours or until
-- the email's link expires). Without SMTP, rows wait with `next_attempt_at` NULL for the
-- operator (`brama outbox`).
ALTER TABLE outbox ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN next_attempt_at BIGINT;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
-- When delivery was given up (the 24 hours passed, the link expired, or the address is unusable).
ALTER TABLE outbox ADD COLUMN failed_at BIGINT;
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
