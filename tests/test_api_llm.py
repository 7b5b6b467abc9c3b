"""The service with an LLM judge that answers: a scripted provider we control end to end.

``ScriptedJudge`` is the LLM layer's ``MockProvider`` (it records ``history``) with answers
built from what each request shows: the judgment answer cites the keyframes of each window
named in the prompt, with the verdicts the test asks for.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from kyc_llm.llm.errors import LLMUnavailable
from kyc_llm.llm.messages import ImagePart, TextPart
from kyc_llm.llm.providers.mock import MockProvider
from kyc_llm.sessions.decider import STALE_AFTER_S
from test_api_support import OP, Api, clip_frames, db_rows, live_spec

_FRAME_LINE = re.compile(r"^- (F\d+) at [\d.]+ s: in window (\d+)", re.MULTILINE)


class ScriptedJudge(MockProvider):
    """Judges every action as ``performed[i]``; wording requests fail (local wording is used)."""

    def __init__(self, performed: list[bool | None], *, spoof: bool = False, delay_s: float = 0.0,
                 garbage: bool = False) -> None:
        super().__init__(offline=False, delay_s=delay_s)
        self.performed = performed
        self.spoof = spoof
        self.garbage = garbage

    def _send(self, request):
        if request.purpose == "challenge_wording":
            self.history.append(request)
            raise LLMUnavailable("scripted: no wording today")
        if self.garbage:
            self.enqueue("I think the person looks fine. {not json")
        else:
            text = "".join(p.text for m in request.messages for p in m.parts if isinstance(p, TextPart))
            window_frame = {}
            for frame_id, window in _FRAME_LINE.findall(text):
                window_frame.setdefault(int(window), frame_id)
            actions = [{"action": a, "performed": p, "in_window": p, "in_order": p, "confidence": 0.9,
                        "frame": window_frame.get(i + 1), "note": "scripted"}
                       for i, (a, p) in enumerate(zip(["turn_left", "open_mouth"], self.performed))]
            signs = {k: {"present": self.spoof and k == "print", "note": ""}
                     for k in ("screen", "print", "mask", "synthetic")}
            self.enqueue(json.dumps({"actions": actions, "spoof_signs": signs, "confidence": 0.9}))
        return super()._send(request)


@pytest.fixture
def judged(app_config, clock, request):
    """An app whose LLM is ``ScriptedJudge(**request.param)``; yields (app, client, judge)."""
    from kyc_llm.web import create_app

    params = dict(request.param)
    app_config.update(params.pop("config", {}))
    judge = ScriptedJudge(**params)
    app = create_app(app_config, environ={}, clock=clock, llm_provider=judge)
    yield app, app.test_client(), judge
    app.extensions["kyc"].close()


def _frame_store_full(app, monkeypatch) -> None:
    """Make the app's frame store refuse every frame, as a full disk would."""
    from kyc_llm.sessions.framestore import FrameStoreError

    def failing_put(key, data):
        raise FrameStoreError("disk full")

    monkeypatch.setattr(app.extensions["kyc"].sessions.frames, "put", failing_put)


def _run_live(client, clock, shared_data) -> Api:
    api = Api(client, clock)
    api.upload_clip(clip_frames(live_spec(shared_data)), batch=4)
    return api


@pytest.mark.parametrize("judged", [{"performed": [True, True]}], indirect=True)
def test_agreeing_llm_passes_and_its_call_is_stored(judged, clock, shared_data):
    app, client, judge = judged
    api = _run_live(client, clock, shared_data)
    assert api.body["llm_mode"] == "live"
    assert api.body["challenge"]["wording_source"] == "fixed"  # local wording after the failed call
    r = api.complete()
    assert r.status_code == 200
    assert r.get_json()["result"]["decision"] == "pass" and "note" not in r.get_json()["result"]
    sent = judge.history[-1]
    assert sent.purpose == "movement_judgment"
    images = [p for p in sent.messages[0].parts if isinstance(p, ImagePart)]
    assert 3 <= len(images) <= 8 and all(p.jpeg[:2] == b"\xff\xd8" for p in images)
    decision = db_rows(app, "SELECT llm_used, judgment FROM decisions")[0]
    assert decision["llm_used"] == 1 and json.loads(decision["judgment"])["outcome"] == "ok"
    calls = db_rows(app, "SELECT kind, outcome, template_hashes, usage, raw_text FROM llm_calls ORDER BY id")
    assert [(c["kind"], c["outcome"]) for c in calls] == [("challenge", "local"), ("judgment", "ok")]
    hashes = json.loads(calls[1]["template_hashes"])
    assert set(hashes) >= {"system", "movement_judgment"} and all(len(h) == 64 for h in hashes.values())
    assert json.loads(calls[1]["raw_text"])["confidence"] == 0.9
    assert json.loads(calls[1]["usage"])["calls"][0]["input_tokens"] > 0


@pytest.mark.parametrize("judged", [{"performed": [False, True]}], indirect=True)
def test_disagreeing_llm_sends_the_session_to_review(judged, clock, shared_data):
    app, client, _ = judged
    api = _run_live(client, clock, shared_data)
    result = api.complete().get_json()["result"]
    assert result["decision"] == "review" and result["guidance"] == "review"
    alerts = db_rows(app, "SELECT severity, cause FROM alerts")
    assert ("medium", "llm_disagreement") in [(a["severity"], a["cause"]) for a in alerts]
    d = client.get(f"/api/v1/operator/sessions/{api.id}", headers=OP).get_json()
    assert "LLM_DISAGREES" in d["decision"]["reasons"]
    assert all(k["url"] for k in d["decision"]["keyframes"])  # review: frames kept for the operator


@pytest.mark.parametrize("judged", [{"performed": [True, True], "garbage": True,
                                     "config": {"require_llm": True}}], indirect=True)
def test_invalid_llm_answer_goes_to_review_when_the_llm_is_required(judged, clock, shared_data):
    app, client, judge = judged
    api = _run_live(client, clock, shared_data)
    assert api.complete().get_json()["result"]["decision"] == "review"
    assert [r.purpose for r in judge.history[-2:]] == ["movement_judgment", "movement_judgment:repair"]
    call = db_rows(app, "SELECT outcome, raw_text FROM llm_calls WHERE kind = 'judgment'")[0]
    assert call["outcome"] == "llm_invalid" and "{not json" in call["raw_text"]
    causes = [a["cause"] for a in db_rows(app, "SELECT cause FROM alerts")]
    assert "llm_invalid_answer" in causes


@pytest.mark.parametrize("judged", [{"performed": [True, True], "delay_s": 1.5,
                                     "config": {"decision_timeout_s": 0.3}}], indirect=True)
def test_a_slow_llm_does_not_hold_the_request(judged, clock, shared_data):
    app, client, _ = judged
    api = _run_live(client, clock, shared_data)
    started = time.monotonic()
    r = api.complete()
    assert time.monotonic() - started < 1.2
    assert r.status_code == 202 and r.get_json()["status"] == "deciding" and r.get_json()["result"] is None
    again = api.complete()
    assert again.status_code == 202  # a second completion does not start a second decision
    deadline = time.monotonic() + 10
    while api.status().get_json()["status"] != "decided" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api.status().get_json()["result"]["decision"] == "pass"
    assert db_rows(app, "SELECT COUNT(*) AS n FROM decisions")[0]["n"] == 1
    assert ("low", "decision_slow") in [(a["severity"], a["cause"]) for a in db_rows(app, "SELECT * FROM alerts")]


@pytest.mark.parametrize("judged", [{"performed": [True, True], "spoof": True}], indirect=True)
def test_llm_spoof_signs_send_to_review_with_a_high_alert(judged, clock, shared_data):
    app, client, _ = judged
    api = _run_live(client, clock, shared_data)
    result = api.complete().get_json()["result"]
    assert result["decision"] == "review" and result["guidance"] == "review"
    alerts = [(a["severity"], a["cause"]) for a in db_rows(app, "SELECT severity, cause FROM alerts")]
    assert ("high", "llm_spoof_suspected") in alerts
    judgment = json.loads(db_rows(app, "SELECT judgment FROM decisions")[0]["judgment"])
    assert judgment["spoof_signs"]["print"]["present"] is True


@pytest.mark.parametrize("judged", [{"performed": [True, True]}], indirect=True)
def test_frames_the_store_did_not_keep_send_the_session_to_review(judged, clock, shared_data, monkeypatch):
    """A frame store that fails on upload must not turn into a decision without the judge."""
    app, client, judge = judged
    _frame_store_full(app, monkeypatch)
    api = _run_live(client, clock, shared_data)  # uploads still succeed: the user is not blamed
    result = api.complete().get_json()["result"]
    assert result["decision"] == "review"
    assert [r.purpose for r in judge.history].count("movement_judgment") == 0
    decision = db_rows(app, "SELECT reasons, llm_used, judgment FROM decisions")[0]
    assert json.loads(decision["reasons"]) == ["FRAMES_UNAVAILABLE"] and decision["llm_used"] == 0
    assert json.loads(decision["judgment"])["outcome"] == "frames_unavailable"
    alerts = [(a["severity"], a["cause"]) for a in db_rows(app, "SELECT severity, cause FROM alerts")]
    assert ("high", "frames_unavailable") in alerts


def _wait_decided(api, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while api.status().get_json()["status"] != "decided" and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("judged", [{"performed": [True, True], "delay_s": 1.0,
                                     "config": {"decision_timeout_s": 0.2}}], indirect=True)
def test_a_claim_taken_over_as_stale_does_not_store_a_second_decision(judged, clock, shared_data):
    """A decider that outlives its claim (taken over by another caller) has its result dropped:
    one decision, one 'decided' entry, both paid LLM calls recorded."""
    app, client, judge = judged
    app.extensions["kyc"].sessions.decider.heartbeat_s = 3600  # as if its process had stopped
    api = _run_live(client, clock, shared_data)
    assert api.complete().status_code == 202
    clock.advance(STALE_AFTER_S + 1)
    assert api.complete().status_code == 202  # the stale claim is taken over: a second decider runs
    _wait_decided(api)
    time.sleep(1.5)  # both judges have answered by now
    assert [r.purpose for r in judge.history].count("movement_judgment") == 2
    events = [r["event"] for r in db_rows(app, "SELECT event FROM audit_log WHERE session_id = ?", api.id)]
    assert events.count("decision_started") == 2 and events.count("decided") == 1
    assert db_rows(app, "SELECT COUNT(*) AS n FROM decisions")[0]["n"] == 1
    assert db_rows(app, "SELECT COUNT(*) AS n FROM llm_calls WHERE kind = 'judgment'")[0]["n"] == 2


@pytest.mark.parametrize("judged", [{"performed": [True, True]}], indirect=True)
def test_the_sweep_finishes_a_decision_whose_decider_died(judged, clock, shared_data):
    app, client, _ = judged
    api = _run_live(client, clock, shared_data)
    sessions = app.extensions["kyc"].sessions
    assert sessions.store.claim_decision(api.id, clock(), stale_before=0)  # its process was killed here
    clock.advance(STALE_AFTER_S + 60)
    assert client.post("/api/v1/sessions").status_code == 201  # any session start sweeps
    _wait_decided(api)
    assert api.status().get_json()["result"]["decision"] == "pass"
    audit = db_rows(app, "SELECT actor, event FROM audit_log WHERE session_id = ? AND event LIKE 'deci%' "
                         "ORDER BY id", api.id)
    assert [(a["actor"], a["event"]) for a in audit] == [
        ("client", "decision_started"), ("system", "decision_started"), ("system", "decided")]


def test_patches_that_do_not_match_their_frames_send_the_session_to_review(client, app, clock, shared_data):
    """A client other than the page sending smoothed patches (to hide a screen's pixel grid)."""
    from dataclasses import replace

    import cv2

    from test_api_support import clip_frames

    frames = tuple(replace(f, bgr=cv2.GaussianBlur(f.bgr, (0, 0), 1.0)) for f in clip_frames(live_spec(shared_data)))
    api = Api(client, clock)
    api.upload_clip(frames, batch=4)  # each JPEG is the clip's own; each patch is cut from a smoothed copy
    result = api.complete().get_json()["result"]
    assert result["decision"] == "review" and result["guidance"] == "review"
    decision = db_rows(app, "SELECT reasons, evidence FROM decisions")[0]
    assert "PATCH_MISMATCH" in json.loads(decision["reasons"])
    assert json.loads(decision["evidence"])["patch_mismatches"] > 0
    alerts = [(a["severity"], a["cause"]) for a in db_rows(app, "SELECT severity, cause FROM alerts")]
    assert ("high", "tampered_upload") in alerts


@pytest.mark.parametrize("judged", [{"performed": [True, True], "delay_s": 1.0,
                                     "config": {"decision_timeout_s": 0.2}}], indirect=True)
def test_a_running_decision_keeps_its_claim_past_the_stale_bound(judged, clock, shared_data):
    """A slow judge is not joined by a second one: the process re-stamps the claim while the
    decision runs, so it never looks abandoned."""
    app, client, judge = judged
    app.extensions["kyc"].sessions.decider.heartbeat_s = 0.05
    api = _run_live(client, clock, shared_data)
    assert api.complete().status_code == 202
    clock.advance(STALE_AFTER_S + 1)
    time.sleep(0.3)  # heartbeats re-stamp the claim at the new time
    assert api.complete().status_code == 202  # still the first decider's: not stale
    _wait_decided(api)
    assert [r.purpose for r in judge.history].count("movement_judgment") == 1
    events = [r["event"] for r in db_rows(app, "SELECT event FROM audit_log WHERE session_id = ?", api.id)]
    assert events.count("decision_started") == 1 and events.count("decided") == 1


@pytest.mark.parametrize("judged", [{"performed": [True, True]}], indirect=True)
def test_a_failure_after_the_decision_is_stored_raises_an_alert(judged, clock, shared_data, monkeypatch):
    app, client, _ = judged
    decider = app.extensions["kyc"].sessions.decider

    def broken(session_id, decision):
        raise OSError("frame store gone")

    monkeypatch.setattr(decider, "_apply_retention", broken)
    api = _run_live(client, clock, shared_data)
    assert api.complete().get_json()["result"]["decision"] == "pass"  # stored before the failure
    alerts = db_rows(app, "SELECT severity, cause, message FROM alerts")
    assert [(a["severity"], a["cause"], a["message"]) for a in alerts] == [
        ("high", "decision_error", "after the decision: OSError")]


def test_an_offline_review_because_the_llm_is_required_says_a_person_will_look(app_config, clock, shared_data):
    from kyc_llm.web import create_app

    app = create_app({**app_config, "require_llm": True}, environ={}, clock=clock)
    api = _run_live(app.test_client(), clock, shared_data)
    result = api.complete().get_json()["result"]
    assert (result["decision"], result["guidance"]) == ("review", "review")
    assert "a person will look" in result["note"] and "video checks alone" not in result["note"]
    app.extensions["kyc"].close()


def test_a_template_failing_mid_request_is_a_500_that_names_no_server_path(client, app, monkeypatch):
    from kyc_llm.llm.errors import TemplateError

    def broken() -> None:
        raise TemplateError("does not render", path="/srv/kyc/prompts/challenge_local.jinja")

    monkeypatch.setattr(app.extensions["kyc"].workflow, "issue_challenge", broken)
    r = client.post("/api/v1/sessions")
    assert r.status_code == 500 and r.get_json()["error"]["code"] == "bad_template"
    assert "/srv" not in r.get_data(as_text=True)


def test_offline_decisions_need_no_keyframes(client, app, clock, shared_data, monkeypatch):
    """With no LLM configured no keyframe is loaded: frames the store did not keep do not
    change the decision, the vision checks decide alone and say so; but the operators learn
    that the session's pictures are gone (this was silent)."""
    _frame_store_full(app, monkeypatch)
    api = _run_live(client, clock, shared_data)
    result = api.complete().get_json()["result"]
    assert result["decision"] == "pass" and "without the AI judge" in result["note"]
    decision = db_rows(app, "SELECT reasons, llm_used, judgment FROM decisions")[0]
    assert json.loads(decision["reasons"]) == [] and json.loads(decision["judgment"])["outcome"] == "llm_offline"
    alerts = db_rows(app, "SELECT severity, cause, message FROM alerts")
    assert [(a["severity"], a["cause"]) for a in alerts] == [("high", "frames_not_kept")]
    n = len(db_rows(app, "SELECT seq FROM frames"))
    assert n > 20 and alerts[0]["message"].startswith(f"{n} of {n} frames could not be stored")
