-- Parallel grain writers (uncompressed flows). A job is one piece of work shared by any
-- number of writer processes started with its id: its spec (flow, format, frame count,
-- timing) and its frames cut into chunks, each claimed by one writer at a time under a
-- lease. A chunk whose writer died is claimed again when the lease expires; the index's
-- segment non-overlap rule keeps every frame stored once even when two writers did it.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    flow_id TEXT NOT NULL,
    spec TEXT NOT NULL,
    chunks BIGINT NOT NULL,
    created_unix_ns BIGINT NOT NULL
);

CREATE TABLE job_chunks (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    chunk BIGINT NOT NULL,
    owner TEXT,
    lease_until_unix_ns BIGINT NOT NULL DEFAULT 0,
    done_unix_ns BIGINT,
    PRIMARY KEY (job_id, chunk)
);
