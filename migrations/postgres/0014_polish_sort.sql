-- Member lists sort in Polish alphabetical order (SPEC §4: Dąbrowski before Dudek, Łukasz after
-- Lucyna), the same on both backends: each sortable text has a sort key made by brama
-- (domain::sort_key: one ASCII character per letter in the order of the Polish alphabet),
-- compared byte by byte. Rows written before this get their keys at the next start.
ALTER TABLE members ADD COLUMN imie_sort TEXT COLLATE "C";
ALTER TABLE members ADD COLUMN nazwisko_sort TEXT COLLATE "C";
ALTER TABLE members ADD COLUMN miejscowosc_sort TEXT COLLATE "C";
ALTER TABLE members ADD COLUMN wojewodztwo_sort TEXT COLLATE "C";
DROP INDEX members_by_nazwisko;
DROP INDEX members_by_wojewodztwo;
CREATE INDEX members_by_nazwisko ON members (organization_id, nazwisko_sort, id);
CREATE INDEX members_by_wojewodztwo ON members (organization_id, wojewodztwo, nazwisko_sort, id);
