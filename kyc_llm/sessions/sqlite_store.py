"""``Store`` on SQLite: one file in WAL mode, one connection per thread, plain portable SQL.

WAL lets the gunicorn workers read while one of them writes; ``BEGIN IMMEDIATE`` makes each
multi-statement change (a frame insert with its sequence checks) atomic across processes.
The audit log is append-only: triggers refuse UPDATE and DELETE on it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, NoReturn

from ..challenge import Step
from ..errors import ConfigError
from .errors import FrameRejected, SessionClosed, SessionNotFound
from .framestore import MIN_FREE_BYTES
from .store import (
    OPEN_STATUSES,
    AlertRecord,
    ChallengeRecord,
    DecisionRecord,
    FrameRecord,
    LlmCallRecord,
    SessionRecord,
)

SCHEMA_VERSION = 1
MIN_SQLITE = (3, 35, 0)
SCHEMA_FILE = Path(__file__).with_name("schema.sql")

_SESSION_COLS = ("id", "token_hash", "client_key", "status", "created_at", "expires_at", "capture_s",
                 "fps_hint", "llm_mode", "first_frame_at", "last_seq", "last_t", "n_frames",
                 "deciding_since", "decided_at", "decision", "guidance", "reasons", "frames_purged_at")
_FRAME_COLS = ("session_id", "seq", "t", "client_t", "received_at", "sha256", "size", "width", "height",
               "n_faces", "summary", "landmarks", "stored_key")
_FRAME_COLS_NO_LANDMARKS = tuple(c for c in _FRAME_COLS if c != "landmarks")  # the 5.7 KB blob
# An open session past its expiry, or one created before a bound whose capture never started;
# its parameters: the two open statuses, now, that bound.
_EXPIRED = "((status IN (?, ?) AND expires_at <= ?) OR (status = 'created' AND created_at < ?))"
# A claim to decide whose decider stopped re-stamping it; its parameter: the stale bound.
_STALE_CLAIM = "(status = 'deciding' AND deciding_since < ?)"


class SQLiteStore:
    """The SQLite implementation of ``Store``. Safe to share between threads of one process."""

    def __init__(self, path: Path) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:  # UPDATE ... RETURNING
            raise ConfigError(f"SQLite {'.'.join(map(str, MIN_SQLITE))} or later is needed; this Python "
                              f"has {sqlite3.sqlite_version}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        conn = self._conn()
        conn.executescript(SCHEMA_FILE.read_text(encoding="utf-8"))
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._inode = os.stat(self.path).st_ino  # the file this store opened (see ping)

    # -- connections -------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=15.0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=15000")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def ping(self) -> None:
        """Raise ``sqlite3.Error`` unless the database can take a session now: it is still the
        file opened at the start (connections keep writing to a deleted one, and new ones
        would start an empty one), it holds the service's tables, it takes the write lock (a
        read-only file does not) and its disk has room."""
        try:
            same = os.stat(self.path).st_ino == self._inode
        except OSError:
            same = False
        if not same:
            raise sqlite3.DatabaseError(f"{self.path} was deleted or replaced since the start")
        conn = self._conn()
        conn.execute("SELECT 1 FROM sessions LIMIT 1").fetchall()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        if shutil.disk_usage(self.path.parent).free < MIN_FREE_BYTES:
            raise sqlite3.OperationalError(f"less than {MIN_FREE_BYTES >> 20} MB free on the database's disk")

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    # -- sessions ----------------------------------------------------------------------------
    def create_session(self, session: SessionRecord, challenge: ChallengeRecord, at: float) -> None:
        row = _session_row(session)
        with self._tx() as c:
            c.execute(f"INSERT INTO sessions ({','.join(_SESSION_COLS)}) VALUES "
                      f"({','.join('?' * len(_SESSION_COLS))})", [row[k] for k in _SESSION_COLS])
            c.execute("INSERT INTO challenges (session_id, steps, wording, source, fallback_reason) "
                      "VALUES (?, ?, ?, ?, ?)",
                      (session.id, json.dumps([s.as_dict() for s in challenge.steps]),
                       json.dumps(challenge.wording), challenge.source, challenge.fallback_reason))
            _audit(c, session.id, "client", "session_created",
                   {"steps": [s.action for s in challenge.steps], "source": challenge.source}, at)

    def get_session(self, session_id: str) -> SessionRecord | None:
        row = self._conn().execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return _session(row) if row else None

    def get_challenge(self, session_id: str) -> ChallengeRecord | None:
        row = self._conn().execute("SELECT * FROM challenges WHERE session_id = ?", (session_id,)).fetchone()
        if row is None:
            return None
        steps = tuple(Step(s["action"], s["start_s"], s["end_s"]) for s in json.loads(row["steps"]))
        return ChallengeRecord(session_id, steps, json.loads(row["wording"]), row["source"],
                               row["fallback_reason"])

    def expire(self, session_id: str, at: float, unstarted_before: float | None = None) -> bool:
        """Expire an open session past its expiry or, with ``unstarted_before``, one created
        before then whose capture never started. True if this call expired it."""
        with self._tx() as c:
            row = c.execute(f"UPDATE sessions SET status = 'expired' WHERE id = ? AND {_EXPIRED} RETURNING expires_at",
                            (session_id, *OPEN_STATUSES, at, _never(unstarted_before))).fetchone()
            if row is not None:
                why = "time_up" if row["expires_at"] <= at else "capture_not_started"
                _audit(c, session_id, "system", "session_expired", {"reason": why}, at)
            return row is not None

    def stale_decisions(self, stale_before: float) -> list[str]:
        rows = self._conn().execute(f"SELECT id FROM sessions WHERE {_STALE_CLAIM}", (stale_before,)).fetchall()
        return [r["id"] for r in rows]

    def expired_open_sessions(self, now: float, unstarted_before: float | None = None) -> list[str]:
        rows = self._conn().execute(f"SELECT id FROM sessions WHERE {_EXPIRED}",
                                    (*OPEN_STATUSES, now, _never(unstarted_before))).fetchall()
        return [r["id"] for r in rows]

    # -- frames ------------------------------------------------------------------------------
    def has_frame_hash(self, session_id: str, sha256: str) -> bool:
        row = self._conn().execute("SELECT 1 FROM frames WHERE session_id = ? AND sha256 = ?",
                                   (session_id, sha256)).fetchone()
        return row is not None

    def add_frame(self, frame: FrameRecord, max_frames: int) -> SessionRecord:
        """Insert one frame if the session is open and the frame follows the last one.

        Returns the updated session. Raises ``SessionNotFound``, ``SessionClosed`` or
        ``FrameRejected`` (``out_of_sequence``, ``replayed_frame``, ``too_many_frames``).
        """
        with self._tx() as c:
            # One statement checks and advances the session; the precise refusal is looked up
            # only when it refuses (four statements per frame instead of six).
            rows = c.execute(
                "UPDATE sessions SET status = 'capturing', first_frame_at = COALESCE(first_frame_at, ?), "
                "last_seq = ?, last_t = ?, n_frames = n_frames + 1 "
                "WHERE id = ? AND status IN (?, ?) AND last_seq < ? AND n_frames < ? RETURNING *",
                (frame.received_at, frame.seq, frame.t, frame.session_id, *OPEN_STATUSES, frame.seq,
                 max_frames)).fetchall()
            if not rows:
                _refuse_frame(c.execute("SELECT * FROM sessions WHERE id = ?", (frame.session_id,)).fetchone(),
                              frame, max_frames)
            try:
                c.execute(f"INSERT INTO frames ({','.join(_FRAME_COLS)}) VALUES "
                          f"({','.join('?' * len(_FRAME_COLS))})", _frame_values(frame))
            except sqlite3.IntegrityError:
                raise FrameRejected("the same frame was already uploaded", code="replayed_frame") from None
            session = _session(rows[0])
            if session.n_frames == 1:
                _audit(c, frame.session_id, "client", "capture_started", {"seq": frame.seq}, frame.received_at)
            return session

    def frames(self, session_id: str, with_landmarks: bool = False) -> list[FrameRecord]:
        cols = _FRAME_COLS if with_landmarks else _FRAME_COLS_NO_LANDMARKS
        rows = self._conn().execute(f"SELECT {','.join(cols)} FROM frames WHERE session_id = ? ORDER BY seq",
                                    (session_id,)).fetchall()
        return [_frame(r) for r in rows]

    def frame(self, session_id: str, seq: int, with_landmarks: bool = False) -> FrameRecord | None:
        """One frame's record (its landmarks too if asked), or None."""
        cols = _FRAME_COLS if with_landmarks else _FRAME_COLS_NO_LANDMARKS
        row = self._conn().execute(f"SELECT {','.join(cols)} FROM frames WHERE session_id = ? AND seq = ?",
                                   (session_id, seq)).fetchone()
        return _frame(row) if row else None

    def set_frame_summary(self, session_id: str, seq: int, summary: dict[str, Any]) -> bool:
        """Replace a frame's measured numbers with those its lossless patch gave, once: while
        the session is open and the frame has no patch result yet (two requests racing with
        a patch each: the first counts). False when nothing was written."""
        with self._tx() as c:
            rows = c.execute(
                "UPDATE frames SET summary = ? WHERE session_id = ? AND seq = ? "
                "AND NOT COALESCE(json_extract(summary, '$.texture.lossless'), 0) "
                "AND NOT COALESCE(json_extract(summary, '$.patch_mismatch'), 0) AND EXISTS "
                "(SELECT 1 FROM sessions WHERE id = ? AND status IN (?, ?)) RETURNING seq",
                (json.dumps(summary), session_id, seq, session_id, *OPEN_STATUSES)).fetchall()
            return bool(rows)

    def set_camera_report(self, session_id: str, report: dict[str, Any], at: float) -> bool:
        """Keep the page's camera report while the session is open; the first one counts.
        Returns whether this one was stored."""
        with self._tx() as c:
            rows = c.execute(
                "INSERT INTO camera_reports (session_id, report, received_at) SELECT ?, ?, ? WHERE EXISTS "
                "(SELECT 1 FROM sessions WHERE id = ? AND status IN (?, ?)) ON CONFLICT (session_id) DO NOTHING "
                "RETURNING session_id", (session_id, json.dumps(report), at, session_id, *OPEN_STATUSES)).fetchall()
            if rows:
                _audit(c, session_id, "client", "camera_reported", report, at)
            return bool(rows)

    def camera_report(self, session_id: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT report FROM camera_reports WHERE session_id = ?", (session_id,)).fetchone()
        return json.loads(row["report"]) if row else None

    def mark_frames_purged(self, session_id: str, at: float) -> None:
        with self._tx() as c:
            c.execute("UPDATE frames SET landmarks = NULL, stored_key = NULL WHERE session_id = ?", (session_id,))
            c.execute("UPDATE sessions SET frames_purged_at = ? WHERE id = ?", (at, session_id))
            _audit(c, session_id, "system", "frames_deleted", {}, at)

    def sessions_to_purge(self, now: float, review_before: float, keep_review: bool,
                          keep_all: bool) -> list[str]:
        """Sessions whose frames the retention policy says to delete now."""
        if keep_all:
            sql = "SELECT id FROM sessions WHERE frames_purged_at IS NULL AND status = 'expired'"
            args: tuple[Any, ...] = ()
        else:
            sql = ("SELECT id FROM sessions WHERE frames_purged_at IS NULL AND (status = 'expired' OR "
                   "(status = 'decided' AND (decision != 'review' OR ? = 0 OR decided_at < ?)))")
            args = (1 if keep_review else 0, review_before)
        return [r["id"] for r in self._conn().execute(sql, args).fetchall()]

    # -- decisions ---------------------------------------------------------------------------
    def claim_decision(self, session_id: str, at: float, stale_before: float, by: str = "client") -> bool:
        """Move an open (or stale deciding) session to ``deciding``. True if this caller won;
        ``at`` identifies the claim (``save_decision``), ``by`` is the audit actor."""
        with self._tx() as c:
            cur = c.execute("UPDATE sessions SET status = 'deciding', deciding_since = ? WHERE id = ? AND "
                            f"(status IN (?, ?) OR {_STALE_CLAIM})",
                            (at, session_id, *OPEN_STATUSES, stale_before))
            if cur.rowcount:
                _audit(c, session_id, by, "decision_started", {}, at)
            return cur.rowcount == 1

    def refresh_claim(self, session_id: str, stamp: float, now: float) -> bool:
        """Re-stamp a claim to decide (``stamp`` -> ``now``) if it still holds. Not audited:
        the claim itself was."""
        with self._tx() as c:
            cur = c.execute("UPDATE sessions SET deciding_since = ? WHERE id = ? AND status = 'deciding' "
                            "AND deciding_since = ?", (now, session_id, stamp))
            return cur.rowcount == 1

    def save_decision(self, record: DecisionRecord, actions: list[dict[str, Any]], claimed_at: float) -> bool:
        """Store the decision of the claim made at ``claimed_at``. False (nothing stored) when
        that claim no longer holds: a later claim took the session over, or it is decided."""
        with self._tx() as c:
            cur = c.execute("UPDATE sessions SET status = 'decided', decided_at = ?, decision = ?, guidance = ?, "
                            "reasons = ? WHERE id = ? AND status = 'deciding' AND deciding_since = ?",
                            (record.decided_at, record.decision, record.guidance, json.dumps(record.reasons),
                             record.session_id, claimed_at))
            if cur.rowcount != 1:
                return False
            c.execute("INSERT OR REPLACE INTO decisions (session_id, decision, guidance, reasons, rationale, "
                      "llm_used, evidence, judgment, keyframes, decided_at, duration_ms) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (record.session_id, record.decision, record.guidance, json.dumps(record.reasons),
                       record.rationale, int(record.llm_used), json.dumps(record.evidence),
                       json.dumps(record.judgment) if record.judgment is not None else None,
                       json.dumps(record.keyframes), record.decided_at, record.duration_ms))
            c.execute("DELETE FROM action_evidence WHERE session_id = ?", (record.session_id,))
            for i, a in enumerate(actions):
                c.execute("INSERT INTO action_evidence (session_id, idx, action, start_s, end_s, verdict, detail) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (record.session_id, i, a["action"], a["start_s"], a["end_s"], a["verdict"],
                           json.dumps(a)))
            _audit(c, record.session_id, "system", "decided",
                   {"decision": record.decision, "reasons": record.reasons, "llm_used": record.llm_used},
                   record.decided_at)
            return True

    def get_decision(self, session_id: str) -> DecisionRecord | None:
        r = self._conn().execute("SELECT * FROM decisions WHERE session_id = ?", (session_id,)).fetchone()
        if r is None:
            return None
        return DecisionRecord(r["session_id"], r["decision"], r["guidance"], json.loads(r["reasons"]),
                              r["rationale"], bool(r["llm_used"]), json.loads(r["evidence"]),
                              json.loads(r["judgment"]) if r["judgment"] else None,
                              json.loads(r["keyframes"]), r["decided_at"], r["duration_ms"])

    def action_evidence(self, session_id: str) -> list[dict[str, Any]]:
        rows = self._conn().execute("SELECT detail FROM action_evidence WHERE session_id = ? ORDER BY idx",
                                    (session_id,)).fetchall()
        return [json.loads(r["detail"]) for r in rows]

    def add_llm_call(self, session_id: str, call: LlmCallRecord) -> None:
        self._conn().execute(
            "INSERT INTO llm_calls (session_id, kind, outcome, model, template_hashes, usage, raw_text, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (session_id, call.kind, call.outcome, call.model, json.dumps(call.template_hashes),
             json.dumps(call.usage), call.raw_text, call.created_at))

    def llm_calls(self, session_id: str) -> list[LlmCallRecord]:
        rows = self._conn().execute("SELECT * FROM llm_calls WHERE session_id = ? ORDER BY id",
                                    (session_id,)).fetchall()
        return [LlmCallRecord(r["kind"], r["outcome"], r["model"],
                              json.loads(r["template_hashes"]), json.loads(r["usage"]), r["raw_text"],
                              r["created_at"]) for r in rows]

    # -- queries for operators and limits -----------------------------------------------------
    def list_sessions(self, *, status: str | None = None, decision: str | None = None,
                      since: float | None = None, until: float | None = None,
                      limit: int = 50, offset: int = 0) -> list[SessionRecord]:
        where, args = _filters(status=status, decision=decision, since=since, until=until)
        rows = self._conn().execute(f"SELECT * FROM sessions{where} ORDER BY created_at DESC LIMIT ? OFFSET ?",
                                    (*args, limit, offset)).fetchall()
        return [_session(r) for r in rows]

    def failures_since(self, client_key: str, since: float) -> list[float]:
        rows = self._conn().execute("SELECT decided_at FROM sessions WHERE client_key = ? AND decision = 'fail' "
                                    "AND decided_at >= ? ORDER BY decided_at", (client_key, since)).fetchall()
        return [r["decided_at"] for r in rows]

    def sessions_created_since(self, client_key: str, since: float) -> int:
        row = self._conn().execute("SELECT COUNT(*) AS n FROM sessions WHERE client_key = ? AND created_at >= ?",
                                   (client_key, since)).fetchone()
        return int(row["n"])

    def add_alert(self, alert: AlertRecord, *, unless_open: bool = False) -> int | None:
        with self._tx() as c:
            # Checked inside the write transaction: two workers raising the same alert at
            # once cannot both see none open.
            if unless_open and c.execute(
                    "SELECT 1 FROM alerts WHERE session_id IS ? AND cause = ? AND acknowledged_at IS NULL LIMIT 1",
                    (alert.session_id, alert.cause)).fetchone():
                return None
            cur = c.execute("INSERT INTO alerts (session_id, client_key, severity, cause, message, created_at) "
                            "VALUES (?, ?, ?, ?, ?, ?)", (alert.session_id, alert.client_key, alert.severity,
                                                          alert.cause, alert.message, alert.created_at))
            alert_id = int(cur.lastrowid or 0)
            _audit(c, alert.session_id, "system", "alert_raised",
                   {"alert_id": alert_id, "severity": alert.severity, "cause": alert.cause}, alert.created_at)
        return alert_id

    def list_alerts(self, *, severity: str | None = None, acknowledged: bool | None = None,
                    session_id: str | None = None, cause: str | None = None,
                    limit: int = 100) -> list[AlertRecord]:
        clauses, args = [], []
        if cause is not None:
            clauses.append("cause = ?")
            args.append(cause)
        if severity is not None:
            clauses.append("severity = ?")
            args.append(severity)
        if acknowledged is not None:
            clauses.append("acknowledged_at IS NOT NULL" if acknowledged else "acknowledged_at IS NULL")
        if session_id is not None:
            clauses.append("session_id = ?")
            args.append(session_id)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        rows = self._conn().execute(f"SELECT * FROM alerts{where} ORDER BY id DESC LIMIT ?",
                                    (*args, limit)).fetchall()
        return [_alert(r) for r in rows]

    def ack_alert(self, alert_id: int, by: str, at: float) -> AlertRecord | None:
        with self._tx() as c:
            row = c.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
            if row is None:
                return None
            if row["acknowledged_at"] is None:
                c.execute("UPDATE alerts SET acknowledged_at = ?, acknowledged_by = ? WHERE id = ?",
                          (at, by, alert_id))
                _audit(c, row["session_id"], "operator", "alert_acknowledged", {"alert_id": alert_id, "by": by}, at)
            return _alert(c.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone())

    def audit(self, session_id: str | None, actor: str, event: str, detail: dict[str, Any], at: float) -> None:
        _audit(self._conn(), session_id, actor, event, detail, at)

    def audit_log(self, session_id: str) -> list[dict[str, Any]]:
        rows = self._conn().execute("SELECT at, actor, event, detail FROM audit_log WHERE session_id = ? "
                                    "ORDER BY id", (session_id,)).fetchall()
        return [{"at": r["at"], "actor": r["actor"], "event": r["event"], "detail": json.loads(r["detail"])}
                for r in rows]

    def stats(self, since: float | None = None) -> dict[str, Any]:
        where, args = _filters(since=since)
        c = self._conn()
        by_status = {r["status"]: r["n"] for r in c.execute(
            f"SELECT status, COUNT(*) AS n FROM sessions{where} GROUP BY status", args)}
        by_decision = {r["decision"]: r["n"] for r in c.execute(
            f"SELECT decision, COUNT(*) AS n FROM sessions{where}{' AND' if where else ' WHERE'} "
            "decision IS NOT NULL GROUP BY decision", args)}
        reasons: dict[str, int] = {}
        for r in c.execute(f"SELECT reasons FROM sessions{where}", args):
            for code in json.loads(r["reasons"]):
                reasons[code] = reasons.get(code, 0) + 1
        latency = [r["duration_ms"] for r in c.execute(
            "SELECT d.duration_ms FROM decisions d JOIN sessions s ON s.id = d.session_id"
            + (" WHERE s.created_at >= ?" if since is not None else "") + " ORDER BY d.duration_ms", args)]
        open_alerts = {r["severity"]: r["n"] for r in c.execute(
            "SELECT severity, COUNT(*) AS n FROM alerts WHERE acknowledged_at IS NULL GROUP BY severity")}
        decided = sum(by_decision.values())
        return {
            "sessions": sum(by_status.values()), "by_status": by_status, "by_decision": by_decision,
            "pass_rate": round(by_decision.get("pass", 0) / decided, 4) if decided else None,
            "review_rate": round(by_decision.get("review", 0) / decided, 4) if decided else None,
            "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
            "decision_ms_p50": _pct(latency, 0.5), "decision_ms_p95": _pct(latency, 0.95),
            "open_alerts": open_alerts,
        }


def _never(before: float | None) -> float:
    """A time bound that nothing precedes when there is none."""
    return float("-inf") if before is None else before


def _refuse_frame(row: sqlite3.Row | None, frame: FrameRecord, max_frames: int) -> NoReturn:
    """Raise why ``add_frame`` cannot take ``frame`` into the session of ``row``."""
    if row is None:
        raise SessionNotFound("no such session")
    if row["status"] not in OPEN_STATUSES:
        raise SessionClosed(f"session is {row['status']}; no more frames are accepted")
    if frame.seq <= row["last_seq"]:
        raise FrameRejected(f"frame {frame.seq} is out of sequence (last was {row['last_seq']})",
                            code="out_of_sequence")
    raise FrameRejected(f"at most {max_frames} frames per session", code="too_many_frames")


def _audit(c: sqlite3.Connection, session_id: str | None, actor: str, event: str,
           detail: dict[str, Any], at: float) -> None:
    c.execute("INSERT INTO audit_log (at, session_id, actor, event, detail) VALUES (?, ?, ?, ?, ?)",
              (at, session_id, actor, event, json.dumps(detail, sort_keys=True)))


def _filters(**kw: Any) -> tuple[str, tuple[Any, ...]]:
    clauses, args = [], []
    ops = {"status": "status = ?", "decision": "decision = ?", "since": "created_at >= ?",
           "until": "created_at < ?"}
    for name, value in kw.items():
        if value is not None:
            clauses.append(ops[name])
            args.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def _pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))], 1)


def _session_row(s: SessionRecord) -> dict[str, Any]:
    row = {k: getattr(s, k) for k in _SESSION_COLS}
    row["reasons"] = json.dumps(s.reasons)
    return row


def _session(r: sqlite3.Row) -> SessionRecord:
    d = {k: r[k] for k in _SESSION_COLS}
    d["reasons"] = json.loads(d["reasons"])
    return SessionRecord(**d)


def _frame_values(f: FrameRecord) -> list[Any]:
    d = {k: getattr(f, k) for k in _FRAME_COLS}
    d["summary"] = json.dumps(f.summary)
    return [d[k] for k in _FRAME_COLS]


def _frame(r: sqlite3.Row) -> FrameRecord:
    d = {k: r[k] for k in r.keys()}
    d["summary"] = json.loads(d["summary"])
    return FrameRecord(**d)


def _alert(r: sqlite3.Row) -> AlertRecord:
    return AlertRecord(severity=r["severity"], cause=r["cause"], message=r["message"],
                       created_at=r["created_at"], session_id=r["session_id"], client_key=r["client_key"],
                       id=r["id"], acknowledged_at=r["acknowledged_at"], acknowledged_by=r["acknowledged_by"])
