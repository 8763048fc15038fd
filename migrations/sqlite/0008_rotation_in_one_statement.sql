-- A rotation in one statement: the store INSERTs the successor with `replaces` naming the token
-- it replaces, selected only if that token is claimable; this trigger then marks the old token
-- used (aborting the statement if it was not claimable after all) and touches the session.
-- One statement is one command to sqlx's SQLite worker thread, one row back, and atomic.
ALTER TABLE refresh_tokens ADD COLUMN replaces TEXT;

CREATE TRIGGER refresh_tokens_rotate AFTER INSERT ON refresh_tokens
WHEN new.replaces IS NOT NULL BEGIN
    UPDATE refresh_tokens SET used_at = new.created_at, replaced_by = new.token_hash
    WHERE token_hash = new.replaces AND used_at IS NULL;
    SELECT RAISE(ABORT, 'rotation of a token that is not claimable') WHERE changes() = 0;
    UPDATE sessions SET last_used_at = new.created_at WHERE id = new.session_id;
END;
