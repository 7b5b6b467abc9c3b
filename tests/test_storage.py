"""The SQLite store and the local frame store, directly (no HTTP)."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from kyc_llm.challenge import Step
from kyc_llm.sessions import open_store
from kyc_llm.sessions.errors import FrameRejected, SessionClosed, SessionNotFound
from kyc_llm.sessions.framestore import FrameStoreError, LocalFrameStore, frame_key
from kyc_llm.sessions.store import AlertRecord, ChallengeRecord, DecisionRecord, FrameRecord, SessionRecord

T0 = 1_700_000_000.0


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "db" / "kyc.sqlite3")
    yield s
    s.close()


def new_session(store, sid: str = "a" * 32, client: str = "c1", at: float = T0) -> SessionRecord:
    rec = SessionRecord(id=sid, token_hash="h" * 64, client_key=client, status="created", created_at=at,
                        expires_at=at + 180, capture_s=5.0, fps_hint=8.0, llm_mode="offline")
    store.create_session(rec, ChallengeRecord(sid, (Step("blink", 1.0, 3.0),), ["Blink"], "local", "offline"), at)
    return rec


def frame(sid: str, seq: int, sha: str | None = None, t: float = 0.0) -> FrameRecord:
    return FrameRecord(sid, seq, t, t, T0 + t, sha or f"{seq:064d}", 100, 64, 64, 0, {"t": t, "n_faces": 0})


def decision(sid: str, what: str, at: float) -> DecisionRecord:
    return DecisionRecord(sid, what, what, ["NO_FACE"] if what == "fail" else [], "r", False,
                          {"actions": []}, None, [], at, 12.0)


def test_schema_uses_wal_and_the_file_is_created(store, tmp_path):
    assert (tmp_path / "db" / "kyc.sqlite3").is_file()
    conn = sqlite3.connect(tmp_path / "db" / "kyc.sqlite3")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()


def test_session_and_challenge_round_trip(store):
    rec = new_session(store)
    assert store.get_session(rec.id) == rec
    ch = store.get_challenge(rec.id)
    assert ch.steps == (Step("blink", 1.0, 3.0),) and ch.wording == ["Blink"] and ch.fallback_reason == "offline"
    assert store.get_session("b" * 32) is None and store.get_challenge("b" * 32) is None


def test_add_frame_enforces_sequence_replay_count_and_state(store):
    sid = new_session(store).id
    s = store.add_frame(frame(sid, 0), max_frames=3)
    assert (s.status, s.last_seq, s.n_frames, s.first_frame_at) == ("capturing", 0, 1, T0)
    with pytest.raises(FrameRejected) as e:
        store.add_frame(frame(sid, 0, sha="x" * 64), max_frames=3)
    assert e.value.code == "out_of_sequence"
    with pytest.raises(FrameRejected) as e:
        store.add_frame(frame(sid, 1, sha=f"{0:064d}"), max_frames=3)
    assert e.value.code == "replayed_frame"
    store.add_frame(frame(sid, 1, t=0.1), max_frames=3)
    store.add_frame(frame(sid, 5, t=0.2), max_frames=3)
    with pytest.raises(FrameRejected) as e:
        store.add_frame(frame(sid, 6), max_frames=3)
    assert e.value.code == "too_many_frames"
    assert [f.seq for f in store.frames(sid)] == [0, 1, 5]
    assert store.frame(sid, 5) == store.frames(sid)[2] and store.frame(sid, 5).t == 0.2
    assert store.frame(sid, 2) is None and store.frame("b" * 32, 0) is None
    with pytest.raises(SessionNotFound):
        store.add_frame(frame("b" * 32, 0), max_frames=3)
    assert store.claim_decision(sid, T0 + 1, stale_before=T0)
    with pytest.raises(SessionClosed):
        store.add_frame(frame(sid, 7), max_frames=10)


def test_concurrent_uploads_never_store_a_sequence_twice(store):
    sid = new_session(store).id
    ok, refused = [], []

    def upload(seq: int, worker: int) -> None:
        try:
            store.add_frame(frame(sid, seq, sha=f"{worker}-{seq}".ljust(64, "0")), max_frames=1000)
            ok.append(seq)
        except FrameRejected:
            refused.append(seq)

    threads = [threading.Thread(target=lambda w=w: [upload(seq, w) for seq in range(40)]) for w in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    seqs = [f.seq for f in store.frames(sid)]
    assert seqs == sorted(set(seqs)) and len(seqs) == len(ok) and store.get_session(sid).n_frames == len(ok)
    assert len(ok) + len(refused) == 160


def test_decision_is_claimed_once_and_a_stale_claim_can_be_retaken(store):
    sid = new_session(store).id
    assert store.claim_decision(sid, T0 + 10, stale_before=T0) is True
    assert store.claim_decision(sid, T0 + 11, stale_before=T0) is False
    assert store.claim_decision(sid, T0 + 60, stale_before=T0 + 30) is True  # the first claimer died
    # The first claimer's decision comes late: the session is no longer its to decide.
    assert store.save_decision(decision(sid, "fail", T0 + 61), [], claimed_at=T0 + 10) is False
    assert store.get_session(sid).status == "deciding" and store.get_decision(sid) is None
    assert store.stale_decisions(T0 + 59) == [] and store.stale_decisions(T0 + 61) == [sid]
    assert store.save_decision(decision(sid, "pass", T0 + 61), [{"action": "blink", "start_s": 1.0, "end_s": 3.0,
                                                                 "verdict": "performed"}], claimed_at=T0 + 60)
    s = store.get_session(sid)
    assert (s.status, s.decision, s.guidance, s.decided_at) == ("decided", "pass", "pass", T0 + 61)
    assert store.claim_decision(sid, T0 + 200, stale_before=T0 + 199) is False
    assert store.save_decision(decision(sid, "fail", T0 + 62), [], claimed_at=T0 + 60) is False  # decided once
    assert store.get_decision(sid).decision == "pass" and store.stale_decisions(T0 + 1000) == []
    assert store.action_evidence(sid)[0]["verdict"] == "performed"
    assert store.get_decision(sid).duration_ms == 12.0


def test_audit_log_is_append_only(store, tmp_path):
    sid = new_session(store).id
    store.expire(sid, T0 + 181)
    events = [e["event"] for e in store.audit_log(sid)]
    assert events == ["session_created", "session_expired"]
    conn = sqlite3.connect(tmp_path / "db" / "kyc.sqlite3")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_log SET event = 'nothing'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_log")
    conn.close()


def test_expiry_only_after_the_deadline_and_only_open_sessions(store):
    sid = new_session(store).id
    assert store.expire(sid, T0 + 100) is False
    assert store.expired_open_sessions(T0 + 181) == [sid]
    assert store.expire(sid, T0 + 181) is True
    assert store.get_session(sid).status == "expired"
    assert store.expire(sid, T0 + 182) is False


def test_a_session_whose_capture_never_started_expires_at_its_start_deadline(store):
    unstarted, started = new_session(store, sid="1" * 32).id, new_session(store, sid="2" * 32).id
    store.add_frame(frame(started, 0), max_frames=10)
    assert store.expired_open_sessions(T0 + 40) == []
    assert store.expired_open_sessions(T0 + 40, unstarted_before=T0 + 30) == [unstarted]
    assert store.expire(started, T0 + 40, unstarted_before=T0 + 30) is False  # capturing: it started
    assert store.expire(unstarted, T0 + 40, unstarted_before=T0 + 30) is True
    assert store.get_session(unstarted).status == "expired"


def test_retention_selects_what_the_policy_deletes(store):
    ids = {name: new_session(store, sid=c * 32, at=T0).id for name, c in
           (("passed", "1"), ("failed", "2"), ("review_new", "3"), ("review_old", "4"), ("open", "5"), ("gone", "6"))}
    for name, what, at in (("passed", "pass", T0 + 10), ("failed", "fail", T0 + 10),
                           ("review_new", "review", T0 + 1000), ("review_old", "review", T0 + 10)):
        store.claim_decision(ids[name], at - 1, stale_before=0)
        store.save_decision(decision(ids[name], what, at), [], claimed_at=at - 1)
    store.expire(ids["gone"], T0 + 500)
    purge = set(store.sessions_to_purge(T0 + 2000, review_before=T0 + 100, keep_review=True, keep_all=False))
    assert purge == {ids["passed"], ids["failed"], ids["review_old"], ids["gone"]}
    everything = set(store.sessions_to_purge(T0 + 2000, review_before=0, keep_review=False, keep_all=False))
    assert everything == purge | {ids["review_new"]}
    assert store.sessions_to_purge(T0 + 2000, 0, keep_review=True, keep_all=True) == [ids["gone"]]
    store.mark_frames_purged(ids["passed"], T0 + 2000)
    assert ids["passed"] not in store.sessions_to_purge(T0 + 2000, T0 + 100, True, False)


def test_failures_alerts_and_stats(store):
    for i, what in enumerate(("fail", "fail", "pass")):
        sid = new_session(store, sid=str(i) * 32, client="c1", at=T0 + i).id
        store.claim_decision(sid, T0 + 10 + i, stale_before=0)
        store.save_decision(decision(sid, what, T0 + 10 + i), [], claimed_at=T0 + 10 + i)
    new_session(store, sid="9" * 32, client="c2", at=T0 + 5)
    assert store.failures_since("c1", T0) == [T0 + 10, T0 + 11]
    assert store.failures_since("c1", T0 + 10.5) == [T0 + 11]
    assert store.failures_since("c2", T0) == []
    assert store.sessions_created_since("c1", T0 + 1) == 2
    a = store.add_alert(AlertRecord("high", "replayed_frame", "m", T0, session_id="0" * 32, client_key="c1"))
    store.add_alert(AlertRecord("low", "llm_unavailable", "m", T0 + 1))
    assert [x.cause for x in store.list_alerts(severity="high")] == ["replayed_frame"]
    acked = store.ack_alert(a, "bob", T0 + 50)
    assert acked.acknowledged_by == "bob" and acked.acknowledged_at == T0 + 50
    assert store.ack_alert(a, "eve", T0 + 60).acknowledged_by == "bob"  # first acknowledgement stays
    assert store.ack_alert(999, "bob", T0) is None
    assert [x.cause for x in store.list_alerts(acknowledged=False)] == ["llm_unavailable"]
    stats = store.stats()
    assert stats["sessions"] == 4 and stats["by_decision"] == {"fail": 2, "pass": 1}
    assert stats["reasons"] == {"NO_FACE": 2} and stats["open_alerts"] == {"low": 1}
    assert store.stats(since=T0 + 4)["sessions"] == 1
    assert [s.id for s in store.list_sessions(decision="fail")] == ["1" * 32, "0" * 32]
    assert [s.id for s in store.list_sessions(limit=1, offset=1)] == ["2" * 32]


def test_an_alert_raised_unless_open_is_stored_once_per_session_and_cause(store):
    replay = lambda sid, at: AlertRecord("high", "replayed_frame", "m", at, session_id=sid)  # noqa: E731
    first = store.add_alert(replay("a" * 32, T0), unless_open=True)
    assert first is not None and store.add_alert(replay("a" * 32, T0 + 1), unless_open=True) is None
    assert store.add_alert(replay("b" * 32, T0 + 2), unless_open=True) is not None  # another session
    assert store.add_alert(AlertRecord("high", "tampered_upload", "m", T0, session_id="a" * 32),
                           unless_open=True) is not None  # another cause
    store.ack_alert(first, "bob", T0 + 3)
    assert store.add_alert(replay("a" * 32, T0 + 4), unless_open=True) is not None  # the open one was handled
    assert store.add_alert(replay("a" * 32, T0 + 5)) is not None  # without unless_open: always stored
    assert len(store.list_alerts(session_id="a" * 32, cause="replayed_frame")) == 3


def test_concurrent_alerts_raised_unless_open_store_one(store):
    # Each thread has its own connection, as each worker process has: a check made outside the
    # write transaction lets two of them through.
    for round_ in range(20):
        sid = f"{round_:032x}"
        barrier = threading.Barrier(12)

        def raise_it() -> None:
            barrier.wait()
            store.add_alert(AlertRecord("high", "replayed_frame", "m", T0, session_id=sid), unless_open=True)

        threads = [threading.Thread(target=raise_it) for _ in range(12)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert len(store.list_alerts(session_id=sid)) == 1


def test_local_frame_store(tmp_path):
    fs = LocalFrameStore(tmp_path / "frames")
    key = frame_key("a" * 32, 3, "3" * 16)
    assert key == "a" * 32 + "/000003-3333333333333333.jpg"
    assert frame_key("a" * 32, 3, "e" * 64) != key  # two uploads racing with one seq: two objects
    first = fs.put(key, b"\xff\xd8jpeg")
    second = fs.put(frame_key("a" * 32, 4, "4" * 16), b"x")
    other = fs.put(frame_key("b" * 32, 0, "0" * 16), b"other")
    assert (first, second) == (key + "@0+6", "a" * 32 + "/000004-4444444444444444.jpg@6+1")
    assert [fs.get(k) for k in (first, second, other)] == [b"\xff\xd8jpeg", b"x", b"other"]
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["a" * 32 + ".frames", "b" * 32 + ".frames"]
    fs.delete_session("a" * 32)
    fs.delete_session("a" * 32)  # nothing left to delete is not an error
    assert [p.name for p in (tmp_path / "frames").iterdir()] == ["b" * 32 + ".frames"]
    with pytest.raises(FrameStoreError, match="not in the store"):
        fs.get(first)
    for bad in (key, "../../etc/passwd", other + "\n", other.replace("@0+5", "@1+9")):
        with pytest.raises(FrameStoreError):
            fs.get(bad)  # no byte range, a path, a trailing newline, a range past the end
    with pytest.raises(FrameStoreError):
        frame_key("../x", 1, "0" * 16)
    with pytest.raises(FrameStoreError):
        frame_key("a" * 32, 1, "not hex digits!!")
    with pytest.raises(FrameStoreError):
        fs.delete_session("..")


def test_local_frame_store_reads_and_deletes_frames_stored_one_file_each(tmp_path):
    """Rows written before session files keep plain keys: their frames are still served and
    the retention policy still deletes them."""
    fs = LocalFrameStore(tmp_path)
    old = "d" * 32 + "/000001.jpg"  # the key format before digests
    (tmp_path / ("d" * 32)).mkdir()
    (tmp_path / old).write_bytes(b"old frame")
    new = fs.put(frame_key("d" * 32, 2, "2" * 16), b"new frame")
    assert (fs.get(old), fs.get(new)) == (b"old frame", b"new frame")
    fs.delete_session("d" * 32)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FrameStoreError, match="not in the store"):
        fs.get(old)


def _put_frames(root: str, seqs: list[int]) -> dict[int, str]:
    fs = LocalFrameStore(root)
    return {seq: fs.put(frame_key("c" * 32, seq, "%016x" % seq), bytes([seq % 256]) * (1000 + seq)) for seq in seqs}


def test_local_frame_store_appends_from_many_processes_and_threads(tmp_path):
    """gunicorn workers (processes) and their threads appending to one session's file at once
    each get back a key to their own bytes."""
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    batches = [list(range(k, 400, 8)) for k in range(8)]
    keys: dict[int, str] = {}
    with ProcessPoolExecutor(4) as procs, ThreadPoolExecutor(4) as threads:
        jobs = [procs.submit(_put_frames, str(tmp_path), b) for b in batches[:4]]
        jobs += [threads.submit(_put_frames, str(tmp_path), b) for b in batches[4:]]
        for job in jobs:
            keys.update(job.result())
    fs = LocalFrameStore(tmp_path)
    assert len(keys) == 400
    assert all(fs.get(k) == bytes([seq % 256]) * (1000 + seq) for seq, k in keys.items())
    assert (tmp_path / ("c" * 32 + ".frames")).stat().st_size == sum(1000 + seq for seq in keys)


def test_observation_record_round_trip():
    """Exact numbers and landmarks come back; rows written zlib-compressed still read."""
    import zlib
    from dataclasses import fields

    import numpy as np

    from kyc_llm.sessions.analysis import observation_from_record, observation_record
    from kyc_llm.vision.observation import FrameObservation
    from kyc_llm.vision.quality import Quality
    from kyc_llm.vision.texture import Texture

    rng = np.random.default_rng(0)
    lm = rng.uniform(0, 640, (478, 3)).astype(np.float32)
    numbers = {f.name: float(rng.normal()) for f in fields(FrameObservation)
               if f.name in ("yaw", "pitch", "roll", "ear_left", "ear_right", "mouth_open", "smile",
                             "corner_lift", "face_height")}
    texture = Texture(**{f.name: f.name == "lossless" if f.type == "bool" else float(rng.normal())
                         for f in fields(Texture)})
    obs = FrameObservation(t=1.23456, width=640, height=480, n_faces=1, frame_brightness=101.234567,
                           landmarks=lm, box=(1.5, 2.25, 300.125, 310.0), **numbers,
                           quality=Quality(120.5, 30.25, 140.125, 0.45, 0.1, 0.0), texture=texture)
    summary, blob = observation_record(obs)
    assert json.loads(json.dumps(summary)) == summary and len(blob) == lm.nbytes
    for stored in (blob, zlib.compress(blob, 1)):
        back = observation_from_record(summary, stored)
        assert np.array_equal(back.landmarks, lm)
        assert {f.name: getattr(back, f.name) for f in fields(back) if f.name != "landmarks"} == \
            {f.name: getattr(obs, f.name) for f in fields(obs) if f.name != "landmarks"}
    assert observation_from_record(summary, None).landmarks is None


def test_an_sqlite_without_returning_is_refused(tmp_path, monkeypatch):
    from kyc_llm.errors import ConfigError

    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
    with pytest.raises(ConfigError, match="SQLite 3.35.0 or later"):
        open_store(tmp_path / "db.sqlite3")
