-- A token has at most one successor: a rotation claims the token under its row lock and only
-- while `used_at` is unset (PostgreSQL checks that again on the row it waited for), so a second
-- claim finds it used. The unique index on `replaces` (0009) said the same as a constraint, at
-- the price of an index entry at a random place for every rotation, and one more for every
-- update of a token that was not HOT.
DROP INDEX refresh_tokens_replaces;

-- Rotation updates the token it replaces (`used_at`, `replaced_by`), a row inserted moments
-- before. With free space left in each page, that update stays in the page (HOT) and writes no
-- index entry; in full pages two thirds of them wrote one into each index.
ALTER TABLE refresh_tokens SET (fillfactor = 70);
