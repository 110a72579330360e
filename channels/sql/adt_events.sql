-- The table the adt-normalize example channel writes to (destination "adt-rows").
-- psql postgres://postgres@127.0.0.1:5432/postgres -f channels/sql/adt_events.sql
CREATE SCHEMA IF NOT EXISTS medway_examples;
CREATE TABLE IF NOT EXISTS medway_examples.adt_events (
    delivery_id         BIGINT PRIMARY KEY,          -- Medway's idempotency key
    received_at         TIMESTAMPTZ NOT NULL,
    event               TEXT NOT NULL,               -- e.g. ADT^A01
    control_id          TEXT,
    mrn                 TEXT,
    assigning_authority TEXT,
    family_name         TEXT,
    given_name          TEXT,
    birth_date          TEXT,
    sex                 TEXT,
    ward                TEXT,
    message             TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS adt_events_mrn ON medway_examples.adt_events (mrn, assigning_authority);
