"""Prompt templates as data: a TOML header between ``+++`` lines, then a Jinja body.

```
+++
name = "movement_judgment"          # must equal the file name without ".jinja"
version = 3                         # bump on every change the product team makes
description = "..."                 # optional
variables = ["actions", "frames"]   # what the body uses; only what the code provides
output_schema = "movement_judgment" # request templates only
[model]                             # request templates only
max_tokens = 1200
temperature = 0.0
+++
Jinja body, rendered with undefined variables as errors, in a sandbox.
```

Loading checks everything the issue asks for (header, variables, schema, sample render) and
raises ``TemplateError`` naming the file on the first problem.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError as JinjaError, meta
from jinja2.sandbox import SandboxedEnvironment
from jsonschema import Draft202012Validator, SchemaError

from ..llm.errors import TemplateError
from ..llm.schemas import SCHEMAS
from .catalog import CATALOG

SUFFIX = ".jinja"
FENCE = "+++"
HEADER_KEYS = {"name", "version", "description", "variables", "output_schema", "model"}
MODEL_KEYS = {"max_tokens", "temperature"}
MAX_RENDERED_CHARS = 20_000
MAX_TEMPLATE_BYTES = 64 * 1024  # the largest template is under 3 KB


@dataclass(frozen=True)
class TemplateInfo:
    """A checked template's header, file and content hash (sha256 of the file's bytes)."""

    name: str
    version: int
    path: str
    sha256: str
    role: str
    variables: tuple[str, ...]
    output_schema: str | None
    max_tokens: int | None
    temperature: float | None
    description: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _environment() -> SandboxedEnvironment:
    # Sandboxed: a template is edited outside code review by engineers, so it gets no
    # access to Python internals. No autoescape: the output is a prompt, not HTML.
    return SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True
    )


class Template:
    """One loaded template; ``render`` fills its body with the code's variables."""

    def __init__(self, info: TemplateInfo, body: str, body_line: int) -> None:
        self.info = info
        self._body_line = body_line
        self._template = _environment().from_string(body)

    def render(self, variables: Mapping[str, Any]) -> str:
        """Return the rendered text, stripped.

        Raises ``TemplateError`` when a declared variable is missing, the body fails to
        render, or the result is empty or longer than ``MAX_RENDERED_CHARS``.
        """
        missing = [v for v in self.info.variables if v not in variables]
        if missing:
            raise TemplateError(f"missing variables {missing}", path=self.info.path)
        try:
            text = self._template.render(**{v: variables[v] for v in self.info.variables})
        except Exception as exc:  # noqa: BLE001 - Jinja lets Python's own errors through (1 // 0, recursion)
            line = _body_line_of(exc)
            where = f" (line {line + self._body_line})" if line else ""
            detail = str(exc) if isinstance(exc, JinjaError) else f"{type(exc).__name__}: {exc}"
            raise TemplateError(f"does not render{where}: {detail[:300]}", path=self.info.path) from None
        text = text.strip()
        if not text or len(text) > MAX_RENDERED_CHARS:
            raise TemplateError(
                f"renders to {len(text)} characters (need 1..{MAX_RENDERED_CHARS})",
                path=self.info.path,
            )
        return text


def _body_line_of(exc: Exception) -> int | None:
    """The body line an error comes from: syntax errors carry it; for runtime errors Jinja
    rewrites the traceback so the template's frames report their own line numbers."""
    line = getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


class Templates(Mapping[str, Template]):
    """The checked set of templates of one directory, by name."""

    def __init__(self, templates: dict[str, Template]) -> None:
        self._templates = templates

    def __getitem__(self, name: str) -> Template:
        return self._templates[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._templates)

    def __len__(self) -> int:
        return len(self._templates)

    def render(self, name: str, variables: Mapping[str, Any]) -> str:
        """Render template ``name``; raises ``TemplateError`` as ``Template.render``."""
        return self[name].render(variables)

    def hashes(self, *names: str) -> dict[str, str]:
        """Return ``{name: sha256}`` of the named templates, for the audit record."""
        return {name: self[name].info.sha256 for name in names}

    def infos(self) -> list[TemplateInfo]:
        return [t.info for t in self._templates.values()]


def load_template(path: str | Path) -> Template:
    """Read and check one template file, including a render with the catalog's sample data.

    Returns the template. Raises ``TemplateError`` naming the file and the first problem.
    """
    path = Path(path)
    where = str(path)
    try:
        # A regular file of bounded size: a FIFO would hang the start, /dev/zero fill memory.
        if not path.is_file():
            raise TemplateError("is not a regular file", path=where)
        if path.stat().st_size > MAX_TEMPLATE_BYTES:
            raise TemplateError(f"is larger than {MAX_TEMPLATE_BYTES} bytes", path=where)
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")  # tolerate a BOM some editors add
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"cannot read: {exc}", path=where) from None
    lines = text.splitlines()
    if not lines or lines[0].strip() != FENCE:
        raise TemplateError(f"must start with a '{FENCE}' line opening the header", path=where)
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == FENCE)
    except StopIteration:
        raise TemplateError(f"header has no closing '{FENCE}' line", path=where) from None
    try:
        header = tomllib.loads("\n".join(lines[1:end]))
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"header is not valid TOML: {exc}", path=where) from None

    info = _check_header(header, path, hashlib.sha256(raw).hexdigest())
    body = "\n".join(lines[end + 1:])
    env = _environment()
    try:
        used = meta.find_undeclared_variables(env.parse(body)) - set(env.globals)
    except JinjaError as exc:
        line = f" at line {exc.lineno + end + 1}" if getattr(exc, "lineno", None) else ""
        raise TemplateError(f"Jinja syntax error{line}: {exc}", path=where) from None
    undeclared = sorted(used - set(info.variables))
    if undeclared:
        raise TemplateError(
            f"body uses variables not declared in the header: {undeclared}", path=where
        )
    template = Template(info, body, end + 1)
    spec = CATALOG[info.name]
    sample = spec.sample()
    rendered = template.render(sample)
    problem = spec.check_output(rendered, sample) if spec.check_output else None
    if problem:
        raise TemplateError(f"sample render {problem}", path=where)
    return template


def _check_header(header: dict[str, Any], path: Path, sha256: str) -> TemplateInfo:
    where = str(path)

    def fail(message: str) -> TemplateError:
        return TemplateError(f"header: {message}", path=where)

    unknown = sorted(set(header) - HEADER_KEYS)
    if unknown:
        raise fail(f"unknown keys {unknown} (allowed: {sorted(HEADER_KEYS)})")
    name = header.get("name")
    if name != path.stem:
        raise fail(f"name {name!r} must equal the file name {path.stem!r}")
    spec = CATALOG.get(name)
    if spec is None:
        raise fail(f"no template {name!r} is used by the code (known: {sorted(CATALOG)})")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise fail("version must be a whole number >= 1")
    description = header.get("description", "")
    if not isinstance(description, str):
        raise fail("description must be a string")
    variables = header.get("variables")
    if (not isinstance(variables, list) or not all(isinstance(v, str) for v in variables)
            or len(set(variables)) != len(variables)):
        raise fail("variables must be a list of distinct names")
    extra = sorted(set(variables) - spec.variables)
    if extra:
        raise fail(f"variables {extra} are not provided to {name!r} "
                   f"(provided: {sorted(spec.variables)})")

    schema_name, model = header.get("output_schema"), header.get("model")
    max_tokens = temperature = None
    if spec.role != "request":
        if schema_name is not None or model is not None:
            raise fail(f"a {spec.role} template takes no output_schema or [model]: "
                       "the request template it belongs to sets them")
    else:
        if schema_name != spec.output_schema:
            raise fail(f"output_schema must be {spec.output_schema!r}, the schema the code "
                       f"validates {name!r} answers with (got {schema_name!r})")
        if schema_name not in SCHEMAS:
            raise fail(f"output_schema {schema_name!r} does not exist")
        try:
            Draft202012Validator.check_schema(SCHEMAS[schema_name].sample())
        except SchemaError as exc:
            raise fail(f"output_schema {schema_name!r} is not a valid JSON schema: "
                       f"{exc.message}") from None
        if not isinstance(model, dict) or set(model) != MODEL_KEYS:
            raise fail(f"[model] must set exactly {sorted(MODEL_KEYS)}")
        max_tokens, temperature = model["max_tokens"], model["temperature"]
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) \
                or not 1 <= max_tokens <= 8192:
            raise fail("model.max_tokens must be a whole number in 1..8192")
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) \
                or not 0.0 <= temperature <= 1.0:
            raise fail("model.temperature must be a number in 0..1")
        temperature = float(temperature)
    return TemplateInfo(
        name=name, version=version, path=where, sha256=sha256, role=spec.role,
        variables=tuple(variables), output_schema=schema_name, max_tokens=max_tokens,
        temperature=temperature, description=description,
    )


def load_templates(directory: str | Path) -> Templates:
    """Load and check every template of ``directory``.

    Returns them all. Raises ``TemplateError`` for the first problem: the directory is
    missing, a template the code needs is missing, a ``.jinja`` file is not one the code
    uses, or a template fails ``load_template``'s checks.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise TemplateError("prompts directory not found", path=str(directory))
    files = {p.stem: p for p in sorted(directory.glob(f"*{SUFFIX}"))}
    unknown = sorted(set(files) - set(CATALOG))
    if unknown:
        raise TemplateError(
            f"unknown template files {unknown} (the code uses {sorted(CATALOG)})",
            path=str(directory),
        )
    missing = sorted(set(CATALOG) - set(files))
    if missing:
        raise TemplateError(f"missing templates {missing}", path=str(directory))
    return Templates({name: load_template(files[name]) for name in CATALOG})


def check_all(directory: str | Path) -> list[TemplateInfo]:
    """Check every template of ``directory`` (what the server runs at start-up).

    Returns their infos in catalog order. Raises ``TemplateError`` on the first problem.
    """
    return load_templates(directory).infos()
