"""Where everything is kept in git: ref names (layout), compare-and-swap ref moves, the fan-out notes
writer, run branches with their trailers, trace notes, vote lines, per-task locks, the one git layer
(pygit2 in-process, GitPython for the git command line), and redact.py, which every write of text into
git passes through.

May import: errors. Nothing else of the package.
"""
