"""Prompt templates: every file in prompts/ checks and renders; broken copies fail the check
with a message naming the file and the problem; the command line does the same."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from kyc_llm.errors import KycError
from kyc_llm.llm.errors import TemplateError
from kyc_llm.llm.settings import DEFAULT_PROMPTS_DIR
from kyc_llm.prompts import check_all, load_template, load_templates
from kyc_llm.prompts.__main__ import main
from kyc_llm.prompts.catalog import CATALOG

ROOT = Path(__file__).resolve().parent.parent
NAMES = sorted(p.stem for p in DEFAULT_PROMPTS_DIR.glob("*.jinja"))


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    """A copy of prompts/ a test may break."""
    return Path(shutil.copytree(DEFAULT_PROMPTS_DIR, tmp_path / "prompts"))


def test_the_folder_holds_exactly_the_templates_the_code_uses() -> None:
    assert NAMES == sorted(CATALOG)


@pytest.mark.parametrize("name", NAMES)
def test_every_template_checks_and_renders(name: str) -> None:
    path = DEFAULT_PROMPTS_DIR / f"{name}.jinja"
    template = load_template(path)
    assert template.info.name == name and template.info.version >= 1
    assert template.info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert set(template.info.variables) <= CATALOG[name].variables
    text = template.render(CATALOG[name].sample())
    assert text and "{{ " not in text and "{%" not in text  # no Jinja left unrendered


def test_check_all_returns_every_template_in_catalog_order() -> None:
    infos = check_all(DEFAULT_PROMPTS_DIR)
    assert [i.name for i in infos] == list(CATALOG)
    requests = {i.name: (i.output_schema, i.max_tokens) for i in infos if i.role == "request"}
    assert requests["movement_judgment"][0] == "movement_judgment"
    assert requests["challenge_wording"][0] == "challenge_wording"


def _replace(old: str, new: str, count: int = 1) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, f"test setup: {old!r} not in template"
        return text.replace(old, new, count)
    return edit


BROKEN = {
    "no-opening-fence": ("system", _replace("+++\n", ""), r"must start with a '\+\+\+' line"),
    "no-closing-fence": ("answer_repair", lambda t: t.replace("+++", "", 2).replace("", "+++\n", 1),
                         r"header has no closing"),
    "bad-toml": ("system", _replace("version = 1", "version = = 1"), r"header is not valid TOML"),
    "unknown-key": ("system", _replace("version = 1", 'version = 1\nauthor = "x"'),
                    r"unknown keys \['author'\]"),
    "name-mismatch": ("system", _replace('name = "system"', 'name = "sys"'),
                      r"name 'sys' must equal the file name 'system'"),
    "version-zero": ("system", _replace("version = 1", "version = 0"),
                     r"version must be a whole number >= 1"),
    "undeclared-variable": ("system", lambda t: t + "\nHello {{ user_name }}",
                            r"body uses variables not declared in the header: \['user_name'\]"),
    "variable-not-provided": ("system", _replace('variables = ["language"]',
                                                 'variables = ["language", "user_name"]'),
                              r"variables \['user_name'\] are not provided to 'system'"),
    "no-output-schema": ("movement_judgment", _replace('output_schema = "movement_judgment"\n', ""),
                         r"output_schema must be 'movement_judgment'.*got None"),
    "wrong-output-schema": ("movement_judgment",
                            _replace('output_schema = "movement_judgment"',
                                     'output_schema = "challenge_wording"'),
                            r"output_schema must be 'movement_judgment'"),
    "model-on-system": ("system", _replace('variables = ["language"]',
                                           'variables = ["language"]\n[model]\nmax_tokens = 5'),
                        r"a system template takes no output_schema or \[model\]"),
    "max-tokens-zero": ("movement_judgment", _replace("max_tokens = 1200", "max_tokens = 0"),
                        r"model.max_tokens must be a whole number in 1..8192"),
    "temperature-two": ("challenge_wording", _replace("temperature = 0.8", "temperature = 2"),
                        r"model.temperature must be a number in 0..1"),
    "model-key-missing": ("challenge_wording", _replace("temperature = 0.8\n", ""),
                          r"\[model\] must set exactly \['max_tokens', 'temperature'\]"),
    "jinja-syntax": ("challenge_wording", _replace("{% for step in steps %}", "{% for step in steps"),
                     r"Jinja syntax error at line \d+"),
    "undefined-attribute": ("movement_judgment", _replace("{{ a.action }}", "{{ a.verb }}"),
                            r"does not render \(line \d+\):.*verb"),
    "local-action-missing": ("challenge_local",
                             _replace('    "smile": "Give us a big smile",\n', ""),
                             r"does not render.*smile"),
    "local-markup": ("challenge_local", _replace("Give us a big smile", "Give us a <b>big</b> smile"),
                     r"sample render line .* contains markup"),
    "local-two-lines": ("challenge_local", _replace("{{ table[step.action] }}\n",
                                                   "{{ table[step.action] }}\n\n"),
                        r"one non-empty line per step"),
    # Errors Python raises inside Jinja (not Jinja's own) are the template's problem too.
    "division-by-zero": ("system", lambda t: t + "\n{{ 1 // (language|length - 2) }}",
                         r"does not render \(line \d+\): ZeroDivisionError"),
    "include-without-loader": ("system", lambda t: t + "\n{% include 'other' %}",
                               r"does not render.*TypeError: no loader"),
    "recursive-macro": ("system", lambda t: t + "\n{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
                        r"does not render.*RecursionError"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_copy_fails_the_check_naming_file_and_problem(case: str, prompts: Path) -> None:
    name, edit, message = BROKEN[case]
    path = prompts / f"{name}.jinja"
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(TemplateError) as caught:
        check_all(prompts)
    assert isinstance(caught.value, KycError) and caught.value.code == "bad_template"
    assert caught.value.path == str(path)
    assert re.search(message, caught.value.message), caught.value.message


@pytest.mark.parametrize(
    ("line", "broken", "message"),
    [("{{ step.number }}. {{ step.action }}", "{{ step.number + }}. {{ step.action }}",
      "Jinja syntax error at line {n}:"),
     ("{{ step.number }}. {{ step.action }}", "{{ step.number }}. {{ step.verb }}",
      r"does not render \(line {n}\): 'dict object' has no attribute 'verb'")],
)
def test_errors_name_the_line_in_the_file(prompts: Path, line: str, broken: str,
                                          message: str) -> None:
    path = prompts / "challenge_wording.jinja"
    lines = path.read_text(encoding="utf-8").splitlines()
    number = lines.index(line) + 1
    lines[number - 1] = broken
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(TemplateError, match=message.format(n=number)):
        load_template(path)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda d: (d / "extra.jinja").write_text("+++\n+++\nx"), r"unknown template files \['extra'\]"),
        (lambda d: (d / "answer_repair.jinja").unlink(), r"missing templates \['answer_repair'\]"),
        (lambda d: shutil.rmtree(d), r"prompts directory not found"),
        (lambda d: (d / "system.jinja").write_bytes(b"+++\n\xff\xfe"), r"cannot read"),
        (lambda d: (d / "system.jinja").write_bytes(b"+++\n" + b" " * 70_000), r"larger than 65536 bytes"),
        (lambda d: ((d / "system.jinja").unlink(), os.mkfifo(d / "system.jinja")), r"not a regular file"),
    ],
    ids=["extra-file", "missing-file", "no-directory", "not-utf8", "too-large", "fifo"],
)
def test_directory_problems(prompts: Path, breakage: Callable[[Path], object], message: str) -> None:
    breakage(prompts)
    with pytest.raises(TemplateError, match=message):
        load_templates(prompts)


def _create_app(tmp_path: Path, prompts: Path, **env: str):  # type: ignore[no-untyped-def]
    from kyc_llm.web import create_app

    return create_app(environ={"KYC_DATABASE": str(tmp_path / "db.sqlite3"), "KYC_FRAME_DIR": str(tmp_path / "f"),
                               "KYC_LLM_PROMPTS_DIR": str(prompts), **env})


def test_the_server_loads_the_folder_the_check_command_checks(tmp_path: Path, prompts: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """One variable, KYC_LLM_PROMPTS_DIR, for both (the server read KYC_PROMPTS_DIR)."""
    (prompts / "system.jinja").write_text("+++\nbroken", encoding="utf-8")
    monkeypatch.delenv("KYC_LLM_PROMPTS_DIR", raising=False)
    assert main(["check"]) == 0  # without the variable: the repository's folder
    monkeypatch.setenv("KYC_LLM_PROMPTS_DIR", str(prompts))
    assert main(["check"]) == 1
    with pytest.raises(TemplateError, match="system.jinja"):
        _create_app(tmp_path, prompts)


def test_templates_that_break_on_the_servers_settings_stop_its_start(tmp_path: Path, prompts: Path) -> None:
    """The check renders English and three steps; the server renders its own language and
    challenge length, so those are rendered at its start too."""
    local = prompts / "challenge_local.jinja"
    local.write_text(local.read_text(encoding="utf-8").replace('    "smile": "Faites-nous un grand sourire",\n', ""),
                     encoding="utf-8")
    check_all(prompts)  # English is complete
    _create_app(tmp_path, prompts).extensions["kyc"].close()
    with pytest.raises(TemplateError, match=r"challenge_local.jinja.*smile"):
        _create_app(tmp_path, prompts, KYC_LLM_LANGUAGE="fr")
    wording = prompts / "challenge_wording.jinja"
    wording.write_text(wording.read_text(encoding="utf-8") + "\n{{ steps[2].action }}", encoding="utf-8")
    local.write_text((DEFAULT_PROMPTS_DIR / "challenge_local.jinja").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(TemplateError, match=r"challenge_wording.jinja"):
        _create_app(tmp_path, prompts, KYC_LLM_CHALLENGE_LENGTH="2")


def test_other_files_such_as_the_readme_are_ignored(prompts: Path) -> None:
    (prompts / "notes.txt").write_text("drafts")
    assert len(check_all(prompts)) == len(CATALOG)


def test_cli_check_and_render(prompts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dir", str(prompts), "check"]) == 0
    out = capsys.readouterr().out
    assert f"{len(CATALOG)} templates OK" in out and "ok  movement_judgment  v1" in out

    assert main(["--dir", str(prompts), "render", "challenge_local"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "Slowly turn your head to your left, then look back at the camera")

    path = prompts / "system.jinja"
    path.write_text(path.read_text().replace("version = 1", "version = 0"))
    assert main(["--dir", str(prompts), "check"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"prompts check failed: {path}: header: version must be")
    # render previews one template even while another one is broken
    assert main(["--dir", str(prompts), "render", "movement_judgment"]) == 0
    assert "1. turn_left: from 0.8 s to 2.6 s" in capsys.readouterr().out

    with pytest.raises(SystemExit) as usage:
        main(["--dir", str(prompts), "render", "nope"])
    assert usage.value.code == 2


def test_python_dash_m_entry_point() -> None:
    done = subprocess.run([sys.executable, "-m", "kyc_llm.prompts", "check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"{len(CATALOG)} templates OK" in done.stdout
