-- A member search reads only what it needs: the trigram index moves from the wide members
-- table to a narrow one of (id, organization_id, nazwisko_sort, search), kept in step by
-- statement-level triggers. A search's hits must be read from the heap (LIKE through a trigram
-- index is always rechecked), and what that costs is how many pages hold them: written in
-- `(organization_id, nazwisko_sort, id)` order, as this migration and every large import
-- write it, the hits of a surname lie together in a few pages of a narrow table, where in the
-- members table they were spread over thousands (measured on a million members: about 3x the
-- searches a second; the same narrow table in random order was no faster than the members
-- table, see bench/NOTES.md, issue 18, seventh session).

-- Members are written by no one else until the copy and its triggers are in place (nodes
-- still on the previous version wait, reads go on): a member written in between would be
-- missing from the copy or stale in it.
LOCK TABLE members IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE member_search (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    nazwisko_sort TEXT COLLATE "C",
    search TEXT NOT NULL
);

INSERT INTO member_search (id, organization_id, nazwisko_sort, search)
SELECT id, organization_id, nazwisko_sort, search FROM members
ORDER BY organization_id, nazwisko_sort, id;

CREATE INDEX member_search_trgm ON member_search USING gin (search gin_trgm_ops)
    WITH (gin_pending_list_limit = 256);

CREATE FUNCTION member_search_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO member_search (id, organization_id, nazwisko_sort, search)
        SELECT id, organization_id, nazwisko_sort, search FROM added
        ORDER BY organization_id, nazwisko_sort, id;
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM member_search s USING removed r WHERE s.id = r.id;
    ELSE
        -- Only rows whose searched or sorted values changed (most edits change neither).
        UPDATE member_search s
        SET organization_id = a.organization_id, nazwisko_sort = a.nazwisko_sort, search = a.search
        FROM added a
        WHERE s.id = a.id
          AND (s.organization_id, s.nazwisko_sort, s.search)
              IS DISTINCT FROM (a.organization_id, a.nazwisko_sort, a.search);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER member_search_insert AFTER INSERT ON members
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION member_search_change();
CREATE TRIGGER member_search_delete AFTER DELETE ON members
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION member_search_change();
CREATE TRIGGER member_search_update AFTER UPDATE ON members
    REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION member_search_change();

ANALYZE member_search;

-- Last: dropping it locks out the members table's readers until this migration commits.
DROP INDEX members_search_trgm;
