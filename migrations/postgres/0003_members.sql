-- The member register of seed 001. `search` holds the lower-cased, NFKC-normalised text that
-- `q` matches (imie, nazwisko, miejscowosc, email), so search needs no function calls per row.
CREATE TABLE members (
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
    CONSTRAINT members_pesel_unique UNIQUE (organization_id, pesel)
);
CREATE INDEX members_by_nazwisko ON members (organization_id, nazwisko, id);
CREATE INDEX members_by_created ON members (organization_id, created_at, id);
CREATE INDEX members_by_wojewodztwo ON members (organization_id, wojewodztwo, nazwisko, id);
