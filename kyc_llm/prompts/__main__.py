"""``python -m kyc_llm.prompts check`` and ``python -m kyc_llm.prompts render NAME``.

``check`` validates every template and exits 1 with the first problem on stderr; ``render``
prints one template filled with sample data, for previewing an edit. The directory is
``--dir``, else ``KYC_LLM_PROMPTS_DIR``, else the repository's ``prompts/``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError
from ..llm.errors import TemplateError
from ..llm.settings import LLMSettings
from .catalog import CATALOG
from .loader import SUFFIX, check_all, load_template


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 template problem, 2 usage)."""
    parser = argparse.ArgumentParser(prog="python -m kyc_llm.prompts", description=__doc__)
    parser.add_argument("--dir", type=Path, help="prompts directory")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="validate every template")
    render = commands.add_parser("render", help="print a template rendered with sample data")
    render.add_argument("name", choices=sorted(CATALOG))
    args = parser.parse_args(argv)

    try:
        directory = args.dir or LLMSettings.from_env(os.environ).prompts_dir
    except ConfigError as exc:
        print(f"configuration error: {exc.message}", file=sys.stderr)
        return 2
    try:
        if args.command == "check":
            for info in check_all(directory):
                print(f"ok  {info.name:<18} v{info.version:<3} {info.sha256[:12]}  {info.path}")
            print(f"{len(CATALOG)} templates OK in {directory}")
        else:
            print(load_template(directory / f"{args.name}{SUFFIX}").render(
                CATALOG[args.name].sample()))
    except TemplateError as exc:
        print(f"prompts {args.command} failed: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
