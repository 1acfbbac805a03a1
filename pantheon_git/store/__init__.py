"""Where everything is kept in git: ref names (layout), compare-and-swap ref moves, the fan-out notes
writer, run branches with their trailers, trace notes, vote lines, per-task locks, the one git layer
(pygit2 in-process, GitPython for the git command line), and redact.py, which every write of text into
git passes through.

Object ids are `pygit2.Oid` wherever they cross a module boundary (parameters, returns, dataclass
fields), never `str | pygit2.Oid`: an Oid is what pygit2 hands out (`create_blob`, `commit.id`,
`ref.target`) and takes back, so the hot path converts nothing; it is always a whole id (hex may be
abbreviated); and one type keeps dict and set lookups honest (an Oid key and a hex key never match, so a
mixed type loses votes or notes silently). Hex text exists only at the edges, converted once there: the
git command line, JSON notes (`$blob`), a notes tree's path names, a hook's stdin, the verified-signature
cache, and messages for people. `git.parse_oid` reads a full hex id from such text.
`tests/test_layout.py` fails if a public annotation mixes the two again.

May import: errors. Nothing else of the package.
"""
