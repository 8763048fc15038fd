-- Every rotation wrote an entry of `refresh_tokens_session` at the end of its session's run, a
-- leaf of that index at a random place (issue 18, bench/NOTES.md). The index only served the
-- janitor and the foreign key's `ON DELETE CASCADE`; rotation finds tokens by their hash.
--
-- A session's tokens are one chain: the token issued with the session (`replaces` NULL) and each
-- successor, named by its predecessor's `replaced_by` (0006, 0008). Only the chains' first tokens
-- are indexed by session, in a partial index that a rotation never writes (its update of the
-- replaced token changes no column the index names, so it stays HOT); the janitor and an
-- account's deletion follow each chain from there (`sql::token_chains`). Tokens from before 0008
-- have no `replaces` and are each a first token of their own, so every token is still found.
--
-- Without an index of every token by session, the cascade would read the whole table for each
-- session deleted, so the foreign key goes: the janitor deletes a session's tokens before the
-- session, and deleting an account deletes its sessions' tokens first (`delete_account`).
ALTER TABLE refresh_tokens DROP CONSTRAINT refresh_tokens_session_id_fkey;
DROP INDEX refresh_tokens_session;
-- A token whose predecessor is gone (an earlier janitor deleted an ended session's tokens in
-- no particular order, and this upgrade came between two of its batches) begins a chain of its
-- own, or it could not be found.
UPDATE refresh_tokens SET replaces = NULL
WHERE replaces IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM refresh_tokens p WHERE p.token_hash = refresh_tokens.replaces);
CREATE INDEX refresh_tokens_first ON refresh_tokens (session_id) WHERE replaces IS NULL;
