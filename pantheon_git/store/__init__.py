"""Where everything is kept in git: ref names (layout), compare-and-swap ref moves, the fan-out notes
writer, run branches with their trailers, trace notes, vote lines, per-task locks, and the one git layer
(pygit2 in-process, GitPython for the git command line).

May import: errors. Nothing else of the package.
"""
