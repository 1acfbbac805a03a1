"""One module per CLI verb: `add_arguments(parser)` declares its options, `run(args)` does the work."""
