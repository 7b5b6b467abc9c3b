"""What the end user is told: pass, fail, or a retry / review guidance. Never scores or codes.

A ``review`` decision becomes ``retry`` when every reason is something the user can fix by
trying again (light, framing, an unclear action); any other review (the LLM and the
vision layer disagree, a possible attack, the LLM could not answer) is ``review``: a person
looks at it and the user is told so.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..decision import REASONS

MESSAGES = {
    "pass": "Thank you: your check is complete.",
    "fail": "We could not confirm that a live person took this check. If you believe this is a mistake, "
            "please contact support.",
    "retry": "We could not see every step clearly. Please try again: face the light, keep your face "
             "inside the oval and follow each instruction while it is shown.",
    "review": "Thank you. A member of our team will review your check and get back to you.",
}
# Without the LLM: said beside every result, in words true in production as in a demo (a
# review there may be the missing LLM's doing, when the LLM is required).
OFFLINE_NOTES = {
    "review": "This check ran without the AI judge: a person will look at it.",
    "other": "This check ran without the AI judge: the result comes from the video checks alone.",
}


def guidance_for(decision: str, reasons: Iterable[str]) -> str:
    """``pass``/``fail`` as they are; ``review`` -> ``retry`` or ``review`` by its reasons
    (``retryable`` in ``kyc_llm.decision.REASONS``; a code without a row is not retryable)."""
    if decision in ("pass", "fail"):
        return decision
    reasons = list(reasons)
    if reasons and all(r in REASONS and REASONS[r].retryable for r in reasons):
        return "retry"
    return "review"


def user_result(decision: str, guidance: str | None, llm_mode: str) -> dict[str, Any]:
    """The user-facing result object of the API (``decision`` is pass, fail or review)."""
    guidance = guidance or guidance_for(decision, ())
    out: dict[str, Any] = {"decision": decision, "guidance": guidance, "message": MESSAGES[guidance],
                           "can_retry": guidance in ("retry", "fail")}
    if llm_mode == "offline":
        out["note"] = OFFLINE_NOTES["review" if guidance == "review" else "other"]
    return out
