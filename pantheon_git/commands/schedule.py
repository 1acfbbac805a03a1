"""`git pantheon schedule install [--at HH:MM] [--systemd] | show | remove`: the nightly run."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["install", "show", "remove"])
    parser.add_argument("--at", default="02:00", help="time of day, HH:MM (default 02:00)")
    parser.add_argument(
        "--systemd", action="store_true", help="a systemd user timer instead of a crontab line"
    )
    parser.add_argument(
        "--train",
        action="store_true",
        help="the night runs the nightly trainer after the queue (night --train)",
    )


def run(args: argparse.Namespace) -> int:
    from pantheon_git.ops.schedule import (
        cron_line,
        our_lines,
        read_crontab,
        systemd_dir,
        systemd_units,
        unit_name,
        with_line,
        write_crontab,
    )
    from pantheon_git.store.git import open_repo, work_tree
    from pantheon_git.store.locks import pantheon_dir

    repo = open_repo()
    root = work_tree(repo).resolve()
    logs = pantheon_dir(repo.path).resolve() / "logs"
    if args.systemd:
        units = systemd_units(root, logs, args.at, args.train)
        directory = systemd_dir()
        if args.action == "install":
            logs.mkdir(parents=True, exist_ok=True)
            directory.mkdir(parents=True, exist_ok=True)
            for name, text in units.items():
                (directory / name).write_text(text)
            print(f"wrote {directory}/{unit_name(root)}.{{service,timer}}")
            timer = f"{unit_name(root)}.timer"
            print(f"enable it: systemctl --user daemon-reload && systemctl --user enable --now {timer}")
        elif args.action == "remove":
            for name in units:
                (directory / name).unlink(missing_ok=True)
            print(f"removed {unit_name(root)} units (run `systemctl --user daemon-reload`)")
        else:
            for name in units:
                path = directory / name
                print(f"{path}: {'installed' if path.exists() else 'not installed'}")
        return 0
    current = read_crontab()
    if args.action == "install":
        logs.mkdir(parents=True, exist_ok=True)
        line = cron_line(root, logs, args.at, args.train)
        write_crontab(with_line(current, root, line))
        print(f"installed: {line}")
    elif args.action == "remove":
        write_crontab(with_line(current, root, None))
        print(f"removed the night shift of {root} from the crontab")
    else:
        ours = our_lines(current, root)
        print("\n".join(ours) if ours else f"no night shift scheduled for {root}")
    return 0
