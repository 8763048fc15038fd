-- The unique key on (organization_id, pesel) of 0003 goes (PostgreSQL dropped it in 0012). Since
-- 0012 `pesel` holds a ciphertext with a random nonce, which never collides: the blind index
-- (`members_pesel_index`) is what keeps a PESEL unique within its organization. The old key's
-- index was still written for every member, at a random place (the key is a ciphertext): the
-- largest index of a register (137 MiB of 1.3 GiB at a million members) and the one a large
-- import could not drop and build again sorted, because SQLite cannot drop a table's own
-- constraint without making the table again (issue 18). So the table is made again, in
-- SQLite's documented order: a new table, the rows copied with their row ids, the old table
-- dropped (its indexes and triggers with it; a dropped table fires none), the new one renamed,
-- then its indexes and triggers as they were. A register of a million members takes this once,
-- at the first start after the upgrade (15 s measured). The copy is written before the old table
-- is dropped, so the file grows by it (1.3 to 1.8 GB at a million members); SQLite reuses the
-- pages freed, which `secure_delete` has zeroed. A million-member import measured 54.7 s before
-- and 42.7 s after, on one machine.
CREATE TABLE members_rebuilt (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    imie TEXT NOT NULL,
    nazwisko TEXT NOT NULL,
    wyksztalcenie TEXT NOT NULL,
    pesel TEXT NOT NULL,
    wojewodztwo TEXT NOT NULL,
    miejscowosc TEXT NOT NULL,
    ulica TEXT NOT NULL,
    nrdomulokalu TEXT NOT NULL,
    kodpocztowy TEXT NOT NULL,
    email TEXT NOT NULL,
    tel TEXT NOT NULL,
    search TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    pesel_index TEXT,
    imie_sort TEXT,
    nazwisko_sort TEXT,
    miejscowosc_sort TEXT,
    wojewodztwo_sort TEXT,
    place INTEGER
);

INSERT INTO members_rebuilt (
    rowid, id, organization_id, imie, nazwisko, wyksztalcenie, pesel, wojewodztwo, miejscowosc,
    ulica, nrdomulokalu, kodpocztowy, email, tel, search, version, created_by, created_at,
    updated_at, pesel_index, imie_sort, nazwisko_sort, miejscowosc_sort, wojewodztwo_sort, place
)
SELECT
    rowid, id, organization_id, imie, nazwisko, wyksztalcenie, pesel, wojewodztwo, miejscowosc,
    ulica, nrdomulokalu, kodpocztowy, email, tel, search, version, created_by, created_at,
    updated_at, pesel_index, imie_sort, nazwisko_sort, miejscowosc_sort, wojewodztwo_sort, place
FROM members
ORDER BY rowid;

DROP TABLE members;
ALTER TABLE members_rebuilt RENAME TO members;

CREATE INDEX members_by_created ON members (organization_id, created_at, id);
CREATE UNIQUE INDEX members_pesel_index ON members (organization_id, pesel_index);
CREATE INDEX members_by_nazwisko ON members (organization_id, nazwisko_sort, id);
CREATE INDEX members_by_wojewodztwo ON members (organization_id, wojewodztwo, nazwisko_sort, id);
CREATE UNIQUE INDEX members_by_place ON members (place);
CREATE INDEX members_unplaced ON members (organization_id) WHERE place IS NULL;

CREATE TRIGGER members_count_insert AFTER INSERT ON members BEGIN
    UPDATE organizations SET member_count = member_count + 1 WHERE id = new.organization_id;
END;

CREATE TRIGGER members_count_delete AFTER DELETE ON members BEGIN
    UPDATE organizations SET member_count = member_count - 1 WHERE id = old.organization_id;
END;

CREATE TRIGGER members_count_move AFTER UPDATE OF organization_id ON members
WHEN old.organization_id <> new.organization_id BEGIN
    UPDATE organizations SET member_count = member_count - 1 WHERE id = old.organization_id;
    UPDATE organizations SET member_count = member_count + 1 WHERE id = new.organization_id;
END;

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
