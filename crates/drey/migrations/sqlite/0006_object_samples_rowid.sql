-- object_samples as a rowid table: a row of ~1 KB of tables is too big for a WITHOUT ROWID
-- table's pages (each spilled to an overflow page of its own), which made keeping tables
-- in every ingest registration cost about twice what it does as a rowid table.
CREATE TABLE object_samples_rowid (
    object_id TEXT NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    init_object_id TEXT NOT NULL DEFAULT '',
    tables BLOB NOT NULL,
    PRIMARY KEY (object_id, init_object_id)
);
INSERT INTO object_samples_rowid (object_id, init_object_id, tables)
    SELECT object_id, init_object_id, tables FROM object_samples;
DROP TABLE object_samples;
ALTER TABLE object_samples_rowid RENAME TO object_samples;
