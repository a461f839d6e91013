-- drey index schema (SQLite). Times are nanoseconds: *_ns on a flow timeline, *_unix_ns wall clock.
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

CREATE TABLE sources (
    id TEXT PRIMARY KEY,
    format TEXT NOT NULL,
    label TEXT,
    created_unix_ns INTEGER NOT NULL,
    updated_unix_ns INTEGER NOT NULL,
    version TEXT NOT NULL,
    doc TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE flows (
    id TEXT PRIMARY KEY,
    source_id TEXT NOT NULL REFERENCES sources(id),
    format TEXT NOT NULL,
    codec TEXT,
    container TEXT,
    label TEXT,
    frame_width INTEGER,
    frame_height INTEGER,
    read_only INTEGER NOT NULL DEFAULT 0,
    created_unix_ns INTEGER NOT NULL,
    updated_unix_ns INTEGER NOT NULL,
    segments_updated_unix_ns INTEGER,
    version TEXT NOT NULL,
    doc TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX flows_source ON flows(source_id);

CREATE TABLE flow_collection (
    parent_id TEXT NOT NULL,
    child_id TEXT NOT NULL,
    PRIMARY KEY (parent_id, child_id)
) WITHOUT ROWID;
CREATE INDEX flow_collection_child ON flow_collection(child_id);

-- state: allocated (id handed out, bytes not yet seen), stored (bytes verified in the
-- object store), deleting (claimed by garbage collection; never referenced again).
-- gc_after_unix_ns: when garbage collection may look at the object; NULL while referenced.
CREATE TABLE objects (
    id TEXT PRIMARY KEY,
    flow_id TEXT NOT NULL,
    state TEXT NOT NULL,
    controlled INTEGER NOT NULL DEFAULT 1,
    created_unix_ns INTEGER NOT NULL,
    gc_after_unix_ns INTEGER,
    size INTEGER,
    content_type TEXT,
    is_init INTEGER,
    first_flow_id TEXT,
    key_frame_count INTEGER,
    object_start_ns INTEGER,
    object_end_ns INTEGER,
    external_urls TEXT
) WITHOUT ROWID;
CREATE INDEX objects_gc ON objects(gc_after_unix_ns) WHERE gc_after_unix_ns IS NOT NULL;

-- Segments are half-open [start_ns, end_ns) on the flow timeline. The primary key is the
-- range-scan index; non-overlap is enforced inside the single write transaction.
CREATE TABLE segments (
    flow_id TEXT NOT NULL REFERENCES flows(id),
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    object_id TEXT NOT NULL REFERENCES objects(id),
    init_object_id TEXT REFERENCES objects(id),
    ts_offset_ns INTEGER,
    last_duration_ns INTEGER,
    object_start_ns INTEGER,
    object_end_ns INTEGER,
    sample_offset INTEGER,
    sample_count INTEGER,
    key_frame_count INTEGER,
    PRIMARY KEY (flow_id, start_ns),
    CHECK (end_ns > start_ns)
) WITHOUT ROWID;
CREATE INDEX segments_object ON segments(object_id);
CREATE INDEX segments_init_object ON segments(init_object_id) WHERE init_object_id IS NOT NULL;

CREATE TABLE delete_requests (
    id TEXT PRIMARY KEY,
    flow_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_unix_ns INTEGER NOT NULL,
    lease_until_unix_ns INTEGER NOT NULL,
    doc TEXT NOT NULL
) WITHOUT ROWID;
