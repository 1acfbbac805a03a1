"""pantheon-git: a local-only AI night shift whose database, audit trail and sync protocol is git."""

__version__ = "0.1.0"
