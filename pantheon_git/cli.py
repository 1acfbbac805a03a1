"""`git pantheon VERB …`: parse the verb, import only that verb's module, print errors as one line.

Each verb lives in pantheon_git/commands/<verb>.py with `add_arguments(parser)` and `run(args) -> int`.
Only the chosen verb's module is imported, so `git pantheon --help` and quick verbs start fast and
never load the model stack.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from pantheon_git.commands.parser import VERBS, build_parser
from pantheon_git.errors import PantheonError, shown

__all__ = ["VERBS", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    # pydantic scans every installed package's entry points for plugins on its first model (tens of
    # milliseconds on each start); the CLI uses none.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    args_list = list(sys.argv[1:] if argv is None else argv)
    verb = next((arg for arg in args_list if arg in VERBS), None)
    parser = build_parser(verb)
    args = parser.parse_args(args_list)
    if args.verb is None:
        parser.print_help()
        return 2
    if args.directory:
        os.chdir(args.directory)
    module = importlib.import_module(f"pantheon_git.commands.{VERBS[args.verb][0]}")
    try:
        return int(module.run(args) or 0)
    except PantheonError as exc:
        print(f"git pantheon {args.verb}: {shown(exc)}", file=sys.stderr)  # messages quote data
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (`| head`) went away: not an error of ours; keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    raise SystemExit(main())
