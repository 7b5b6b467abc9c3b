"""Alerts for operators: which events raise one, and how severe each cause is.

Severity follows the cause, not the session: clear attack evidence is critical, abuse of the
service (lockouts, replayed frames) is high, an uncertain decision that needs a person is
medium, and a degraded service (the LLM not answering, a slow decision) is low.
"""

from __future__ import annotations

from typing import Any, Iterable

from .store import AlertRecord

SEVERITY = {
    "presentation_attack": "critical",
    "deepfake_suspected": "critical",
    "llm_spoof_suspected": "high",
    "client_locked_out": "high",
    "replayed_frame": "high",
    "tampered_upload": "high",
    "injection_suspected": "high",
    "decision_error": "high",
    "frames_unavailable": "high",
    "frames_not_kept": "high",
    "llm_disagreement": "medium",
    "llm_invalid_answer": "medium",
    "manual_review": "medium",
    "llm_unavailable": "low",
    "decision_slow": "low",
}

# Reason codes of ``kyc_llm.decision.REASONS`` that mean "this looks like an attack" (the
# vision layer's failing signals) rather than "unclear".
ATTACK_REASONS = frozenset({"PLANAR_MOTION", "SCREEN_ARTEFACTS", "PRINT_ARTEFACTS", "FROZEN_FACE"})
DEEPFAKE_REASONS = frozenset({"DEEPFAKE_SUSPECTED"})


def alert(cause: str, message: str, at: float, *, session_id: str | None = None,
          client_key: str | None = None) -> AlertRecord:
    """An alert record for ``cause`` with its severity. Raises ``KeyError`` for an unknown cause."""
    return AlertRecord(severity=SEVERITY[cause], cause=cause, message=message, created_at=at,
                       session_id=session_id, client_key=client_key)


def decision_alerts(session_id: str, client_key: str, decision: str, guidance: str,
                    reasons: Iterable[str], judgment: dict[str, Any] | None, at: float) -> list[AlertRecord]:
    """The alerts one decision raises (possibly none). A review the user is asked to retry
    raises none by itself; one that waits for a person raises ``manual_review``."""
    reasons = set(reasons)
    out: list[AlertRecord] = []
    kw = {"session_id": session_id, "client_key": client_key}
    if reasons & DEEPFAKE_REASONS:
        out.append(alert("deepfake_suspected", f"{decision}: {', '.join(sorted(reasons & DEEPFAKE_REASONS))}",
                         at, **kw))
    attack = reasons & ATTACK_REASONS
    if attack:
        out.append(alert("presentation_attack", f"{decision}: {', '.join(sorted(attack))}", at, **kw))
    if "VIRTUAL_CAMERA" in reasons:
        out.append(alert("injection_suspected", f"{decision}: the page reported a known virtual camera", at, **kw))
    if "PATCH_MISMATCH" in reasons:
        out.append(alert("tampered_upload", "a texture patch did not match its frame", at, **kw))
    if "LLM_SPOOF_SUSPECTED" in reasons:
        out.append(alert("llm_spoof_suspected", "the LLM judge saw signs of a spoof", at, **kw))
    if any("DISAGREE" in r for r in reasons):
        out.append(alert("llm_disagreement", "the vision checks and the LLM judge disagree", at, **kw))
    outcome = (judgment or {}).get("outcome")
    if outcome == "llm_invalid":
        out.append(alert("llm_invalid_answer", "the LLM answer did not follow its schema", at, **kw))
    elif outcome == "frames_unavailable":
        out.append(alert("frames_unavailable", "frames the LLM judge needed could not be loaded from storage",
                         at, **kw))
    elif outcome == "llm_unavailable":
        out.append(alert("llm_unavailable", "the LLM judge could not be reached", at, **kw))
    if guidance == "review" and not out:
        out.append(alert("manual_review", f"review: {', '.join(sorted(reasons)) or 'no reason given'}", at, **kw))
    return out
