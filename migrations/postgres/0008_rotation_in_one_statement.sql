-- Which token a refresh token replaced (its hash): the other end of `replaced_by`. On SQLite a
-- trigger keyed on this column performs the rotation; PostgreSQL's rotation is one CTE.
ALTER TABLE refresh_tokens ADD COLUMN replaces TEXT;
