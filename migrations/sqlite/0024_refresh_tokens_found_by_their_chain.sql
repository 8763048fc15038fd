-- Every rotation wrote an entry of `refresh_tokens_session` at the end of its session's run, a
-- leaf of that index at a random place: of a rotation's statement, about a third of SQLite's time
-- (bench/NOTES.md, issue 18). The index only served the janitor and the foreign key's
-- `ON DELETE CASCADE`; rotation finds tokens by their hash.
--
-- A session's tokens are one chain: the token issued with the session (`replaces` NULL) and each
-- successor, named by its predecessor's `replaced_by` (0006, 0008). Only the chains' first tokens
-- are indexed by session, in a partial index that a rotation never writes; the janitor and an
-- account's deletion follow each chain from there (`sql::token_chains`). Tokens from before 0008
-- have no `replaces` and are each a first token of their own, so every token is still found.
--
-- Without an index of every token by session, the cascade would read the whole table for each
-- session deleted: SQLite cannot drop a foreign key, so the table is made again without it. The
-- janitor deletes a session's tokens before the session, and deleting an account deletes its
-- sessions' tokens first (`delete_account`).
CREATE TABLE refresh_tokens_chained (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    replaced_by TEXT,
    replaces TEXT
);
INSERT INTO refresh_tokens_chained
    (token_hash, session_id, created_at, expires_at, used_at, replaced_by, replaces)
SELECT token_hash, session_id, created_at, expires_at, used_at, replaced_by, replaces
FROM refresh_tokens;
DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_chained RENAME TO refresh_tokens;
-- A token whose predecessor is gone (an earlier janitor deleted an ended session's tokens in
-- no particular order, and this upgrade came between two of its batches) begins a chain of its
-- own, or it could not be found.
UPDATE refresh_tokens SET replaces = NULL
WHERE replaces IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM refresh_tokens p WHERE p.token_hash = refresh_tokens.replaces);
CREATE INDEX refresh_tokens_first ON refresh_tokens (session_id) WHERE replaces IS NULL;

-- As in 0022 (dropped with the old table).
CREATE TRIGGER refresh_tokens_rotate AFTER INSERT ON refresh_tokens
WHEN new.replaces IS NOT NULL BEGIN
    UPDATE refresh_tokens SET used_at = new.created_at, replaced_by = new.token_hash
    WHERE token_hash = new.replaces AND replaced_by IS NULL;
    SELECT RAISE(ABORT, 'a refresh token has one successor') WHERE changes() = 0;
    UPDATE sessions SET last_used_at = new.created_at WHERE id = new.session_id;
END;
