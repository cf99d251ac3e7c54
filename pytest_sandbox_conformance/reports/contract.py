"""The requirements' text, for reports: extracted from ``docs/contract.md`` into
``contract_text.py`` (a generated module, so an installed package has it without the checkout).

    python -m pytest_sandbox_conformance.reports.contract docs/contract.md

regenerates ``contract_text.py``; ``tests/test_reports.py`` fails when it is not current. Each
requirement is its section 4 heading (``### OWN-n Title``) and the paragraphs under it, up to
its "Checked by" list.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

__all__ = ["extract", "render_module", "requirement", "MODULE"]

MODULE = Path(__file__).with_name("contract_text.py")

_HEADING = re.compile(r"^### (OWN-\d+) (.+?)\s*$")


def extract(markdown: str) -> dict[str, dict[str, str]]:
    """``{"OWN-n": {"title": ..., "text": ...}}`` from the contract's markdown."""
    out: dict[str, dict[str, str]] = {}
    current: str | None = None
    body: list[str] = []

    def close() -> None:
        if current is not None:
            out[current]["text"] = "\n".join(body).strip()

    for line in markdown.splitlines():
        m = _HEADING.match(line)
        if m:
            close()
            current, body = m.group(1), []
            out[current] = {"title": m.group(2), "text": ""}
        elif line.startswith("#"):
            close()
            current = None
        elif current is not None:
            if line.startswith("Checked by"):
                close()
                current = None
            else:
                body.append(line)
    close()
    return out


def render_module(requirements: dict[str, dict[str, str]]) -> str:
    lines = ['"""The contract\'s requirements (title and text), generated from docs/contract.md by',
             "``python -m pytest_sandbox_conformance.reports.contract docs/contract.md``: do not",
             'edit; tests/test_reports.py checks that it is current."""', "",
             "REQUIREMENTS = {"]
    for req, entry in requirements.items():
        lines.append(f"    {req!r}: {{")
        lines.append(f"        'title': {entry['title']!r},")
        lines.append(f"        'text': {entry['text']!r},")
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def requirement(req: str) -> dict[str, str]:
    """The title and text of ``req`` (empty for an unknown one)."""
    from .contract_text import REQUIREMENTS

    return REQUIREMENTS.get(req, {"title": "", "text": ""})


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pytest_sandbox_conformance.reports.contract docs/contract.md",
              file=sys.stderr)
        return 2
    reqs = extract(Path(args[0]).read_text(encoding="utf-8"))
    MODULE.write_text(render_module(reqs), encoding="utf-8")
    print(f"{MODULE}: {len(reqs)} requirements")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
