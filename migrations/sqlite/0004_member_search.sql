-- Substring search over members.search through a trigram index: an FTS5 table that mirrors
-- the column (external content), kept in step by triggers.
CREATE VIRTUAL TABLE members_search USING fts5(
    search,
    content = 'members',
    content_rowid = 'rowid',
    tokenize = 'trigram'
);

CREATE TRIGGER members_search_insert AFTER INSERT ON members BEGIN
    INSERT INTO members_search (rowid, search) VALUES (new.rowid, new.search);
END;

CREATE TRIGGER members_search_delete AFTER DELETE ON members BEGIN
    INSERT INTO members_search (members_search, rowid, search) VALUES ('delete', old.rowid, old.search);
END;

CREATE TRIGGER members_search_update AFTER UPDATE OF search ON members BEGIN
    INSERT INTO members_search (members_search, rowid, search) VALUES ('delete', old.rowid, old.search);
    INSERT INTO members_search (rowid, search) VALUES (new.rowid, new.search);
END;

INSERT INTO members_search (members_search) VALUES ('rebuild');
