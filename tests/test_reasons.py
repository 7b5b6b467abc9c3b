"""The reason table: every reason code the service uses has its row in ``kyc_llm.decision.REASONS``,
and every rule about a code (outcome, retry, alert) is read from that row."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from kyc_llm.decision import INTERNAL_ERROR, REASONS, Policy
from kyc_llm.sessions.alerts import REASON_ALERT_TEXT, SEVERITY, decision_alerts
from kyc_llm.sessions.results import guidance_for

SOURCE = Path(__file__).resolve().parent.parent / "kyc_llm"
CODE_SHAPE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")  # one letter is no code: see upper_constants
# Upper-case string constants of kyc_llm/ that are not reason codes. A new one that is not a
# reason code either goes here; a new reason code gets its row in REASONS.
NOT_REASONS = frozenset({
    "AES256", "COMMIT", "ROLLBACK", "GET", "POST", "JPEG", "PNG", "RGBA", "NFKC", "KYC", "NO", "FILE",
    "WARNING", "MAX_CONTENT_LENGTH", "MAX_FORM_MEMORY_SIZE", "SC_CLK_TCK",
})
NOT_REASON_SHAPES = re.compile(r"(?:KYC|AWS|ANTHROPIC|BEDROCK)_[A-Z0-9_]*|F[0-9]+")  # variables, keyframe ids


def upper_constants(tree: ast.AST) -> set[str]:
    """Every string constant shaped like a reason code."""
    return {n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and len(n.value) > 1
            and CODE_SHAPE.fullmatch(n.value)}


def _names_reasons(node: ast.AST) -> bool:
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return "reason" in name.lower()


def _strings(node: ast.AST | None) -> set[str]:
    """The strings of a literal: a string constant, or the string elements of a list, tuple or set."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return set().union(set(), *(_strings(e) for e in node.elts if isinstance(e, ast.Constant)))
    return set()


def _literals_within(node: ast.AST) -> set[str]:
    """The strings of every list, tuple or set literal inside an expression."""
    return set().union(set(), *(_strings(n) for n in ast.walk(node)
                                if isinstance(n, (ast.List, ast.Tuple, ast.Set))))


def reason_context_constants(tree: ast.AST) -> set[str]:
    """String constants where a reason code goes, whatever their shape: appended to or tested
    against a ``*reason*`` name, in a list assigned to one, returned in a list by a
    ``*reasons`` function, or the reasons list of a stored ``DecisionRecord``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr in ("append", "extend", "add") and _names_reasons(f.value):
                for arg in node.args:
                    found |= _strings(arg)
            if isinstance(f, ast.Name) and f.id == "DecisionRecord" and len(node.args) > 3:
                found |= _strings(node.args[3])
            for k in node.keywords:
                if k.arg == "reasons":
                    found |= _strings(k.value)
        elif isinstance(node, ast.Compare) and any(_names_reasons(c) for c in node.comparators):
            found |= _strings(node.left)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if node.value is not None and any(_names_reasons(t) for t in targets):
                found |= _literals_within(node.value)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.endswith("reasons"):
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and ret.value is not None:
                    found |= {s for s in _literals_within(ret.value) if CODE_SHAPE.fullmatch(s)}
    return found


def unlisted_codes(source: str) -> set[str]:
    """The codes in ``source`` that REASONS lacks: reason-shaped constants not known to be
    something else, and any constant in a reason context."""
    tree = ast.parse(source)
    shaped = {c for c in upper_constants(tree) if c not in NOT_REASONS and not NOT_REASON_SHAPES.fullmatch(c)}
    return (shaped | reason_context_constants(tree)) - set(REASONS)


def _modules() -> list[Path]:
    return sorted(SOURCE.rglob("*.py"))


def test_every_reason_code_used_in_the_source_has_a_row() -> None:
    missing = {str(p.relative_to(SOURCE.parent)): codes for p in _modules()
               if (codes := unlisted_codes(p.read_text(encoding="utf-8")))}
    assert not missing, ("reason codes without a row in kyc_llm.decision.REASONS (or, if not a reason "
                         f"code, add them to NOT_REASONS here): {missing}")


def test_the_scan_sees_the_codes_where_they_are_used() -> None:
    """Not vacuous: the context scan finds the codes the decision, the decider and the
    signals use, and a code added in another module without a row is caught."""
    seen: set[str] = set()
    for p in _modules():
        seen |= reason_context_constants(ast.parse(p.read_text(encoding="utf-8")))
    assert {"NO_FACE", "ACTION_UNCLEAR", "SCREEN_UNCHECKED", "LLM_DISAGREES", "LLM_SPOOF_SUSPECTED",
            "FRAMES_UNAVAILABLE", "VIRTUAL_CAMERA", "PATCH_MISMATCH"} <= seen
    assert unlisted_codes('def f(reasons):\n    reasons.append("FACE_TOO_OLD")\n') == {"FACE_TOO_OLD"}
    assert unlisted_codes('def g(r):\n    return "BAD_LIGHT" in r\n') == {"BAD_LIGHT"}
    assert unlisted_codes('def h(reasons):\n    return "odd code" in reasons\n') == {"odd code"}
    assert unlisted_codes('R = DecisionRecord("s", "review", "review", ["GONE_WRONG"], "x")\n') == {"GONE_WRONG"}
    assert unlisted_codes('def x_reasons():\n    return ["NO_FACE", "NEW_ONE"], True\n') == {"NEW_ONE"}
    assert unlisted_codes('X = {"KYC_PORT": 1, "POST": 2}\nreasons.append("LOW_QUALITY")\n') == set()


def test_every_row_is_consistent() -> None:
    policy_fields = {f.name for f in dataclasses.fields(Policy)}
    for code, row in REASONS.items():
        assert CODE_SHAPE.fullmatch(code) and code not in NOT_REASONS, code
        assert row.outcome in ("fail", "review"), code
        assert row.explanation and row.explanation == row.explanation.strip(), code
        assert not (row.retryable and row.outcome == "fail"), f"{code}: a fail is never retried"
        if row.policy_outcome is not None:
            assert row.policy_outcome in policy_fields, code
            assert row.outcome == getattr(Policy(), row.policy_outcome), f"{code}: its default is the policy's"


def test_every_alert_cause_of_the_table_has_a_severity() -> None:
    causes = {row.alert for row in REASONS.values() if row.alert is not None}
    assert causes - set(SEVERITY) == set()
    assert set(REASON_ALERT_TEXT) - set(SEVERITY) == set()


@pytest.mark.parametrize("code", [c for c, row in REASONS.items() if row.alert and c != INTERNAL_ERROR])
def test_each_alerting_code_raises_its_cause(code: str) -> None:
    decision = REASONS[code].outcome
    alerts = decision_alerts("s", "c", decision, guidance_for(decision, [code]), [code], None, 0.0)
    assert [(a.cause, a.severity) for a in alerts] == [(REASONS[code].alert, SEVERITY[REASONS[code].alert])]


def test_the_rules_that_moved_into_the_table() -> None:
    retryable = {c for c, row in REASONS.items() if row.retryable}
    assert retryable == {"LOW_QUALITY", "ACTION_UNCLEAR"}
    assert guidance_for("review", sorted(retryable)) == "retry"
    assert guidance_for("review", ["LOW_QUALITY", "SIGNAL_BORDERLINE"]) == "review"
    assert guidance_for("review", ["NOT_A_CODE"]) == "review"
    assert guidance_for("fail", ["NO_FACE"]) == "fail"
    row = REASONS[INTERNAL_ERROR]
    assert (row.outcome, guidance_for(row.outcome, [INTERNAL_ERROR]), row.alert) == ("review", "review",
                                                                                      "decision_error")
    assert REASONS["VIRTUAL_CAMERA"].outcome_under(Policy(virtual_camera="fail")) == "fail"
    # One alert per cause, its codes named, in the order operators have always seen them.
    alerts = decision_alerts("s", "c", "fail", "fail",
                             ["LLM_DISAGREES", "FROZEN_FACE", "VIRTUAL_CAMERA", "PLANAR_MOTION",
                              "DEEPFAKE_SUSPECTED", "PATCH_MISMATCH", "LLM_SPOOF_SUSPECTED"], None, 0.0)
    assert [(a.cause, a.message) for a in alerts] == [
        ("deepfake_suspected", "fail: DEEPFAKE_SUSPECTED"),
        ("presentation_attack", "fail: FROZEN_FACE, PLANAR_MOTION"),
        ("injection_suspected", "fail: the page reported a known virtual camera"),
        ("tampered_upload", "a texture patch did not match its frame"),
        ("llm_spoof_suspected", "the LLM judge saw signs of a spoof"),
        ("llm_disagreement", "the vision checks and the LLM judge disagree"),
    ]
