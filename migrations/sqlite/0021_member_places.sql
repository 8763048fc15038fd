-- A member search at a million members (issue 18): each member gets a place, a number that
-- follows its organization's surname order (nazwisko_sort, id), inside a range of numbers of
-- the organization's own (member_ranges.base << 40 onwards). The trigram index is keyed by
-- place, so the hits of a search come out of the index already in surname order, within the
-- organization: the first page by surname and the count of hits are read from the index alone,
-- with no member row read per hit. Places keep gaps between them; a member added, or moved by
-- a new surname, takes the middle of its gap, and a full neighbourhood is spread out again
-- (store/sqlite.rs, `place_members`). Every member committed has a place: rows written before
-- this migration get theirs at the next start, before the server listens.
--
-- The index holds no copy of the text (contentless, deletable by place), where the index it
-- replaces read the member row for each hit and matched the text again.
DROP TRIGGER members_search_insert;
DROP TRIGGER members_search_delete;
DROP TRIGGER members_search_update;
DROP TABLE members_search;

CREATE TABLE member_ranges (
    organization_id TEXT PRIMARY KEY REFERENCES organizations (id),
    base INTEGER NOT NULL UNIQUE
);

ALTER TABLE members ADD COLUMN place INTEGER;
CREATE UNIQUE INDEX members_by_place ON members (place);
CREATE INDEX members_unplaced ON members (organization_id) WHERE place IS NULL;

CREATE VIRTUAL TABLE member_places USING fts5(
    search,
    content = '',
    contentless_delete = 1,
    tokenize = 'trigram'
);

CREATE TRIGGER member_places_insert AFTER INSERT ON members WHEN new.place IS NOT NULL BEGIN
    INSERT INTO member_places (rowid, search) VALUES (new.place, new.search);
END;

CREATE TRIGGER member_places_delete AFTER DELETE ON members WHEN old.place IS NOT NULL BEGIN
    DELETE FROM member_places WHERE rowid = old.place;
END;

CREATE TRIGGER member_places_update AFTER UPDATE OF place, search ON members
WHEN old.place IS NOT new.place OR old.search IS NOT new.search BEGIN
    DELETE FROM member_places WHERE rowid = old.place;
    INSERT INTO member_places (rowid, search) SELECT new.place, new.search WHERE new.place IS NOT NULL;
END;
