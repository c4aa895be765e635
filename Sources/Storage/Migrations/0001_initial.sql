-- Initial schema: images with their bytes, model versions, one code per (image, model version),
-- retrain jobs, and key/value settings (the active model version lives there).
-- Timestamps are ISO 8601 UTC text with milliseconds.

CREATE TABLE images (
    -- AUTOINCREMENT: an id is never reused after a delete, so a client's id always means one image.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256 TEXT NOT NULL UNIQUE,
    content_type TEXT NOT NULL,
    width INTEGER NOT NULL CHECK (width >= 0),
    height INTEGER NOT NULL CHECK (height >= 0),
    byte_size INTEGER NOT NULL CHECK (byte_size >= 0),
    original BLOB NOT NULL,
    thumbnail BLOB NOT NULL,
    metadata TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE models (
    version INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    bits INTEGER NOT NULL CHECK (bits > 0 AND bits % 8 = 0),
    config TEXT NOT NULL,
    weights BLOB NOT NULL,
    metrics TEXT,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE codes (
    image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    model_version INTEGER NOT NULL REFERENCES models (version),
    code BLOB NOT NULL,
    PRIMARY KEY (image_id, model_version)
) WITHOUT ROWID;

-- Loading an index reads every code of one version in id order; covering, so the table is not touched.
CREATE INDEX codes_by_model ON codes (model_version, image_id, code);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    progress REAL NOT NULL DEFAULT 0,
    message TEXT,
    config TEXT,
    -- No foreign key: a job names the version it is producing before that row exists.
    model_version INTEGER,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    started_at TEXT,
    finished_at TEXT
);

CREATE INDEX jobs_by_status ON jobs (status);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
