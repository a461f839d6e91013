//! The SQL shared by the SQLite and PostgreSQL indexes, written once as a macro that
//! expands into `impl Index` for each. Statements whose text differs between the two
//! (row locks, JSON batch expansion) are chosen with `pick!`; every bound value is a
//! type both drivers encode (i64, bool, text), and batches travel as one JSON text.

/// `pick!(pg, "postgres sql", "sqlite sql")`.
macro_rules! pick {
    ($pg:expr, $a:expr, $b:expr) => {
        if $pg { $a } else { $b }
    };
}
pub(crate) use pick;

macro_rules! impl_index {
    ($ty:ty, $db:ty, $kind:literal, $pg:literal) => {
        impl $ty {
            /// Marks allocated objects stored, with their sizes (a JSON batch `[{o, n}]`).
            const MARK_STORED: &'static str = pick!(
                $pg,
                "UPDATE objects SET state = 'stored', size = t.n FROM jsonb_to_recordset($1::jsonb) AS t(o text, n bigint) \
                 WHERE objects.id = t.o AND objects.state = 'allocated'",
                "UPDATE objects SET state = 'stored', size = t.n \
                 FROM (SELECT j.value ->> 'o' AS o, j.value ->> 'n' AS n FROM jsonb_each($1) j) AS t \
                 WHERE objects.id = t.o AND objects.state = 'allocated'"
            );

            /// Keeps sample tables (a JSON batch `[{o, i, x}]`, `x` hex): rows of objects the
            /// index does not hold are skipped, a key held already is replaced.
            const PUT_TABLES: &'static str = pick!(
                $pg,
                "INSERT INTO object_samples (object_id, init_object_id, tables) \
                 SELECT t.o, t.i, decode(t.x, 'hex') FROM jsonb_to_recordset($1::jsonb) AS t(o text, i text, x text) \
                 WHERE EXISTS (SELECT 1 FROM objects WHERE objects.id = t.o) \
                 ON CONFLICT (object_id, init_object_id) DO UPDATE SET tables = excluded.tables",
                "INSERT INTO object_samples (object_id, init_object_id, tables) \
                 SELECT j.value ->> 'o', j.value ->> 'i', unhex(j.value ->> 'x') FROM json_each($1) j \
                 WHERE EXISTS (SELECT 1 FROM objects WHERE objects.id = j.value ->> 'o') \
                 ON CONFLICT (object_id, init_object_id) DO UPDATE SET tables = excluded.tables"
            );

            async fn put_tables<'c, E>(e: E, rows: &[SampleTables]) -> Result<()>
            where
                E: sqlx::Executor<'c, Database = $db>,
            {
                if let Some(batch) = Self::tables_batch(rows) {
                    sqlx::query(Self::PUT_TABLES).bind(batch).execute(e).await?;
                }
                Ok(())
            }

            /// The [`Self::PUT_TABLES`] batch of `rows`, none when empty. The blobs travel
            /// hex-encoded in the JSON text. The same key twice in one statement is an error
            /// in PostgreSQL: the last one wins.
            fn tables_batch(rows: &[SampleTables]) -> Option<String> {
                let mut seen = std::collections::HashSet::new();
                let mut batch: Vec<serde_json::Value> = Vec::with_capacity(rows.len());
                for r in rows.iter().rev() {
                    if seen.insert((r.object_id.as_str(), r.init_object_id.as_str())) {
                        batch.push(serde_json::json!({
                            "o": r.object_id,
                            "i": r.init_object_id,
                            "x": drey_core::sigv4::hex(&r.tables),
                        }));
                    }
                }
                (!batch.is_empty()).then(|| serde_json::Value::Array(batch).to_string())
            }

            fn object_from_row(r: &<$db as sqlx::Database>::Row) -> Result<ObjectRow> {
                use sqlx::Row;
                let urls: Option<String> = r.try_get("external_urls")?;
                Ok(ObjectRow {
                    id: r.try_get("id")?,
                    flow_id: r.try_get("flow_id")?,
                    state: ObjectState::parse(&r.try_get::<String, _>("state")?)?,
                    controlled: r.try_get("controlled")?,
                    created_unix_ns: r.try_get("created_unix_ns")?,
                    size: r.try_get("size")?,
                    content_type: r.try_get("content_type")?,
                    is_init: r.try_get("is_init")?,
                    first_flow_id: r.try_get("first_flow_id")?,
                    key_frame_count: r.try_get("key_frame_count")?,
                    object_start_ns: r.try_get("object_start_ns")?,
                    object_end_ns: r.try_get("object_end_ns")?,
                    external_urls: urls.map(|u| parse_json(&u)).transpose()?,
                })
            }

            fn segment_from_row(r: &<$db as sqlx::Database>::Row) -> Result<SegmentRow> {
                use sqlx::Row;
                let urls: Option<String> = r.try_get("external_urls")?;
                Ok(SegmentRow {
                    start_ns: r.try_get("start_ns")?,
                    end_ns: r.try_get("end_ns")?,
                    object_id: r.try_get("object_id")?,
                    init_object_id: r.try_get("init_object_id")?,
                    ts_offset_ns: r.try_get("ts_offset_ns")?,
                    last_duration_ns: r.try_get("last_duration_ns")?,
                    object_start_ns: r.try_get("object_start_ns")?,
                    object_end_ns: r.try_get("object_end_ns")?,
                    sample_offset: r.try_get("sample_offset")?,
                    sample_count: r.try_get("sample_count")?,
                    key_frame_count: r.try_get("key_frame_count")?,
                    external_urls: urls.map(|u| parse_json(&u)).transpose()?,
                    seq: r.try_get("seq")?,
                    disc: r.try_get("disc")?,
                })
            }

            /// Where a scan for segments overlapping `[s, ..)` must start: the predecessor
            /// of `s` when it reaches past `s`, else `s` itself.
            async fn scan_from<'e, E>(ex: E, flow: &str, s: i64) -> Result<i64>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                use sqlx::Row;
                let prev = sqlx::query(
                    "SELECT start_ns, end_ns FROM segments WHERE flow_id = $1 AND start_ns < $2 \
                     ORDER BY start_ns DESC LIMIT 1",
                )
                .bind(flow)
                .bind(s)
                .fetch_optional(ex)
                .await?;
                Ok(match prev {
                    Some(r) if r.try_get::<i64, _>("end_ns")? > s => r.try_get("start_ns")?,
                    _ => s,
                })
            }

            async fn fill_flow(&self, row: &<$db as sqlx::Database>::Row) -> Result<Versioned<Flow>> {
                use sqlx::Row;
                let mut flow: Flow = parse_json(&row.try_get::<String, _>("doc")?)?;
                flow.created = Some(unix_ns_to_rfc3339(row.try_get("created_unix_ns")?));
                flow.metadata_updated = Some(unix_ns_to_rfc3339(row.try_get("updated_unix_ns")?));
                flow.segments_updated = row
                    .try_get::<Option<i64>, _>("segments_updated_unix_ns")?
                    .map(unix_ns_to_rfc3339);
                let parents = sqlx::query("SELECT parent_id FROM flow_collection WHERE child_id = $1 ORDER BY parent_id")
                    .bind(flow.id.to_string())
                    .fetch_all(self.read())
                    .await?;
                if !parents.is_empty() {
                    flow.collected_by = Some(
                        parents
                            .iter()
                            .map(|r| parse_id(&r.try_get::<String, _>("parent_id")?))
                            .collect::<Result<_>>()?,
                    );
                }
                Ok(Versioned {
                    value: flow,
                    version: row.try_get("version")?,
                })
            }

            async fn fill_source(&self, row: &<$db as sqlx::Database>::Row) -> Result<Versioned<Source>> {
                use sqlx::Row;
                let mut src: Source = parse_json(&row.try_get::<String, _>("doc")?)?;
                src.created = Some(unix_ns_to_rfc3339(row.try_get("created_unix_ns")?));
                src.updated = Some(unix_ns_to_rfc3339(row.try_get("updated_unix_ns")?));
                let id = src.id.to_string();
                let children = sqlx::query(
                    "SELECT DISTINCT c.source_id AS sid FROM flows p \
                     JOIN flow_collection fc ON fc.parent_id = p.id \
                     JOIN flows c ON c.id = fc.child_id \
                     WHERE p.source_id = $1 AND c.source_id <> $1 ORDER BY sid",
                )
                .bind(&id)
                .fetch_all(self.read())
                .await?;
                if !children.is_empty() {
                    src.source_collection = Some(
                        children
                            .iter()
                            .map(|r| {
                                Ok(CollectionItem {
                                    id: parse_id(&r.try_get::<String, _>("sid")?)?,
                                    role: None,
                                    container_mapping: None,
                                })
                            })
                            .collect::<Result<_>>()?,
                    );
                }
                let parents = sqlx::query(
                    "SELECT DISTINCT p.source_id AS sid FROM flows c \
                     JOIN flow_collection fc ON fc.child_id = c.id \
                     JOIN flows p ON p.id = fc.parent_id \
                     WHERE c.source_id = $1 AND p.source_id <> $1 ORDER BY sid",
                )
                .bind(&id)
                .fetch_all(self.read())
                .await?;
                if !parents.is_empty() {
                    src.collected_by = Some(
                        parents
                            .iter()
                            .map(|r| parse_id(&r.try_get::<String, _>("sid")?))
                            .collect::<Result<_>>()?,
                    );
                }
                Ok(Versioned {
                    value: src,
                    version: row.try_get("version")?,
                })
            }

            /// Marks a job chunk done if its owner still holds it.
            async fn finish_chunk<'e, E>(ex: E, c: &JobChunk<'_>, now: i64) -> Result<bool>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                let done = sqlx::query(
                    "UPDATE job_chunks SET done_unix_ns = $4 WHERE job_id = $1 AND chunk = $2 AND owner = $3 \
                     AND done_unix_ns IS NULL",
                )
                .bind(c.job)
                .bind(c.chunk)
                .bind(c.owner)
                .bind(now)
                .execute(ex)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            /// Registers segments (marking `stored` objects first) and, with `chunk`, marks that
            /// job chunk done, all in one transaction; says whether the chunk was finished.
            async fn register_tx(
                &self,
                flow_id: Id,
                stored: &[(String, i64)],
                tables: &[SampleTables],
                segments: &[SegmentRow],
                now: i64,
                chunk: Option<&JobChunk<'_>>,
            ) -> Result<(Vec<std::result::Result<(), SegmentRejection>>, bool)> {
                let flow = flow_id.to_string();
                let mut tx = self.write().begin_with(pick!($pg, "BEGIN", "BEGIN IMMEDIATE")).await?;
                if !stored.is_empty() {
                    let batch: Vec<serde_json::Value> = stored
                        .iter()
                        .map(|(id, size)| serde_json::json!({"o": id, "n": size}))
                        .collect();
                    sqlx::query(Self::MARK_STORED)
                        .bind(serde_json::Value::Array(batch).to_string())
                        .execute(&mut *tx)
                        .await?;
                }
                // Before the flow's lock is taken, so it is not held for this.
                Self::put_tables(&mut *tx, tables).await?;
                // The flow's write lock: concurrent registrations to one flow serialise here.
                let locked: Option<(i64, i64)> = sqlx::query_as(pick!(
                    $pg,
                    "SELECT next_seq, next_disc FROM flows WHERE id = $1 FOR UPDATE",
                    "SELECT next_seq, next_disc FROM flows WHERE id = $1"
                ))
                .bind(&flow)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((mut next_seq, mut next_disc)) = locked else {
                    return Err(IndexError::FlowNotFound(flow_id));
                };
                let mut ids: Vec<&str> = segments
                    .iter()
                    .flat_map(|s| std::iter::once(s.object_id.as_str()).chain(s.init_object_id.as_deref()))
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                let rows = sqlx::query(pick!(
                    $pg,
                    "SELECT * FROM objects WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)) ORDER BY id FOR UPDATE",
                    "SELECT * FROM objects WHERE id IN (SELECT value FROM json_each($1))"
                ))
                .bind(to_json(&ids)?)
                .fetch_all(&mut *tx)
                .await?;
                let objects: std::collections::HashMap<String, ObjectRow> = rows
                    .iter()
                    .map(|r| Self::object_from_row(r).map(|o| (o.id.clone(), o)))
                    .collect::<Result<_>>()?;
                let mut verdicts = plan::check_batch(&flow, segments, &objects);

                // Overlap with stored segments, for the survivors, in one statement.
                let probe: Vec<serde_json::Value> = verdicts
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_none())
                    .map(|(i, _)| serde_json::json!({"i": i, "s": segments[i].start_ns, "e": segments[i].end_ns}))
                    .collect();
                if !probe.is_empty() {
                    let clashes: Vec<i64> = sqlx::query_scalar(pick!(
                        $pg,
                        "SELECT t.i FROM jsonb_to_recordset($2::jsonb) AS t(i bigint, s bigint, e bigint) \
                         WHERE EXISTS (SELECT 1 FROM segments g WHERE g.flow_id = $1 AND g.start_ns >= t.s AND g.start_ns < t.e) \
                         OR (SELECT g.end_ns FROM segments g WHERE g.flow_id = $1 AND g.start_ns < t.s \
                             ORDER BY g.start_ns DESC LIMIT 1) > t.s",
                        "SELECT j.value ->> 'i' FROM jsonb_each($2) j \
                         WHERE EXISTS (SELECT 1 FROM segments g WHERE g.flow_id = $1 \
                             AND g.start_ns >= (j.value ->> 's') AND g.start_ns < (j.value ->> 'e')) \
                         OR (SELECT g.end_ns FROM segments g WHERE g.flow_id = $1 AND g.start_ns < (j.value ->> 's') \
                             ORDER BY g.start_ns DESC LIMIT 1) > (j.value ->> 's')"
                    ))
                    .bind(&flow)
                    .bind(serde_json::Value::Array(probe).to_string())
                    .fetch_all(&mut *tx)
                    .await?;
                    for i in clashes {
                        let i = usize::try_from(i).map_err(|_| IndexError::Corrupt("probe index".into()))?;
                        verdicts[i] = Some(SegmentRejection::Overlap {
                            timerange: segments[i].timerange().to_string(),
                        });
                    }
                }

                plan::reject_batch_overlaps(segments, &mut verdicts);
                let mut accepted: Vec<&SegmentRow> = segments
                    .iter()
                    .zip(&verdicts)
                    .filter(|(_, v)| v.is_none())
                    .map(|(s, _)| s)
                    .collect();
                accepted.sort_unstable_by_key(|s| s.start_ns);
                // HLS numbering: registration ordinal, and discontinuity ordinal carried over
                // from the predecessor in time when this segment continues it.
                let mut numbers: Vec<(i64, i64)> = Vec::with_capacity(accepted.len());
                for (i, s) in accepted.iter().enumerate() {
                    let in_batch = i.checked_sub(1).map(|j| (accepted[j], numbers[j].1));
                    let pred = match in_batch {
                        Some((p, d)) if p.end_ns == s.start_ns => Some(plan::Pred::of(p, d)),
                        _ => {
                            let stored: Option<(i64, i64, Option<i64>, Option<String>, i64)> = sqlx::query_as(
                                "SELECT start_ns, end_ns, ts_offset_ns, init_object_id, disc FROM segments \
                                 WHERE flow_id = $1 AND start_ns < $2 ORDER BY start_ns DESC LIMIT 1",
                            )
                            .bind(&flow)
                            .bind(s.start_ns)
                            .fetch_optional(&mut *tx)
                            .await?;
                            match (stored, in_batch) {
                                (Some(st), Some((p, d))) if p.start_ns > st.0 => Some(plan::Pred::of(p, d)),
                                (Some((_, end_ns, ts_offset_ns, init_object_id, disc)), _) => Some(plan::Pred {
                                    end_ns, ts_offset_ns, init_object_id, disc,
                                }),
                                (None, Some((p, d))) => Some(plan::Pred::of(p, d)),
                                (None, None) => None,
                            }
                        }
                    };
                    let disc = match pred {
                        Some(p) if p.continued_by(s) => p.disc,
                        _ => {
                            next_disc += 1;
                            next_disc - 1
                        }
                    };
                    numbers.push((next_seq, disc));
                    next_seq += 1;
                }
                if !accepted.is_empty() {
                    // Uncontrolled objects seen for the first time get a row of their own.
                    for s in &accepted {
                        if let (Some(urls), false) = (&s.external_urls, objects.contains_key(&s.object_id)) {
                            sqlx::query(
                                "INSERT INTO objects (id, flow_id, state, controlled, created_unix_ns, external_urls) \
                                 VALUES ($1, $2, 'stored', FALSE, $3, $4) ON CONFLICT (id) DO NOTHING",
                            )
                            .bind(&s.object_id)
                            .bind(&flow)
                            .bind(now)
                            .bind(to_json(urls)?)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                    let batch: Vec<serde_json::Value> = accepted
                        .iter()
                        .zip(&numbers)
                        .map(|(s, (seq, disc))| {
                            serde_json::json!({
                                "s": s.start_ns, "e": s.end_ns, "o": s.object_id, "io": s.init_object_id,
                                "tso": s.ts_offset_ns, "ld": s.last_duration_ns, "os": s.object_start_ns,
                                "oe": s.object_end_ns, "so": s.sample_offset, "sc": s.sample_count,
                                "kfc": s.key_frame_count, "q": seq, "d": disc,
                            })
                        })
                        .collect();
                    let batch = serde_json::Value::Array(batch).to_string();
                    sqlx::query(pick!(
                        $pg,
                        "INSERT INTO segments (flow_id, start_ns, end_ns, object_id, init_object_id, ts_offset_ns, \
                         last_duration_ns, object_start_ns, object_end_ns, sample_offset, sample_count, key_frame_count, \
                         seq, disc) \
                         SELECT $1, t.s, t.e, t.o, t.io, t.tso, t.ld, t.os, t.oe, t.so, t.sc, t.kfc, t.q, t.d \
                         FROM jsonb_to_recordset($2::jsonb) AS t(s bigint, e bigint, o text, io text, tso bigint, \
                         ld bigint, os bigint, oe bigint, so bigint, sc bigint, kfc bigint, q bigint, d bigint)",
                        "INSERT INTO segments (flow_id, start_ns, end_ns, object_id, init_object_id, ts_offset_ns, \
                         last_duration_ns, object_start_ns, object_end_ns, sample_offset, sample_count, key_frame_count, \
                         seq, disc) \
                         SELECT $1, j.value ->> 's', j.value ->> 'e', j.value ->> 'o', j.value ->> 'io', \
                         j.value ->> 'tso', j.value ->> 'ld', j.value ->> 'os', j.value ->> 'oe', j.value ->> 'so', \
                         j.value ->> 'sc', j.value ->> 'kfc', j.value ->> 'q', j.value ->> 'd' FROM jsonb_each($2) j"
                    ))
                    .bind(&flow)
                    .bind(&batch)
                    .execute(&mut *tx)
                    .await?;
                    // Referenced objects: no longer garbage, roles and first properties fixed.
                    sqlx::query(pick!(
                        $pg,
                        "UPDATE objects SET gc_after_unix_ns = NULL, is_init = FALSE, \
                         first_flow_id = COALESCE(objects.first_flow_id, $1), \
                         key_frame_count = COALESCE(objects.key_frame_count, t.kfc), \
                         object_start_ns = COALESCE(objects.object_start_ns, t.os), \
                         object_end_ns = COALESCE(objects.object_end_ns, t.oe) \
                         FROM jsonb_to_recordset($2::jsonb) AS t(o text, kfc bigint, os bigint, oe bigint) \
                         WHERE objects.id = t.o",
                        "UPDATE objects SET gc_after_unix_ns = NULL, is_init = FALSE, \
                         first_flow_id = COALESCE(objects.first_flow_id, $1), \
                         key_frame_count = COALESCE(objects.key_frame_count, t.kfc), \
                         object_start_ns = COALESCE(objects.object_start_ns, t.os), \
                         object_end_ns = COALESCE(objects.object_end_ns, t.oe) \
                         FROM (SELECT j.value ->> 'o' AS o, j.value ->> 'kfc' AS kfc, j.value ->> 'os' AS os, \
                         j.value ->> 'oe' AS oe FROM jsonb_each($2) j) AS t WHERE objects.id = t.o"
                    ))
                    .bind(&flow)
                    .bind(&batch)
                    .execute(&mut *tx)
                    .await?;
                    let inits: Vec<&str> = accepted.iter().filter_map(|s| s.init_object_id.as_deref()).collect();
                    if !inits.is_empty() {
                        sqlx::query(pick!(
                            $pg,
                            "UPDATE objects SET gc_after_unix_ns = NULL, is_init = TRUE, \
                             first_flow_id = COALESCE(first_flow_id, $1) \
                             WHERE id IN (SELECT jsonb_array_elements_text($2::jsonb))",
                            "UPDATE objects SET gc_after_unix_ns = NULL, is_init = TRUE, \
                             first_flow_id = COALESCE(first_flow_id, $1) WHERE id IN (SELECT value FROM json_each($2))"
                        ))
                        .bind(&flow)
                        .bind(to_json(&inits)?)
                        .execute(&mut *tx)
                        .await?;
                    }
                    sqlx::query("UPDATE flows SET segments_updated_unix_ns = $1, next_seq = $3, next_disc = $4 WHERE id = $2")
                        .bind(now)
                        .bind(&flow)
                        .bind(next_seq)
                        .bind(next_disc)
                        .execute(&mut *tx)
                        .await?;
                }
                let finished = match chunk {
                    Some(c) => Self::finish_chunk(&mut *tx, c, now).await?,
                    None => false,
                };
                tx.commit().await?;
                Ok((verdicts.into_iter().map(|v| v.map_or(Ok(()), Err)).collect(), finished))
            }
        }

        #[async_trait::async_trait]
        impl Index for $ty {
            fn kind(&self) -> &'static str {
                $kind
            }

            async fn get_meta(&self, key: &str) -> Result<Option<String>> {
                Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
                    .bind(key)
                    .fetch_optional(self.read())
                    .await?)
            }

            async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
                sqlx::query(
                    "INSERT INTO meta (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(key)
                .bind(value)
                .execute(self.write())
                .await?;
                Ok(())
            }

            async fn list_meta(&self, prefix: &str) -> Result<Vec<(String, String)>> {
                Ok(sqlx::query_as(
                    "SELECT key, value FROM meta WHERE substr(key, 1, length($1)) = $1 ORDER BY key",
                )
                .bind(prefix)
                .fetch_all(self.read())
                .await?)
            }

            async fn get_source(&self, id: Id) -> Result<Option<Versioned<Source>>> {
                let row = sqlx::query("SELECT * FROM sources WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(self.read())
                    .await?;
                match row {
                    Some(r) => Ok(Some(self.fill_source(&r).await?)),
                    None => Ok(None),
                }
            }

            async fn list_sources(&self, q: &SourceQuery) -> Result<Vec<Source>> {
                let rows = sqlx::query(
                    "SELECT * FROM sources WHERE ($1 IS NULL OR label = $1) AND ($2 IS NULL OR format = $2) \
                     ORDER BY created_unix_ns DESC, id",
                )
                .bind(q.label.as_deref())
                .bind(q.format.as_deref())
                .fetch_all(self.read())
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push(self.fill_source(r).await?.value);
                }
                Ok(out)
            }

            async fn update_source(&self, source: &Source, expected_version: &str, now: i64) -> Result<bool> {
                let mut doc = source.clone();
                doc.created = None;
                doc.updated = None;
                doc.source_collection = None;
                doc.collected_by = None;
                let done = sqlx::query(
                    "UPDATE sources SET label = $1, updated_unix_ns = $2, version = $3, doc = $4 \
                     WHERE id = $5 AND version = $6",
                )
                .bind(source.label.as_deref())
                .bind(now)
                .bind(new_version())
                .bind(to_json(&doc)?)
                .bind(source.id.to_string())
                .bind(expected_version)
                .execute(self.write())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn get_flow(&self, id: Id) -> Result<Option<Versioned<Flow>>> {
                let row = sqlx::query("SELECT * FROM flows WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(self.read())
                    .await?;
                match row {
                    Some(r) => Ok(Some(self.fill_flow(&r).await?)),
                    None => Ok(None),
                }
            }

            async fn list_flows(&self, q: &FlowQuery) -> Result<Vec<Flow>> {
                let rows = sqlx::query(
                    "SELECT * FROM flows WHERE ($1 IS NULL OR source_id = $1) AND ($2 IS NULL OR format = $2) \
                     AND ($3 IS NULL OR codec = $3) AND ($4 IS NULL OR label = $4) \
                     AND ($5 IS NULL OR frame_width = $5) AND ($6 IS NULL OR frame_height = $6) \
                     ORDER BY created_unix_ns DESC, id",
                )
                .bind(q.source_id.map(|s| s.to_string()))
                .bind(q.format.as_deref())
                .bind(q.codec.as_deref())
                .bind(q.label.as_deref())
                .bind(q.frame_width)
                .bind(q.frame_height)
                .fetch_all(self.read())
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push(self.fill_flow(r).await?.value);
                }
                Ok(out)
            }

            async fn put_flow(&self, flow: &Flow, expected_version: Option<&str>, now: i64) -> Result<PutFlow> {
                use sqlx::Row;
                let id = flow.id.to_string();
                let source_id = flow.source_id.to_string();
                let format = flow.essence.format().urn();
                let mut tx = self.write().begin_with(pick!($pg, "BEGIN", "BEGIN IMMEDIATE")).await?;
                let existing = sqlx::query(pick!(
                    $pg,
                    "SELECT version FROM flows WHERE id = $1 FOR UPDATE",
                    "SELECT version FROM flows WHERE id = $1"
                ))
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
                let existing_version: Option<String> = existing.map(|r| r.try_get("version")).transpose()?;
                if let Some(expected) = expected_version
                    && existing_version.as_deref() != Some(expected)
                {
                    return Ok(PutFlow::Conflict);
                }
                let source_format: Option<String> = sqlx::query_scalar("SELECT format FROM sources WHERE id = $1")
                    .bind(&source_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                match source_format {
                    Some(f) if f != format => return Ok(PutFlow::SourceFormatMismatch { source_format: f }),
                    Some(_) => {}
                    None => {
                        let src = Source {
                            id: flow.source_id,
                            format: flow.essence.format(),
                            label: flow.label.clone(),
                            description: flow.description.clone(),
                            created_by: flow.created_by.clone(),
                            updated_by: None,
                            created: None,
                            updated: None,
                            tags: None,
                            source_collection: None,
                            collected_by: None,
                        };
                        sqlx::query(
                            "INSERT INTO sources (id, format, label, created_unix_ns, updated_unix_ns, version, doc) \
                             VALUES ($1, $2, $3, $4, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                        )
                        .bind(&source_id)
                        .bind(format)
                        .bind(src.label.as_deref())
                        .bind(now)
                        .bind(new_version())
                        .bind(to_json(&src)?)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                let mut doc = flow.clone();
                doc.clear_server_managed();
                let (w, h) = flow.essence.frame_size().map_or((None, None), |(w, h)| (Some(i64::from(w)), Some(i64::from(h))));
                sqlx::query(
                    "INSERT INTO flows (id, source_id, format, codec, container, label, frame_width, frame_height, \
                     read_only, created_unix_ns, updated_unix_ns, version, doc) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12) \
                     ON CONFLICT (id) DO UPDATE SET source_id = excluded.source_id, format = excluded.format, \
                     codec = excluded.codec, container = excluded.container, label = excluded.label, \
                     frame_width = excluded.frame_width, frame_height = excluded.frame_height, \
                     read_only = excluded.read_only, updated_unix_ns = excluded.updated_unix_ns, \
                     version = excluded.version, doc = excluded.doc",
                )
                .bind(&id)
                .bind(&source_id)
                .bind(format)
                .bind(flow.codec.as_ref().map(|c| c.as_str()))
                .bind(flow.container.as_ref().map(|c| c.as_str()))
                .bind(flow.label.as_deref())
                .bind(w)
                .bind(h)
                .bind(flow.read_only.unwrap_or(false))
                .bind(now)
                .bind(new_version())
                .bind(to_json(&doc)?)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM flow_collection WHERE parent_id = $1")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                for item in flow.flow_collection.iter().flatten() {
                    sqlx::query(
                        "INSERT INTO flow_collection (parent_id, child_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    )
                    .bind(&id)
                    .bind(item.id.to_string())
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(if existing_version.is_some() { PutFlow::Updated } else { PutFlow::Created })
            }

            async fn delete_flow(&self, id: Id) -> Result<bool> {
                let id = id.to_string();
                let mut tx = self.write().begin_with(pick!($pg, "BEGIN", "BEGIN IMMEDIATE")).await?;
                sqlx::query("DELETE FROM flow_collection WHERE parent_id = $1")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query("DELETE FROM flows WHERE id = $1")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn flow_timerange(&self, id: Id, within: &TimeRange) -> Result<TimeRange> {
                use sqlx::Row;
                if within.is_empty() {
                    return Ok(TimeRange::NEVER);
                }
                let flow = id.to_string();
                let s = within.start_nanos().unwrap_or(i64::MIN);
                let e = within.end_nanos().unwrap_or(i64::MAX);
                let from = Self::scan_from(self.read(), &flow, s).await?;
                let first: Option<i64> = sqlx::query_scalar(
                    "SELECT start_ns FROM segments WHERE flow_id = $1 AND start_ns >= $2 AND start_ns < $3 \
                     ORDER BY start_ns LIMIT 1",
                )
                .bind(&flow)
                .bind(from)
                .bind(e)
                .fetch_optional(self.read())
                .await?;
                let last = sqlx::query(
                    "SELECT end_ns FROM segments WHERE flow_id = $1 AND start_ns >= $2 AND start_ns < $3 \
                     ORDER BY start_ns DESC LIMIT 1",
                )
                .bind(&flow)
                .bind(from)
                .bind(e)
                .fetch_optional(self.read())
                .await?;
                match (first, last) {
                    (Some(a), Some(r)) => Ok(TimeRange::from_nanos(a, r.try_get("end_ns")?)),
                    _ => Ok(TimeRange::NEVER),
                }
            }

            async fn register_segments(
                &self,
                flow_id: Id,
                segments: &[SegmentRow],
                now: i64,
            ) -> Result<Vec<std::result::Result<(), SegmentRejection>>> {
                self.register_stored_segments(flow_id, &[], &[], segments, now).await
            }

            async fn register_stored_segments(
                &self,
                flow_id: Id,
                stored: &[(String, i64)],
                tables: &[SampleTables],
                segments: &[SegmentRow],
                now: i64,
            ) -> Result<Vec<std::result::Result<(), SegmentRejection>>> {
                Ok(self.register_tx(flow_id, stored, tables, segments, now, None).await?.0)
            }

            async fn register_job_chunk(
                &self,
                flow_id: Id,
                stored: &[(String, i64)],
                segments: &[SegmentRow],
                chunk: &JobChunk<'_>,
                now: i64,
            ) -> Result<(Vec<std::result::Result<(), SegmentRejection>>, bool)> {
                self.register_tx(flow_id, stored, &[], segments, now, Some(chunk)).await
            }

            async fn list_segments(&self, flow_id: Id, q: &SegmentQuery) -> Result<Vec<SegmentRow>> {
                if q.range.is_empty() || q.limit == 0 {
                    return Ok(Vec::new());
                }
                let flow = flow_id.to_string();
                let s = q.range.start_nanos().unwrap_or(i64::MIN);
                let e = q.range.end_nanos().unwrap_or(i64::MAX);
                // Bounds of one primary-key range scan. The lower bound is the window start,
                // widened in SQL to the predecessor segment when that reaches into the window
                // ($6); an ascending page after a cursor starts just after it instead.
                let (lo, hi, widen) = match (q.reverse, q.after_start_ns) {
                    (false, Some(a)) => (a.saturating_add(1), e, false),
                    (true, Some(a)) => (s, e.min(a), true),
                    (_, None) => (s, e, true),
                };
                let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
                // The LIMIT sits inside, in key order, so the scan stops after `limit` rows
                // whatever the planner's statistics say.
                if $pg {
                    // PostgreSQL's binary row protocol beats building JSON on the server.
                    let sql = if q.reverse {
                        "SELECT s.*, (SELECT o.external_urls FROM objects o WHERE o.id = s.object_id \
                         AND o.controlled = FALSE) AS external_urls FROM (SELECT * FROM segments \
                     WHERE flow_id = $1 AND start_ns >= (CASE WHEN $6 THEN COALESCE((SELECT p.start_ns FROM \
                     (SELECT start_ns, end_ns FROM segments WHERE flow_id = $1 AND start_ns < $2 \
                     ORDER BY start_ns DESC LIMIT 1) p WHERE p.end_ns > $2), $2) ELSE $2 END) \
                     AND start_ns < $3 AND ($4 IS NULL OR object_id = $4) \
                     ORDER BY start_ns DESC LIMIT $5) s ORDER BY s.start_ns DESC"
                    } else {
                        "SELECT s.*, (SELECT o.external_urls FROM objects o WHERE o.id = s.object_id \
                         AND o.controlled = FALSE) AS external_urls FROM (SELECT * FROM segments \
                     WHERE flow_id = $1 AND start_ns >= (CASE WHEN $6 THEN COALESCE((SELECT p.start_ns FROM \
                     (SELECT start_ns, end_ns FROM segments WHERE flow_id = $1 AND start_ns < $2 \
                     ORDER BY start_ns DESC LIMIT 1) p WHERE p.end_ns > $2), $2) ELSE $2 END) \
                     AND start_ns < $3 AND ($4 IS NULL OR object_id = $4) \
                     ORDER BY start_ns LIMIT $5) s ORDER BY s.start_ns"
                    };
                    let rows = sqlx::query(sql)
                        .bind(&flow)
                        .bind(lo)
                        .bind(hi)
                        .bind(q.object_id.as_deref())
                        .bind(limit)
                        .bind(widen)
                        .fetch_all(self.read())
                        .await?;
                    return rows.iter().map(Self::segment_from_row).collect();
                }
                // SQLite: the page comes back as one JSON value, one row to hand over from the
                // driver's worker thread instead of one per segment.
                let sql = if q.reverse {
                    "SELECT json_group_array(json_object('s', s.start_ns, 'e', s.end_ns, 'o', s.object_id, \
                     'io', s.init_object_id, 'tso', s.ts_offset_ns, 'ld', s.last_duration_ns, 'os', s.object_start_ns, \
                     'oe', s.object_end_ns, 'so', s.sample_offset, 'sc', s.sample_count, 'k', s.key_frame_count, \
                     'q', s.seq, 'd', s.disc, \
                     'u', (SELECT o.external_urls FROM objects o WHERE o.id = s.object_id AND o.controlled = FALSE))) FROM (SELECT * FROM segments \
                     WHERE flow_id = $1 AND start_ns >= (CASE WHEN $6 THEN COALESCE((SELECT p.start_ns FROM \
                     (SELECT start_ns, end_ns FROM segments WHERE flow_id = $1 AND start_ns < $2 \
                     ORDER BY start_ns DESC LIMIT 1) p WHERE p.end_ns > $2), $2) ELSE $2 END) \
                     AND start_ns < $3 AND ($4 IS NULL OR object_id = $4) \
                     ORDER BY start_ns DESC LIMIT $5) s"
                } else {
                    "SELECT json_group_array(json_object('s', s.start_ns, 'e', s.end_ns, 'o', s.object_id, \
                     'io', s.init_object_id, 'tso', s.ts_offset_ns, 'ld', s.last_duration_ns, 'os', s.object_start_ns, \
                     'oe', s.object_end_ns, 'so', s.sample_offset, 'sc', s.sample_count, 'k', s.key_frame_count, \
                     'q', s.seq, 'd', s.disc, \
                     'u', (SELECT o.external_urls FROM objects o WHERE o.id = s.object_id AND o.controlled = FALSE))) FROM (SELECT * FROM segments \
                     WHERE flow_id = $1 AND start_ns >= (CASE WHEN $6 THEN COALESCE((SELECT p.start_ns FROM \
                     (SELECT start_ns, end_ns FROM segments WHERE flow_id = $1 AND start_ns < $2 \
                     ORDER BY start_ns DESC LIMIT 1) p WHERE p.end_ns > $2), $2) ELSE $2 END) \
                     AND start_ns < $3 AND ($4 IS NULL OR object_id = $4) \
                     ORDER BY start_ns LIMIT $5) s"
                };
                let page: String = sqlx::query_scalar(sql)
                    .bind(&flow)
                    .bind(lo)
                    .bind(hi)
                    .bind(q.object_id.as_deref())
                    .bind(limit)
                    .bind(widen)
                    .fetch_one(self.read())
                    .await?;
                let mut rows: Vec<SegmentJson> = parse_json(&page)?;
                // Aggregation order is not promised by every engine: settle it here.
                if q.reverse {
                    rows.sort_unstable_by(|a, b| b.s.cmp(&a.s));
                } else {
                    rows.sort_unstable_by_key(|r| r.s);
                }
                rows.into_iter().map(SegmentJson::into_stored).collect()
            }

            async fn delete_segments(
                &self,
                flow_id: Id,
                range: &TimeRange,
                object_id: Option<&str>,
                max: usize,
                now: i64,
            ) -> Result<DeleteChunk> {
                use sqlx::Row;
                if range.is_empty() || max == 0 {
                    return Ok(DeleteChunk::default());
                }
                let flow = flow_id.to_string();
                let s = range.start_nanos().unwrap_or(i64::MIN);
                let e = range.end_nanos().unwrap_or(i64::MAX);
                let mut tx = self.write().begin_with(pick!($pg, "BEGIN", "BEGIN IMMEDIATE")).await?;
                let locked: Option<String> = sqlx::query_scalar(pick!(
                    $pg,
                    "SELECT id FROM flows WHERE id = $1 FOR UPDATE",
                    "SELECT id FROM flows WHERE id = $1"
                ))
                .bind(&flow)
                .fetch_optional(&mut *tx)
                .await?;
                if locked.is_none() {
                    return Ok(DeleteChunk::default());
                }
                let rows = sqlx::query(
                    "SELECT start_ns, object_id, init_object_id FROM segments WHERE flow_id = $1 \
                     AND start_ns >= $2 AND start_ns < $3 AND end_ns <= $3 AND ($4 IS NULL OR object_id = $4) \
                     ORDER BY start_ns LIMIT $5",
                )
                .bind(&flow)
                .bind(s)
                .bind(e)
                .bind(object_id)
                .bind(i64::try_from(max).unwrap_or(i64::MAX).saturating_add(1))
                .fetch_all(&mut *tx)
                .await?;
                let more = rows.len() > max;
                let rows = &rows[..rows.len().min(max)];
                let Some(last) = rows.last() else {
                    return Ok(DeleteChunk::default());
                };
                let last_start: i64 = last.try_get("start_ns")?;
                let done = sqlx::query(
                    "DELETE FROM segments WHERE flow_id = $1 AND start_ns >= $2 AND start_ns <= $3 \
                     AND end_ns <= $4 AND ($5 IS NULL OR object_id = $5)",
                )
                .bind(&flow)
                .bind(s)
                .bind(last_start)
                .bind(e)
                .bind(object_id)
                .execute(&mut *tx)
                .await?;
                let mut affected: Vec<String> = Vec::with_capacity(rows.len());
                for r in rows {
                    affected.push(r.try_get("object_id")?);
                    if let Some(i) = r.try_get::<Option<String>, _>("init_object_id")? {
                        affected.push(i);
                    }
                }
                affected.sort_unstable();
                affected.dedup();
                sqlx::query(pick!(
                    $pg,
                    "UPDATE objects SET gc_after_unix_ns = $1 WHERE id IN (SELECT jsonb_array_elements_text($2::jsonb)) \
                     AND NOT EXISTS (SELECT 1 FROM segments g WHERE g.object_id = objects.id) \
                     AND NOT EXISTS (SELECT 1 FROM segments g WHERE g.init_object_id = objects.id)",
                    "UPDATE objects SET gc_after_unix_ns = $1 WHERE id IN (SELECT value FROM json_each($2)) \
                     AND NOT EXISTS (SELECT 1 FROM segments g WHERE g.object_id = objects.id) \
                     AND NOT EXISTS (SELECT 1 FROM segments g WHERE g.init_object_id = objects.id)"
                ))
                .bind(now)
                .bind(to_json(&affected)?)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE flows SET segments_updated_unix_ns = $1 WHERE id = $2")
                    .bind(now)
                    .bind(&flow)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(DeleteChunk {
                    deleted: usize::try_from(done.rows_affected()).unwrap_or(usize::MAX),
                    more,
                })
            }

            async fn allocate_objects(
                &self,
                flow_id: Id,
                ids: &[String],
                content_type: Option<&str>,
                now: i64,
                gc_after: i64,
            ) -> Result<()> {
                // One statement, so atomic without a transaction of its own: every id is
                // recorded, or (one taken) none.
                let inserted = sqlx::query(pick!(
                    $pg,
                    "INSERT INTO objects (id, flow_id, state, controlled, created_unix_ns, gc_after_unix_ns, content_type) \
                     SELECT v, $1, 'allocated', TRUE, $2, $3, $4 FROM jsonb_array_elements_text($5::jsonb) AS v",
                    "INSERT INTO objects (id, flow_id, state, controlled, created_unix_ns, gc_after_unix_ns, content_type) \
                     SELECT value, $1, 'allocated', TRUE, $2, $3, $4 FROM json_each($5)"
                ))
                .bind(flow_id.to_string())
                .bind(now)
                .bind(gc_after)
                .bind(content_type)
                .bind(to_json(&ids)?)
                .execute(self.write())
                .await;
                match inserted {
                    Ok(_) => Ok(()),
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        // Name the id that was taken.
                        let taken: Option<String> = sqlx::query_scalar(pick!(
                            $pg,
                            "SELECT id FROM objects WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)) LIMIT 1",
                            "SELECT id FROM objects WHERE id IN (SELECT value FROM json_each($1)) LIMIT 1"
                        ))
                        .bind(to_json(&ids)?)
                        .fetch_optional(self.write())
                        .await?;
                        Err(IndexError::ObjectExists(
                            taken.or_else(|| ids.first().cloned()).unwrap_or_default(),
                        ))
                    }
                    Err(e) => Err(e.into()),
                }
            }

            async fn get_objects(&self, ids: &[String]) -> Result<Vec<ObjectRow>> {
                if $pg {
                    let rows = sqlx::query(
                        "SELECT * FROM objects WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb))",
                    )
                    .bind(to_json(&ids)?)
                    .fetch_all(self.read())
                    .await?;
                    return rows.iter().map(Self::object_from_row).collect();
                }
                // SQLite: one JSON value instead of one row per object to hand over from the
                // driver's worker thread (an export's plan asks for hundreds at once: 300
                // objects took 2-3 ms row by row).
                let all: String = sqlx::query_scalar(
                    "SELECT json_group_array(json_object('id', id, 'f', flow_id, 's', state, \
                     'c', controlled, 't', created_unix_ns, 'n', size, 'ct', content_type, \
                     'i', is_init, 'ff', first_flow_id, 'k', key_frame_count, \
                     'os', object_start_ns, 'oe', object_end_ns, 'u', external_urls)) \
                     FROM objects WHERE id IN (SELECT value FROM json_each($1))",
                )
                .bind(to_json(&ids)?)
                .fetch_one(self.read())
                .await?;
                parse_json::<Vec<ObjectJson>>(&all)?
                    .into_iter()
                    .map(ObjectJson::into_row)
                    .collect()
            }

            async fn mark_objects_stored(&self, stored: &[(String, i64)]) -> Result<()> {
                if stored.is_empty() {
                    return Ok(());
                }
                let batch: Vec<serde_json::Value> =
                    stored.iter().map(|(id, size)| serde_json::json!({"o": id, "n": size})).collect();
                sqlx::query(Self::MARK_STORED)
                .bind(serde_json::Value::Array(batch).to_string())
                .execute(self.write())
                .await?;
                Ok(())
            }

            async fn get_sample_tables(&self, object_ids: &[String]) -> Result<Vec<SampleTables>> {
                use sqlx::Row;
                if object_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let rows = sqlx::query(pick!(
                    $pg,
                    "SELECT object_id, init_object_id, tables FROM object_samples \
                     WHERE object_id IN (SELECT jsonb_array_elements_text($1::jsonb))",
                    "SELECT object_id, init_object_id, tables FROM object_samples \
                     WHERE object_id IN (SELECT value FROM json_each($1))"
                ))
                .bind(to_json(&object_ids)?)
                .fetch_all(self.read())
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(SampleTables {
                            object_id: r.try_get("object_id")?,
                            init_object_id: r.try_get("init_object_id")?,
                            tables: r.try_get("tables")?,
                        })
                    })
                    .collect()
            }

            async fn put_sample_tables(&self, rows: &[SampleTables]) -> Result<()> {
                Self::put_tables(self.write(), rows).await
            }

            async fn object_flows(&self, id: &str, limit: usize) -> Result<Vec<Id>> {
                let ids: Vec<String> = sqlx::query_scalar(
                    "SELECT flow_id FROM (SELECT DISTINCT flow_id FROM segments WHERE object_id = $1 \
                     UNION SELECT DISTINCT flow_id FROM segments WHERE init_object_id = $1) AS f \
                     ORDER BY flow_id LIMIT $2",
                )
                .bind(id)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(self.read())
                .await?;
                ids.iter().map(|s| parse_id(s)).collect()
            }

            async fn claim_gc_candidates(&self, now: i64, limit: usize) -> Result<Vec<ObjectRow>> {
                let mut tx = self.write().begin_with(pick!($pg, "BEGIN", "BEGIN IMMEDIATE")).await?;
                let rows = sqlx::query(pick!(
                    $pg,
                    "SELECT * FROM objects WHERE gc_after_unix_ns <= $1 ORDER BY gc_after_unix_ns LIMIT $2 \
                     FOR UPDATE SKIP LOCKED",
                    "SELECT * FROM objects WHERE gc_after_unix_ns <= $1 ORDER BY gc_after_unix_ns LIMIT $2"
                ))
                .bind(now)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&mut *tx)
                .await?;
                let mut claimed = Vec::new();
                for r in &rows {
                    let mut o = Self::object_from_row(r)?;
                    // A new statement after the row lock: sees every committed reference.
                    let referenced: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM segments WHERE object_id = $1) \
                         OR EXISTS (SELECT 1 FROM segments WHERE init_object_id = $1)",
                    )
                    .bind(&o.id)
                    .fetch_one(&mut *tx)
                    .await?;
                    if referenced {
                        sqlx::query("UPDATE objects SET gc_after_unix_ns = NULL WHERE id = $1")
                            .bind(&o.id)
                            .execute(&mut *tx)
                            .await?;
                    } else {
                        sqlx::query("UPDATE objects SET state = 'deleting' WHERE id = $1")
                            .bind(&o.id)
                            .execute(&mut *tx)
                            .await?;
                        o.state = ObjectState::Deleting;
                        claimed.push(o);
                    }
                }
                tx.commit().await?;
                Ok(claimed)
            }

            async fn forget_object(&self, id: &str) -> Result<()> {
                sqlx::query("DELETE FROM objects WHERE id = $1 AND state = 'deleting'")
                    .bind(id)
                    .execute(self.write())
                    .await?;
                Ok(())
            }

            async fn put_delete_request(&self, r: &DeletionRequest, lease_until: i64) -> Result<()> {
                sqlx::query(
                    "INSERT INTO delete_requests (id, flow_id, status, created_unix_ns, lease_until_unix_ns, doc) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
                     lease_until_unix_ns = excluded.lease_until_unix_ns, doc = excluded.doc",
                )
                .bind(r.id.to_string())
                .bind(r.flow_id.to_string())
                .bind(r.status.as_str())
                .bind(crate::util::unix_now_ns())
                .bind(lease_until)
                .bind(to_json(r)?)
                .execute(self.write())
                .await?;
                Ok(())
            }

            async fn get_delete_request(&self, id: Id) -> Result<Option<DeletionRequest>> {
                let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM delete_requests WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(self.read())
                    .await?;
                doc.map(|d| parse_json(&d)).transpose()
            }

            async fn list_delete_requests(&self) -> Result<Vec<DeletionRequest>> {
                let docs: Vec<String> =
                    sqlx::query_scalar("SELECT doc FROM delete_requests ORDER BY created_unix_ns DESC, id")
                        .fetch_all(self.read())
                        .await?;
                docs.iter().map(|d| parse_json(d)).collect()
            }

            async fn claim_delete_request(&self, now: i64, lease_until: i64) -> Result<Option<DeletionRequest>> {
                let mut tx = self.write().begin_with(pick!($pg, "BEGIN", "BEGIN IMMEDIATE")).await?;
                let doc: Option<String> = sqlx::query_scalar(pick!(
                    $pg,
                    "SELECT doc FROM delete_requests WHERE status IN ('created', 'started') \
                     AND lease_until_unix_ns <= $1 ORDER BY created_unix_ns LIMIT 1 FOR UPDATE SKIP LOCKED",
                    "SELECT doc FROM delete_requests WHERE status IN ('created', 'started') \
                     AND lease_until_unix_ns <= $1 ORDER BY created_unix_ns LIMIT 1"
                ))
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(doc) = doc else {
                    return Ok(None);
                };
                let r: DeletionRequest = parse_json(&doc)?;
                sqlx::query("UPDATE delete_requests SET lease_until_unix_ns = $1 WHERE id = $2")
                    .bind(lease_until)
                    .bind(r.id.to_string())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Some(r))
            }

            async fn enqueue_webhook_events(&self, rows: &[OutboxRow]) -> Result<()> {
                if rows.is_empty() {
                    return Ok(());
                }
                let mut tx = self.write().begin_with(pick!($pg, "BEGIN", "BEGIN IMMEDIATE")).await?;
                for r in rows {
                    sqlx::query(
                        "INSERT INTO webhook_outbox (webhook_id, event_id, body, created_unix_ns)                          VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&r.webhook_id)
                    .bind(&r.event_id)
                    .bind(&r.body)
                    .bind(r.created_unix_ns)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn pending_webhook_events(&self, webhook_id: &str, limit: usize) -> Result<Vec<OutboxRow>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT seq, webhook_id, event_id, body, created_unix_ns FROM webhook_outbox                      WHERE webhook_id = $1 ORDER BY seq LIMIT $2",
                )
                .bind(webhook_id)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(self.write())
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(OutboxRow {
                            seq: r.try_get("seq")?,
                            webhook_id: r.try_get("webhook_id")?,
                            event_id: r.try_get("event_id")?,
                            body: r.try_get("body")?,
                            created_unix_ns: r.try_get("created_unix_ns")?,
                        })
                    })
                    .collect()
            }

            async fn ack_webhook_events(&self, webhook_id: &str, upto_seq: i64) -> Result<u64> {
                let done = sqlx::query("DELETE FROM webhook_outbox WHERE webhook_id = $1 AND seq <= $2")
                    .bind(webhook_id)
                    .bind(upto_seq)
                    .execute(self.write())
                    .await?;
                Ok(done.rows_affected())
            }

            async fn count_webhook_events(&self, webhook_id: &str) -> Result<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox WHERE webhook_id = $1")
                    .bind(webhook_id)
                    .fetch_one(self.write())
                    .await?)
            }

            async fn claim_webhook_lease(&self, webhook_id: &str, owner: &str, now: i64, until: i64) -> Result<bool> {
                let done = sqlx::query(
                    "INSERT INTO webhook_leases (webhook_id, owner, until_unix_ns) VALUES ($1, $2, $3)                      ON CONFLICT (webhook_id) DO UPDATE SET owner = excluded.owner, until_unix_ns = excluded.until_unix_ns                      WHERE webhook_leases.owner = excluded.owner OR webhook_leases.until_unix_ns <= $4",
                )
                .bind(webhook_id)
                .bind(owner)
                .bind(until)
                .bind(now)
                .execute(self.write())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn create_job(&self, id: &str, flow_id: Id, spec: &str, chunks: Option<i64>, now: i64) -> Result<(Id, String)> {
                use sqlx::Row;
                // An open job's `chunks` is stored as -1 until `end_job` sets it.
                let chunks = chunks.map_or(-1, |c| c.max(0));
                let mut tx = self.write().begin_with(pick!($pg, "BEGIN", "BEGIN IMMEDIATE")).await?;
                let done = sqlx::query(
                    "INSERT INTO jobs (id, flow_id, spec, chunks, created_unix_ns) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(flow_id.to_string())
                .bind(spec)
                .bind(chunks)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 1 {
                    sqlx::query(pick!(
                        $pg,
                        "INSERT INTO job_chunks (job_id, chunk) SELECT $1, g FROM generate_series(0::bigint, $2 - 1) AS g",
                        "WITH RECURSIVE c(x) AS (SELECT 0 WHERE $2 > 0 UNION ALL SELECT x + 1 FROM c WHERE x + 1 < $2) \
                         INSERT INTO job_chunks (job_id, chunk) SELECT $1, x FROM c"
                    ))
                    .bind(id)
                    .bind(chunks)
                    .execute(&mut *tx)
                    .await?;
                }
                let row = sqlx::query("SELECT flow_id, spec FROM jobs WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok((parse_id(&row.try_get::<String, _>("flow_id")?)?, row.try_get("spec")?))
            }

            async fn add_job_chunks(&self, id: &str, first: i64, last: i64) -> Result<()> {
                if first > last || first < 0 {
                    return Ok(());
                }
                // What one receiver holds is far less; the cap bounds one statement.
                let last = last.min(first.saturating_add(99_999));
                sqlx::query(pick!(
                    $pg,
                    "INSERT INTO job_chunks (job_id, chunk) SELECT $1, g FROM generate_series($2::bigint, $3::bigint) AS g \
                     WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $1) ON CONFLICT DO NOTHING",
                    "WITH RECURSIVE c(x) AS (SELECT $2 UNION ALL SELECT x + 1 FROM c WHERE x + 1 <= $3) \
                     INSERT INTO job_chunks (job_id, chunk) SELECT $1, x FROM c \
                     WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $1) ON CONFLICT DO NOTHING"
                ))
                .bind(id)
                .bind(first)
                .bind(last)
                .execute(self.write())
                .await?;
                Ok(())
            }

            async fn end_job(&self, id: &str, chunks: i64) -> Result<()> {
                sqlx::query("UPDATE jobs SET chunks = $2 WHERE id = $1 AND chunks < 0")
                    .bind(id)
                    .bind(chunks.max(0))
                    .execute(self.write())
                    .await?;
                Ok(())
            }

            async fn claim_job_chunk_in(&self, id: &str, owner: &str, now: i64, lease_until: i64, first: i64, last: i64) -> Result<Option<i64>> {
                Ok(sqlx::query_scalar(pick!(
                    $pg,
                    "UPDATE job_chunks SET owner = $2, lease_until_unix_ns = $4 WHERE job_id = $1 AND chunk = \
                     (SELECT chunk FROM job_chunks WHERE job_id = $1 AND done_unix_ns IS NULL AND lease_until_unix_ns <= $3 \
                      AND chunk BETWEEN $5 AND $6 ORDER BY chunk LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING chunk",
                    "UPDATE job_chunks SET owner = $2, lease_until_unix_ns = $4 WHERE job_id = $1 AND chunk = \
                     (SELECT chunk FROM job_chunks WHERE job_id = $1 AND done_unix_ns IS NULL AND lease_until_unix_ns <= $3 \
                      AND chunk BETWEEN $5 AND $6 ORDER BY chunk LIMIT 1) RETURNING chunk"
                ))
                .bind(id)
                .bind(owner)
                .bind(now)
                .bind(lease_until)
                .bind(first)
                .bind(last)
                .fetch_optional(self.write())
                .await?)
            }

            async fn pending_job_chunks(&self, id: &str, first: i64, last: i64) -> Result<i64> {
                Ok(sqlx::query_scalar(
                    "SELECT COUNT(*) FROM job_chunks WHERE job_id = $1 AND done_unix_ns IS NULL \
                     AND chunk BETWEEN $2 AND $3",
                )
                .bind(id)
                .bind(first)
                .bind(last)
                .fetch_one(self.write())
                .await?)
            }

            async fn finish_job_chunk(&self, id: &str, chunk: i64, owner: &str, now: i64) -> Result<bool> {
                Self::finish_chunk(self.write(), &JobChunk { job: id, chunk, owner }, now).await
            }

            async fn job_progress(&self, id: &str) -> Result<Option<JobProgress>> {
                use sqlx::Row;
                let total: Option<i64> = sqlx::query_scalar("SELECT chunks FROM jobs WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.write())
                    .await?;
                let Some(total) = total else {
                    return Ok(None);
                };
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n, COUNT(done_unix_ns) AS d FROM job_chunks WHERE job_id = $1",
                )
                .bind(id)
                .fetch_one(self.write())
                .await?;
                Ok(Some(JobProgress {
                    done: row.try_get("d")?,
                    chunks: row.try_get("n")?,
                    ended: total >= 0,
                }))
            }

            async fn forget_webhook(&self, webhook_id: &str, meta_key: &str) -> Result<()> {
                let mut tx = self.write().begin_with(pick!($pg, "BEGIN", "BEGIN IMMEDIATE")).await?;
                for q in [
                    "DELETE FROM webhook_outbox WHERE webhook_id = $1",
                    "DELETE FROM webhook_leases WHERE webhook_id = $1",
                ] {
                    sqlx::query(q).bind(webhook_id).execute(&mut *tx).await?;
                }
                sqlx::query("DELETE FROM meta WHERE key = $1")
                    .bind(meta_key)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_index;

use drey_core::Id;

use super::{IndexError, ObjectRow, ObjectState, Result};

/// One segment of a page as the listing query aggregates it (short keys keep it small).
#[derive(serde::Deserialize)]
pub(crate) struct SegmentJson {
    pub(crate) s: i64,
    e: i64,
    o: String,
    io: Option<String>,
    tso: Option<i64>,
    ld: Option<i64>,
    os: Option<i64>,
    oe: Option<i64>,
    so: Option<i64>,
    sc: Option<i64>,
    k: Option<i64>,
    u: Option<String>,
    q: i64,
    d: i64,
}

impl SegmentJson {
    pub(crate) fn into_stored(self) -> Result<super::SegmentRow> {
        Ok(super::SegmentRow {
            start_ns: self.s,
            end_ns: self.e,
            object_id: self.o,
            init_object_id: self.io,
            ts_offset_ns: self.tso,
            last_duration_ns: self.ld,
            object_start_ns: self.os,
            object_end_ns: self.oe,
            sample_offset: self.so,
            sample_count: self.sc,
            key_frame_count: self.k,
            external_urls: self.u.map(|u| parse_json(&u)).transpose()?,
            seq: self.q,
            disc: self.d,
        })
    }
}

/// One object as the SQLite lookup aggregates it (short keys keep it small).
#[derive(serde::Deserialize)]
pub(crate) struct ObjectJson {
    id: String,
    f: String,
    s: String,
    c: i64,
    t: i64,
    n: Option<i64>,
    ct: Option<String>,
    i: Option<i64>,
    ff: Option<String>,
    k: Option<i64>,
    os: Option<i64>,
    oe: Option<i64>,
    u: Option<String>,
}

impl ObjectJson {
    pub(crate) fn into_row(self) -> Result<ObjectRow> {
        Ok(ObjectRow {
            id: self.id,
            flow_id: self.f,
            state: ObjectState::parse(&self.s)?,
            controlled: self.c != 0,
            created_unix_ns: self.t,
            size: self.n,
            content_type: self.ct,
            is_init: self.i.map(|i| i != 0),
            first_flow_id: self.ff,
            key_frame_count: self.k,
            object_start_ns: self.os,
            object_end_ns: self.oe,
            external_urls: self.u.map(|u| parse_json(&u)).transpose()?,
        })
    }
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| IndexError::Corrupt(e.to_string()))
}

pub(crate) fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| IndexError::Corrupt(e.to_string()))
}

pub(crate) fn parse_id(s: &str) -> Result<Id> {
    s.parse()
        .map_err(|e: drey_core::IdError| IndexError::Corrupt(e.to_string()))
}

pub(crate) fn new_version() -> String {
    Id::new_v4().to_string()
}

pub(crate) fn unix_ns_to_rfc3339(ns: i64) -> String {
    let dt = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    drey_core::time::format_utc(dt)
}
