-- A token is replaced at most once: the rotation's row lock already ensures it, and this makes
-- it a constraint of the data, as on SQLite.
CREATE UNIQUE INDEX refresh_tokens_replaces ON refresh_tokens (replaces);
