//! Schema migrations, one list per backend, applied in order and recorded in
//! `medway_schema_migrations`. Append new steps; never edit a released one.

pub const SQLITE: &[(&str, &str)] = &[
    (
        "001_messages_and_deliveries",
        r#"
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    control_id TEXT,
    message_type TEXT,
    status TEXT NOT NULL,
    error TEXT,
    patient_key TEXT,
    peer TEXT,
    raw BLOB NOT NULL,
    transformed BLOB
);
CREATE INDEX messages_channel_time ON messages(channel, received_at);
CREATE INDEX messages_time ON messages(received_at);
CREATE INDEX messages_control_id ON messages(control_id);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    destination TEXT NOT NULL,
    status TEXT NOT NULL,
    ordering_key TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX deliveries_pending ON deliveries(channel, destination, id)
    WHERE status IN ('queued', 'retrying');
CREATE INDEX deliveries_message ON deliveries(message_id);
CREATE TABLE delivery_attempts (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX attempts_delivery ON delivery_attempts(delivery_id);
"#,
    ),
    (
        "002_message_lineage",
        r#"
ALTER TABLE messages ADD COLUMN parent_id INTEGER;
ALTER TABLE messages ADD COLUMN parent_delivery_id INTEGER;
CREATE INDEX messages_parent ON messages(parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX messages_parent_delivery ON messages(parent_delivery_id)
    WHERE parent_delivery_id IS NOT NULL;
CREATE INDEX deliveries_status ON deliveries(channel, status, created_at);
"#,
    ),
];

pub const POSTGRES: &[(&str, &str)] = &[
    (
        "001_messages_and_deliveries",
        r#"
CREATE TABLE messages (
    id BIGSERIAL PRIMARY KEY,
    channel TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    control_id TEXT,
    message_type TEXT,
    status TEXT NOT NULL,
    error TEXT,
    patient_key TEXT,
    peer TEXT,
    raw BYTEA NOT NULL,
    transformed BYTEA
);
CREATE INDEX messages_channel_time ON messages(channel, received_at);
CREATE INDEX messages_time ON messages(received_at);
CREATE INDEX messages_control_id ON messages(control_id);
CREATE TABLE deliveries (
    id BIGSERIAL PRIMARY KEY,
    message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    destination TEXT NOT NULL,
    status TEXT NOT NULL,
    ordering_key TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX deliveries_pending ON deliveries(channel, destination, id)
    WHERE status IN ('queued', 'retrying');
CREATE INDEX deliveries_message ON deliveries(message_id);
CREATE TABLE delivery_attempts (
    id BIGSERIAL PRIMARY KEY,
    delivery_id BIGINT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    started_at BIGINT NOT NULL,
    duration_us BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX attempts_delivery ON delivery_attempts(delivery_id);
"#,
    ),
    (
        "002_message_lineage",
        r#"
ALTER TABLE messages ADD COLUMN parent_id BIGINT;
ALTER TABLE messages ADD COLUMN parent_delivery_id BIGINT;
CREATE INDEX messages_parent ON messages(parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX messages_parent_delivery ON messages(parent_delivery_id)
    WHERE parent_delivery_id IS NOT NULL;
CREATE INDEX deliveries_status ON deliveries(channel, status, created_at);
"#,
    ),
];
