"""Alerts for operators: which events raise one, and how severe each cause is.

Severity follows the cause, not the session: clear attack evidence is critical, abuse of the
service (lockouts, replayed frames) is high, an uncertain decision that needs a person is
medium, and a degraded service (the LLM not answering, a slow decision) is low.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..decision import REASONS
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

# What the alert a reason code raises (``alert`` in ``kyc_llm.decision.REASONS``) says, in the
# order a decision's alerts are stored. {decision} is the decision, {codes} the codes that
# raised it; a cause not listed here says "{decision}: {codes}" and comes last.
REASON_ALERT_TEXT = {
    "deepfake_suspected": "{decision}: {codes}",
    "presentation_attack": "{decision}: {codes}",
    "injection_suspected": "{decision}: the page reported a known virtual camera",
    "tampered_upload": "a texture patch did not match its frame",
    "llm_spoof_suspected": "the LLM judge saw signs of a spoof",
    "llm_disagreement": "the vision checks and the LLM judge disagree",
}


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
    raised: dict[str, list[str]] = {}
    for code in sorted(reasons):
        cause = REASONS[code].alert if code in REASONS else None
        if cause is not None:
            raised.setdefault(cause, []).append(code)
    order = list(REASON_ALERT_TEXT)
    for cause in sorted(raised, key=lambda c: order.index(c) if c in order else len(order)):
        text = REASON_ALERT_TEXT.get(cause, "{decision}: {codes}")
        out.append(alert(cause, text.format(decision=decision, codes=", ".join(raised[cause])), at, **kw))
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
