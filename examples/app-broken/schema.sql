-- The example app's schema. Every table has a primary key (Slony-I replicates
-- only tables with one); the app creates it at start when missing.
CREATE TABLE IF NOT EXISTS notes (
    id bigserial PRIMARY KEY,
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
