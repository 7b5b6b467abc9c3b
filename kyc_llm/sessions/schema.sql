-- The service's tables (SQLite dialect; kept to SQL a PostgreSQL port can follow).
-- The audit log is append-only: triggers refuse UPDATE and DELETE on it.
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY, token_hash TEXT NOT NULL, client_key TEXT NOT NULL, status TEXT NOT NULL,
  created_at REAL NOT NULL, expires_at REAL NOT NULL, capture_s REAL NOT NULL, fps_hint REAL NOT NULL,
  llm_mode TEXT NOT NULL, first_frame_at REAL, last_seq INTEGER NOT NULL DEFAULT -1, last_t REAL,
  n_frames INTEGER NOT NULL DEFAULT 0, deciding_since REAL, decided_at REAL, decision TEXT,
  guidance TEXT, reasons TEXT NOT NULL DEFAULT '[]', frames_purged_at REAL);
CREATE INDEX IF NOT EXISTS sessions_client ON sessions (client_key, created_at);
CREATE INDEX IF NOT EXISTS sessions_created ON sessions (created_at);
-- The sweep looks for open sessions past their expiry and decisions whose claim went stale.
CREATE INDEX IF NOT EXISTS sessions_status ON sessions (status, expires_at);
CREATE TABLE IF NOT EXISTS challenges (
  session_id TEXT PRIMARY KEY REFERENCES sessions(id), steps TEXT NOT NULL, wording TEXT NOT NULL,
  source TEXT NOT NULL, fallback_reason TEXT);
CREATE TABLE IF NOT EXISTS frames (
  session_id TEXT NOT NULL REFERENCES sessions(id), seq INTEGER NOT NULL, t REAL NOT NULL,
  client_t REAL, received_at REAL NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
  width INTEGER NOT NULL, height INTEGER NOT NULL, n_faces INTEGER NOT NULL, summary TEXT NOT NULL,
  landmarks BLOB, stored_key TEXT,
  PRIMARY KEY (session_id, seq), UNIQUE (session_id, sha256));
-- What the page said about its camera (client-reported, validated): the first report counts.
CREATE TABLE IF NOT EXISTS camera_reports (
  session_id TEXT PRIMARY KEY REFERENCES sessions(id), report TEXT NOT NULL, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS action_evidence (
  session_id TEXT NOT NULL REFERENCES sessions(id), idx INTEGER NOT NULL, action TEXT NOT NULL,
  start_s REAL NOT NULL, end_s REAL NOT NULL, verdict TEXT NOT NULL, detail TEXT NOT NULL,
  PRIMARY KEY (session_id, idx));
CREATE TABLE IF NOT EXISTS decisions (
  session_id TEXT PRIMARY KEY REFERENCES sessions(id), decision TEXT NOT NULL, guidance TEXT NOT NULL,
  reasons TEXT NOT NULL, rationale TEXT NOT NULL, llm_used INTEGER NOT NULL, evidence TEXT NOT NULL,
  judgment TEXT, keyframes TEXT NOT NULL, decided_at REAL NOT NULL, duration_ms REAL NOT NULL);
CREATE TABLE IF NOT EXISTS llm_calls (
  id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL REFERENCES sessions(id),
  kind TEXT NOT NULL, outcome TEXT NOT NULL, model TEXT, template_hashes TEXT NOT NULL,
  usage TEXT NOT NULL, raw_text TEXT, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
  id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT, client_key TEXT, severity TEXT NOT NULL,
  cause TEXT NOT NULL, message TEXT NOT NULL, created_at REAL NOT NULL, acknowledged_at REAL,
  acknowledged_by TEXT);
CREATE INDEX IF NOT EXISTS alerts_open ON alerts (acknowledged_at, created_at);
CREATE TABLE IF NOT EXISTS audit_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, session_id TEXT, actor TEXT NOT NULL,
  event TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_session ON audit_log (session_id, id);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
