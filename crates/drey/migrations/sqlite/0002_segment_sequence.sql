-- HLS numbering (issue 4). Every segment gets `seq`, its registration ordinal in the flow
-- (the media sequence number of live playlists), and `disc`, its discontinuity ordinal: a
-- segment that does not continue its predecessor in time (a gap, another ts_offset or
-- another init object) opens a new one. Flows keep the counters, which never go back, so
-- numbers stay stable when old segments are deleted.
ALTER TABLE segments ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE segments ADD COLUMN disc INTEGER NOT NULL DEFAULT 0;
ALTER TABLE flows ADD COLUMN next_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE flows ADD COLUMN next_disc INTEGER NOT NULL DEFAULT 0;

WITH b AS (
    SELECT flow_id, start_ns,
        row_number() OVER w - 1 AS rn,
        CASE WHEN lag(end_ns) OVER w = start_ns
              AND lag(ts_offset_ns) OVER w IS ts_offset_ns
              AND lag(init_object_id) OVER w IS init_object_id
             THEN 0 ELSE 1 END AS brk
    FROM segments WINDOW w AS (PARTITION BY flow_id ORDER BY start_ns)
), c AS (
    SELECT flow_id, start_ns, rn,
        sum(brk) OVER (PARTITION BY flow_id ORDER BY start_ns) - 1 AS d
    FROM b
)
UPDATE segments SET seq = c.rn, disc = c.d
FROM c WHERE segments.flow_id = c.flow_id AND segments.start_ns = c.start_ns;

UPDATE flows SET
    next_seq = (SELECT count(*) FROM segments s WHERE s.flow_id = flows.id),
    next_disc = COALESCE((SELECT max(disc) + 1 FROM segments s WHERE s.flow_id = flows.id), 0);
