-- Substring search over members.search through a trigram index (pg_trgm is a trusted
-- extension since PostgreSQL 13: the database owner may create it).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX members_search_trgm ON members USING gin (search gin_trgm_ops);
