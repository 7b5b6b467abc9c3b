"""The one place the service calls the LLM layer, the vision evidence and the decision.

- ``issue_challenge``: actions drawn from the CSPRNG (or the fixed demo challenge), windows laid
  out from the configured durations, wording written by the LLM with local fallback.
- ``evaluate``: vision evidence from the session's observations, the LLM judgment on keyframes
  (skipped, and said so, when the provider is offline), and the fused decision.

Nothing here touches HTTP or storage; the lifecycle stores what these return.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..camera import CameraReport, virtual_camera_match
from ..challenge import Step
from ..config import Config
from ..decision import Policy, decide
from ..llm.challenge_text import draw_actions, write_challenge
from ..llm.errors import JudgmentInputError
from ..llm.judge import judge_movements
from ..llm.judgment import Judgment
from ..llm.providers import Provider, make_provider
from ..llm.settings import LLMSettings
from ..prompts import Templates
from ..vision.evidence import VisionEvidence
from ..vision.observation import FrameObservation
from ..vision.pipeline import build_evidence
from ..vision.thresholds import Thresholds
from .framestore import FrameStoreError
from .store import LlmCallRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedChallenge:
    steps: tuple[Step, ...]
    wording: list[str]
    source: str  # llm | local | fixed
    fallback_reason: str | None
    capture_s: float
    call: LlmCallRecord | None


@dataclass(frozen=True)
class Outcome:
    decision: str
    reasons: list[str]
    rationale: str
    llm_used: bool
    evidence: dict[str, Any]
    judgment: dict[str, Any] | None
    llm_call: LlmCallRecord | None


def lay_out(actions: Sequence[tuple[str, float]], lead_in_s: float) -> tuple[Step, ...]:
    """Back-to-back windows after a neutral lead-in: ``[(action, seconds)]`` -> steps."""
    steps, t = [], lead_in_s
    for action, seconds in actions:
        steps.append(Step(action, round(t, 3), round(t + seconds, 3)))
        t += seconds
    return tuple(steps)


class Workflow:
    """Challenge issuing and session evaluation with one LLM provider and one set of thresholds.

    ``provider`` is built lazily from the environment (``config.llm_env``) unless one is
    given; ``clock`` stamps the stored LLM calls.
    """

    def __init__(self, config: Config, thresholds: Thresholds, templates: Templates, provider: Provider | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.config = config
        self.thresholds = thresholds
        self.settings = LLMSettings.from_env(config.llm_env)
        self._provider = provider
        self.templates = templates
        self.clock = clock or time.time

    @property
    def provider(self) -> Provider:
        if self._provider is None:
            self._provider = make_provider(self.settings)
        return self._provider

    @property
    def offline(self) -> bool:
        return bool(getattr(self.provider, "offline", False))

    # -- challenge ---------------------------------------------------------------------------
    def issue_challenge(self) -> IssuedChallenge:
        """A fresh challenge: steps, wording per step, where the wording came from.

        The actions come from the CSPRNG (``draw_actions``) or the fixed demo challenge; the
        LLM only words them, within the LLM layer's deadline, else local wording is used.
        """
        cfg = self.config
        if cfg.fixed_challenge:
            pairs = list(cfg.fixed_challenge)
        else:
            pairs = [(a, cfg.action_duration_s) for a in draw_actions(self.settings.challenge_length)]
        steps = lay_out(pairs, cfg.lead_in_s)
        wording = write_challenge(self.provider, steps, self.settings, self.templates)
        usage = wording.usage.as_dict() if wording.usage is not None else {}
        call = LlmCallRecord("challenge", wording.source if wording.source == "llm" else "local",
                             self.provider.model, dict(wording.templates), usage, None, self.clock())
        source = "fixed" if cfg.fixed_challenge and wording.source != "llm" else wording.source
        return IssuedChallenge(steps, list(wording.texts), source, wording.fallback_reason,
                               round(steps[-1].end_s + cfg.tail_s, 3), call)

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self, steps: Sequence[Step], observations: Sequence[FrameObservation],
                 frames: Sequence[tuple[float, np.ndarray]], camera: CameraReport | None = None) -> Outcome:
        """Evidence, judgment and decision for a session's frames (and the page's report of
        its camera, if it sent one).

        ``frames`` is indexed only for the keyframes the judge sends. Returns the outcome
        with everything the store keeps; the LLM call record is None only when no judgment
        was attempted.
        """
        cfg = self.config
        evidence = build_evidence(observations, steps, self.thresholds)
        judgment = self._judge(tuple(steps), frames, evidence)
        decision = decide(evidence, self.thresholds, judgment, Policy.from_config(cfg),
                          virtual_camera_match(camera, cfg.virtual_camera_patterns))
        call = LlmCallRecord("judgment", judgment.outcome, judgment.model, dict(judgment.templates),
                             {"calls": [u.as_dict() for u in judgment.usage], "keyframes": judgment.keyframes},
                             judgment.raw_text, self.clock())
        stored = evidence.as_dict()
        if camera is not None:  # the client's word, kept beside the measurements for the operator
            stored["camera"] = camera.as_dict()
        if decision.details:  # which signals were borderline, or weak and left uncorroborated
            stored["decision_details"] = decision.details
        return Outcome(decision.decision, list(decision.reasons), decision.rationale, decision.llm_used,
                       stored, judgment.as_dict(), call)

    def _judge(self, steps: tuple[Step, ...], frames: Sequence[tuple[float, np.ndarray]],
               evidence: VisionEvidence) -> Judgment:
        """The LLM judgment. A keyframe the frame store cannot give makes it
        ``frames_unavailable`` (a review: the service failed, not the client or the LLM);
        a session with no frames at all is not judged (``llm_unavailable``: the vision
        checks fail it)."""
        try:
            return judge_movements(self.provider, steps, frames, evidence, self.settings, self.templates)
        except FrameStoreError as exc:
            log.warning("judgment skipped: %s", exc.message)
            return Judgment(outcome="frames_unavailable", provider=self.provider.name, model=self.provider.model,
                            error=f"keyframes unavailable: {exc.message}")
        except JudgmentInputError as exc:
            log.warning("judgment skipped: %s", exc.message)
            return Judgment(outcome="llm_unavailable", provider=self.provider.name, model=self.provider.model,
                            error=f"not judged: {exc.message}")
