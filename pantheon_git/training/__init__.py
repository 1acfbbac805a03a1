"""The training side that needs no torch: mining trace notes into datasets, promoting adapters."""
