-- Sample tables of segment objects (drey_core::media::tables), written by the first MP4
-- export that reads an object, so later exports plan without reading the segment again.
-- Keyed by object and init object ('' for MPEG-TS): an fMP4 segment's tables depend on
-- its init segment. Objects never change, so neither does a row; it goes with its object.
CREATE TABLE object_samples (
    object_id TEXT NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    init_object_id TEXT NOT NULL DEFAULT '',
    tables BYTEA NOT NULL,
    PRIMARY KEY (object_id, init_object_id)
);
