-- TAMS webhooks (the gateway issue). Registrations live in `meta` (`webhook/ID`); this is
-- the outbox: one row per (webhook, event) still to deliver, delivered in `seq` order and
-- deleted once the receiver answered 2xx. A lease per webhook makes one instance at a time
-- its deliverer, so events stay in order when several instances share the database.
CREATE TABLE webhook_outbox (
    seq BIGSERIAL PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    body TEXT NOT NULL,
    created_unix_ns BIGINT NOT NULL
);
CREATE INDEX webhook_outbox_by_hook ON webhook_outbox (webhook_id, seq);

CREATE TABLE webhook_leases (
    webhook_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until_unix_ns BIGINT NOT NULL
);
