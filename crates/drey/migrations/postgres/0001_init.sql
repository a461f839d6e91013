-- drey index schema (PostgreSQL). Times are nanoseconds: *_ns on a flow timeline, *_unix_ns wall clock.
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE sources (
    id TEXT PRIMARY KEY,
    format TEXT NOT NULL,
    label TEXT,
    created_unix_ns BIGINT NOT NULL,
    updated_unix_ns BIGINT NOT NULL,
    version TEXT NOT NULL,
    doc TEXT NOT NULL
);

CREATE TABLE flows (
    id TEXT PRIMARY KEY,
    source_id TEXT NOT NULL REFERENCES sources(id),
    format TEXT NOT NULL,
    codec TEXT,
    container TEXT,
    label TEXT,
    frame_width BIGINT,
    frame_height BIGINT,
    read_only BOOLEAN NOT NULL DEFAULT FALSE,
    created_unix_ns BIGINT NOT NULL,
    updated_unix_ns BIGINT NOT NULL,
    segments_updated_unix_ns BIGINT,
    version TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX flows_source ON flows(source_id);

CREATE TABLE flow_collection (
    parent_id TEXT NOT NULL,
    child_id TEXT NOT NULL,
    PRIMARY KEY (parent_id, child_id)
);
CREATE INDEX flow_collection_child ON flow_collection(child_id);

CREATE TABLE objects (
    id TEXT PRIMARY KEY,
    flow_id TEXT NOT NULL,
    state TEXT NOT NULL,
    controlled BOOLEAN NOT NULL DEFAULT TRUE,
    created_unix_ns BIGINT NOT NULL,
    gc_after_unix_ns BIGINT,
    size BIGINT,
    content_type TEXT,
    is_init BOOLEAN,
    first_flow_id TEXT,
    key_frame_count BIGINT,
    object_start_ns BIGINT,
    object_end_ns BIGINT,
    external_urls TEXT
);
CREATE INDEX objects_gc ON objects(gc_after_unix_ns) WHERE gc_after_unix_ns IS NOT NULL;

CREATE TABLE segments (
    flow_id TEXT NOT NULL REFERENCES flows(id),
    start_ns BIGINT NOT NULL,
    end_ns BIGINT NOT NULL,
    object_id TEXT NOT NULL REFERENCES objects(id),
    init_object_id TEXT REFERENCES objects(id),
    ts_offset_ns BIGINT,
    last_duration_ns BIGINT,
    object_start_ns BIGINT,
    object_end_ns BIGINT,
    sample_offset BIGINT,
    sample_count BIGINT,
    key_frame_count BIGINT,
    PRIMARY KEY (flow_id, start_ns),
    CHECK (end_ns > start_ns)
);
CREATE INDEX segments_object ON segments(object_id);
CREATE INDEX segments_init_object ON segments(init_object_id) WHERE init_object_id IS NOT NULL;

CREATE TABLE delete_requests (
    id TEXT PRIMARY KEY,
    flow_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_unix_ns BIGINT NOT NULL,
    lease_until_unix_ns BIGINT NOT NULL,
    doc TEXT NOT NULL
);
