"""Operating the tool: init's scaffolding and git config, cron/systemd schedules, replay of a recorded
step, progress lines, the demo.

May import: anything but commands and cli.
"""
