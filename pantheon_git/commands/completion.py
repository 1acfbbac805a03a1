"""`git pantheon completion bash|zsh`: the shell completion script, generated from the argparse parser.

Git completes `git pantheon …` through a function named `_git_pantheon` (bash) when one exists; the
script defines it on top of shtab's completer, so both `git pantheon <TAB>` and `git-pantheon <TAB>` work.
"""

from __future__ import annotations

import argparse

# bash: git's completion calls _git_<subcommand>; hand it the words after `git`.
BASH_GIT_HOOK = """
_git_pantheon() {
  local COMP_WORDS=("git-pantheon" "${words[@]:2}")
  local COMP_CWORD=$((cword - 1))
  _shtab_git_pantheon
}
complete -o filenames -F _shtab_git_pantheon git-pantheon
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=["bash", "zsh"], help="the shell to print the script for")


def script(shell: str) -> str:
    """The completion script for `shell` (needs the `shtab` package)."""
    from pantheon_git.commands.parser import build_parser
    from pantheon_git.errors import PantheonError

    try:
        import shtab
    except ImportError:
        raise PantheonError("completion needs the shtab package: pip install shtab") from None
    parser = build_parser(None, every_verb=True)
    parser.prog = "git-pantheon"
    text = shtab.complete(parser, shell=shell)
    return text + (BASH_GIT_HOOK if shell == "bash" else "")


def run(args: argparse.Namespace) -> int:
    print(script(args.shell))
    return 0
