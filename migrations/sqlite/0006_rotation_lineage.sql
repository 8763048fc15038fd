-- Which token replaced a used refresh token (its hash). A rotation marks the token it claims
-- with its successor's hash, so the statements after the claim can tell that this rotation,
-- and not an earlier one, claimed it; it also records the chain of each session.
ALTER TABLE refresh_tokens ADD COLUMN replaced_by TEXT;
