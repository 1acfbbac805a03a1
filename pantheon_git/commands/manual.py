"""The manual page `git-pantheon(1)`, generated from the CLI's argparse definitions.

`git pantheon --help` makes git run `man git-pantheon`; the page is built from the same parser the CLI
uses (every verb a section), committed under man/man1/ and installed by the wheel into
<prefix>/share/man/man1, where `man` looks for a command found in <prefix>/bin. `python -m
pantheon_git.commands.manual` rewrites it; a test fails when it is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pantheon_git import __version__

PAGES_DIR = Path(__file__).resolve().parents[2] / "man" / "man1"


def render() -> dict[str, str]:
    """File name -> roff text of every page (deterministic: no build date in it)."""
    from argparse_manpage.manpage import Manpage

    from pantheon_git.commands.parser import build_parser

    parser = build_parser(None, every_verb=True)
    page = Manpage(
        parser,
        _data={
            "date": f"pantheon-git {__version__}",
            "project_name": "pantheon-git",
            "version": __version__,
            "manual_title": "pantheon-git manual",
            "manual_section": "1",
        },
    )
    text = str(page)
    # argparse-manpage names the page after `prog` ("git pantheon"); man and git know it as git-pantheon.
    text = text.replace('.TH GIT PANTHEON "1"', '.TH GIT\\-PANTHEON "1"', 1)
    summary = parser.description or ""
    text = text.replace(".SH NAME\ngit pantheon\n", f".SH NAME\ngit\\-pantheon \\- {summary}\n", 1)
    return {"git-pantheon.1": text}


def main(argv: list[str] | None = None) -> int:
    out = Path((argv or sys.argv[1:] or [str(PAGES_DIR)])[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (out / name).write_text(text)
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
