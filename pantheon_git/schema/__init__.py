"""The files a person writes, validated: task specs, flows, config.toml, models.toml; every
validation error is one line, `file:line: field: reason`, from one formatter.

May import: errors, store.
"""
