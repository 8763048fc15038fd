-- The trigger of 0008 re-checked that the replaced token was unused and aborted the statement
-- otherwise: a second copy of the "claimable" rule, which now lives once (src/store/sql.rs,
-- `claimable`, in the SELECT that feeds the INSERT). What the check guarded, that a token is
-- replaced at most once, is now a constraint of the data: one successor per token.
CREATE UNIQUE INDEX refresh_tokens_replaces ON refresh_tokens (replaces);

DROP TRIGGER refresh_tokens_rotate;
CREATE TRIGGER refresh_tokens_rotate AFTER INSERT ON refresh_tokens
WHEN new.replaces IS NOT NULL BEGIN
    UPDATE refresh_tokens SET used_at = new.created_at, replaced_by = new.token_hash
    WHERE token_hash = new.replaces;
    UPDATE sessions SET last_used_at = new.created_at WHERE id = new.session_id;
END;
