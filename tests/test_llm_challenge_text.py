"""Challenge drawing (CSPRNG, no immediate repeats) and wording (LLM, or local fallback)."""

from __future__ import annotations

import collections
import inspect
import itertools
import json
import random
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from kyc_llm.challenge import ACTIONS, Step
from kyc_llm.errors import ChallengeError
from kyc_llm.llm.challenge_text import (
    draw_actions,
    local_wording,
    sequence_count,
    write_challenge,
)
from kyc_llm.llm.errors import LLMTransientError
from kyc_llm.llm.providers import MockProvider
from kyc_llm.llm.settings import LLMSettings
from kyc_llm.prompts import Templates, load_templates

SETTINGS = LLMSettings.from_env({})
STEPS = (Step("turn_right", 0.5, 2.0), Step("blink", 2.0, 3.5), Step("smile", 3.5, 5.0))
GOOD = {"steps": [{"action": "turn_right", "text": "Turn your head to your right"},
                  {"action": "blink", "text": "Now blink once"},
                  {"action": "smile", "text": "And a big smile"}]}


@pytest.fixture(scope="module")
def templates() -> Templates:
    return load_templates(SETTINGS.prompts_dir)


# --- drawing ------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 4])
def test_sequence_count_matches_enumeration(n: int) -> None:
    brute = sum(1 for seq in itertools.product(ACTIONS, repeat=n)
                if all(a != b for a, b in zip(seq, seq[1:])))
    assert sequence_count(n) == brute
    assert sequence_count(SETTINGS.challenge_length) == 252 >= 210


def test_the_default_rng_is_the_os_csprng() -> None:
    default = inspect.signature(draw_actions).parameters["rng"].default
    assert isinstance(default, secrets.SystemRandom)


def test_draws_cover_every_sequence_without_immediate_repeats() -> None:
    rng = random.Random(7)  # seeded only to make this test repeatable
    counts = collections.Counter(tuple(draw_actions(3, rng)) for _ in range(20_000))
    assert len(counts) == 252
    assert all(a != b for seq in counts for a, b in zip(seq, seq[1:]))
    # Uniform: Pearson's chi-square on 251 degrees of freedom stays under its 0.999 quantile
    # (about 330); a "re-roll into the neighbour" shortcut would give thousands.
    expected = 20_000 / 252
    assert sum((c - expected) ** 2 / expected for c in counts.values()) < 330


def test_exclusions_and_lengths() -> None:
    for n in (2, 3, 4):
        drawn = draw_actions(n, exclude=("smile", "blink"))
        assert len(drawn) == n and not {"smile", "blink"} & set(drawn)
        assert set(drawn) <= set(ACTIONS)


@pytest.mark.parametrize(
    ("n", "exclude", "message"),
    [(1, (), "2 to 4 actions"), (5, (), "2 to 4 actions"), (True, (), "2 to 4 actions"),
     (3, ("wink",), "unknown actions"), (3, ACTIONS[1:], "fewer than two")],
)
def test_bad_draw_requests_raise(n: Any, exclude: tuple[str, ...], message: str) -> None:
    with pytest.raises(ChallengeError, match=message):
        draw_actions(n, exclude=exclude)


# --- wording ------------------------------------------------------------------------------

def test_llm_wording_and_the_prompt_it_was_given(templates: Templates) -> None:
    provider = MockProvider().enqueue(json.dumps({**GOOD, "unsuitable": ["smile"]}))
    wording = write_challenge(provider, STEPS, SETTINGS, templates, accessibility="limited facial mobility")

    assert wording.source == "llm" and wording.fallback_reason is None
    assert wording.texts == ("Turn your head to your right", "Now blink once", "And a big smile")
    assert wording.unsuitable == ("smile",)
    assert set(wording.templates) == {"system", "challenge_wording"}
    (request,) = provider.history
    text = request.messages[0].parts[0].text
    assert "1. turn_right\n2. blink\n3. smile" in text
    assert 'language with code "en"' in text and "limited facial mobility" in text
    assert '"const":"turn_right"' in text  # the schema pins the server's actions
    assert (request.max_tokens, request.temperature) == (400, 0.8)
    assert wording.usage is not None and wording.usage.purpose == "challenge_wording"


def _reason_for(answer: str, templates: Templates) -> str:
    wording = write_challenge(MockProvider().enqueue(answer), STEPS, SETTINGS, templates)
    assert wording.source == "local"
    assert wording.texts == local_wording([s.action for s in STEPS], "en", templates)
    return wording.fallback_reason or ""


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("Turn right, blink, smile!", "llm_invalid: the answer is not one JSON object"),
        (json.dumps({"steps": GOOD["steps"][::-1]}), "llm_invalid: steps/0/action"),
        (json.dumps({"steps": GOOD["steps"][:2]}), "llm_invalid: steps"),
        (json.dumps({**GOOD, "unsuitable": ["dance"]}), "llm_invalid: unsuitable/0"),
        (json.dumps({"steps": [{"action": "turn_right", "text": "<script>x</script>"},
                               *GOOD["steps"][1:]]}), "llm_invalid: step 1 text contains markup"),
        (json.dumps({"steps": [{"action": "turn_right", "text": "x" * 81},
                               *GOOD["steps"][1:]]}), "llm_invalid: steps/0/text"),
        (json.dumps({"steps": [{"action": "turn_right", "text": "Do turn_right"},
                               *GOOD["steps"][1:]]}), "llm_invalid: step 1 text contains markup"),
        (json.dumps({"steps": [{"action": "turn_right", "text": "  a  "}, *GOOD["steps"][1:]]}),
         "llm_invalid: step 1 text is shorter than 3"),
        # Short but nested deep: the schema's uniqueItems recursed past the stack (was a 500).
        ('{"steps": ' + json.dumps(GOOD["steps"]) + ', "unsuitable": [' + "[" * 300 + "]" * 300 + ", "
         + "[" * 300 + "]" * 300 + "]}", "llm_invalid: the answer is nested too deeply"),
    ],
)
def test_invalid_wording_falls_back_to_local_with_the_reason(answer: str, reason: str,
                                                             templates: Templates) -> None:
    assert _reason_for(answer, templates).startswith(reason)


def test_a_wording_template_that_fails_on_this_challenge_falls_back_to_local(tmp_path: Path) -> None:
    """The check renders sample data; a template can still fail on a real challenge (here, one
    of two steps where the sample has three): local wording, not a failed session."""
    prompts = Path(shutil.copytree(SETTINGS.prompts_dir, tmp_path / "prompts"))
    path = prompts / "challenge_wording.jinja"
    path.write_text(path.read_text(encoding="utf-8") + "\n{{ steps[2].action }}", encoding="utf-8")
    broken = load_templates(prompts)
    provider = MockProvider().enqueue(json.dumps(GOOD))
    wording = write_challenge(provider, STEPS[:2], SETTINGS, broken)
    assert wording.source == "local" and wording.fallback_reason.startswith("template_error: ")
    assert provider.history == []  # nothing was sent


def test_unavailable_provider_falls_back(templates: Templates) -> None:
    provider = MockProvider(sleep=lambda s: None).enqueue(
        LLMTransientError("429"), LLMTransientError("429"), LLMTransientError("429"))
    wording = write_challenge(provider, STEPS, SETTINGS, templates)
    assert wording.source == "local" and wording.fallback_reason.startswith("llm_unavailable")
    assert wording.usage is not None and wording.usage.attempts == 3


def test_a_slow_provider_cannot_delay_the_challenge(templates: Templates) -> None:
    settings = LLMSettings.from_env({"KYC_LLM_CHALLENGE_DEADLINE_S": "0.2"})
    provider = MockProvider(delay_s=1.0).enqueue(json.dumps(GOOD))
    started = time.monotonic()
    wording = write_challenge(provider, STEPS, settings, templates)
    elapsed = time.monotonic() - started
    assert wording.source == "local" and wording.fallback_reason == "timeout: no answer within 0.2 s"
    assert elapsed < 0.6


def test_offline_provider_is_not_asked(templates: Templates) -> None:
    provider = MockProvider(offline=True).enqueue(json.dumps(GOOD))
    wording = write_challenge(provider, ["turn_right", "blink"], SETTINGS, templates)
    assert wording.source == "local" and wording.fallback_reason.startswith("llm_offline")
    assert provider.history == [] and wording.texts[0].startswith("Slowly turn your head")
    assert set(wording.templates) == {"challenge_local"}
    assert json.loads(json.dumps(wording.as_dict()))["source"] == "local"


def test_local_wording_follows_the_language(templates: Templates) -> None:
    french = local_wording(["blink", "smile"], "fr", templates)
    assert french == ("Fermez les deux yeux un instant, puis rouvrez-les",
                      "Faites-nous un grand sourire")
    assert local_wording(["blink"], "pt-BR", templates) == local_wording(["blink"], "en", templates)


def test_unknown_actions_are_refused(templates: Templates) -> None:
    with pytest.raises(ChallengeError, match="not all in the vocabulary"):
        write_challenge(MockProvider(), ["blink", "wink"], SETTINGS, templates)
