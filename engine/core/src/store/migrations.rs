//! Schema migrations, one list per backend, applied in order and recorded in
//! `medway_schema_migrations`. Append new steps; never edit a released one.
//!
//! `004_message_origin`: a source's ingestion key (`origin`), unique per channel when present,
//! so a source that re-reads its input after a crash never stores a message twice.

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
    (
        "003_clinical",
        r#"
CREATE TABLE observations (
    id INTEGER PRIMARY KEY,
    patient TEXT NOT NULL,
    kind TEXT NOT NULL,
    value REAL,
    text TEXT,
    unit TEXT NOT NULL,
    original TEXT NOT NULL,
    observed_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    set_id TEXT,
    message_id INTEGER,
    delivery_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    UNIQUE (delivery_id, seq)
);
CREATE INDEX observations_patient ON observations(patient, observed_at);
CREATE TABLE patient_flags (
    patient TEXT PRIMARY KEY,
    spo2_scale INTEGER NOT NULL DEFAULT 1,
    updated_at INTEGER NOT NULL
);
CREATE TABLE scores (
    id INTEGER PRIMARY KEY,
    patient TEXT NOT NULL,
    at INTEGER NOT NULL,
    news2_total INTEGER,
    news2_band TEXT,
    qsofa_total INTEGER,
    sirs_total INTEGER,
    complete INTEGER NOT NULL,
    detail TEXT NOT NULL,
    message_id INTEGER,
    delivery_id INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX scores_patient ON scores(patient, at);
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    patient TEXT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    rank INTEGER NOT NULL,
    state TEXT NOT NULL,
    title TEXT NOT NULL,
    detail TEXT NOT NULL,
    score_id INTEGER,
    raised_at INTEGER NOT NULL,
    suppress_until INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    escalated_from TEXT,
    acknowledged_by TEXT,
    acknowledged_at INTEGER,
    resolved_by TEXT,
    resolved_at INTEGER,
    dispatched_message_id INTEGER
);
CREATE INDEX alerts_patient_rule ON alerts(patient, rule, raised_at);
CREATE INDEX alerts_state ON alerts(state, raised_at);
"#,
    ),
    (
        "004_message_origin",
        r#"
ALTER TABLE messages ADD COLUMN origin TEXT;
CREATE UNIQUE INDEX messages_origin ON messages(channel, origin) WHERE origin IS NOT NULL;
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
    (
        "003_clinical",
        r#"
CREATE TABLE observations (
    id BIGSERIAL PRIMARY KEY,
    patient TEXT NOT NULL,
    kind TEXT NOT NULL,
    value DOUBLE PRECISION,
    text TEXT,
    unit TEXT NOT NULL,
    original TEXT NOT NULL,
    observed_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    set_id TEXT,
    message_id BIGINT,
    delivery_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL,
    UNIQUE (delivery_id, seq)
);
CREATE INDEX observations_patient ON observations(patient, observed_at);
CREATE TABLE patient_flags (
    patient TEXT PRIMARY KEY,
    spo2_scale BIGINT NOT NULL DEFAULT 1,
    updated_at BIGINT NOT NULL
);
CREATE TABLE scores (
    id BIGSERIAL PRIMARY KEY,
    patient TEXT NOT NULL,
    at BIGINT NOT NULL,
    news2_total BIGINT,
    news2_band TEXT,
    qsofa_total BIGINT,
    sirs_total BIGINT,
    complete BOOLEAN NOT NULL,
    detail TEXT NOT NULL,
    message_id BIGINT,
    delivery_id BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX scores_patient ON scores(patient, at);
CREATE TABLE alerts (
    id BIGSERIAL PRIMARY KEY,
    patient TEXT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    rank BIGINT NOT NULL,
    state TEXT NOT NULL,
    title TEXT NOT NULL,
    detail TEXT NOT NULL,
    score_id BIGINT,
    raised_at BIGINT NOT NULL,
    suppress_until BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    escalated_from TEXT,
    acknowledged_by TEXT,
    acknowledged_at BIGINT,
    resolved_by TEXT,
    resolved_at BIGINT,
    dispatched_message_id BIGINT
);
CREATE INDEX alerts_patient_rule ON alerts(patient, rule, raised_at);
CREATE INDEX alerts_state ON alerts(state, raised_at);
"#,
    ),
    (
        "004_message_origin",
        r#"
ALTER TABLE messages ADD COLUMN origin TEXT;
CREATE UNIQUE INDEX messages_origin ON messages(channel, origin) WHERE origin IS NOT NULL;
"#,
    ),
];
