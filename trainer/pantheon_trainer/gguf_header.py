"""The few facts the export needs from a base GGUF (scalar metadata, tensor shapes), read fast.

gguf.GGUFReader parses every metadata array into Python objects; for Gemma's 262,144-token vocabulary
that takes about 12 s. This walks the header once and skips arrays, in well under a second.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from pantheon_trainer.errors import TrainerError

# GGUF value types (gguf.GGUFValueType): fixed-size scalars by struct format; 8 = string, 9 = array.
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class GGUFHeader:
    metadata: dict[str, object]  # scalars and strings only; arrays are skipped
    shapes: dict[str, list[int]]  # tensor name -> ggml ne (innermost first: [in, out] for a weight)


def read_header(path: Path) -> GGUFHeader:
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != b"GGUF" or struct.unpack_from("<I", data, 4)[0] not in (2, 3):
            raise TrainerError(f"{path}: not a little-endian GGUF (version 2 or 3) file")
        n_tensors, n_kv = struct.unpack_from("<QQ", data, 8)
        offset = 24

        def string() -> str:
            nonlocal offset
            (length,) = struct.unpack_from("<Q", data, offset)
            offset += 8 + length
            return data[offset - length : offset].decode("utf-8", errors="replace")

        def value(kind: int) -> object:
            nonlocal offset
            if kind == _STRING:
                return string()
            if kind == _ARRAY:
                item, count = struct.unpack_from("<IQ", data, offset)
                offset += 12
                if item in _SCALARS:
                    offset += count * struct.calcsize("<" + _SCALARS[item])
                else:
                    for _ in range(count):
                        value(item)
                return None
            fmt = "<" + _SCALARS[kind]
            (scalar,) = struct.unpack_from(fmt, data, offset)
            offset += struct.calcsize(fmt)
            return scalar

        metadata: dict[str, object] = {}
        for _ in range(n_kv):
            key = string()
            (kind,) = struct.unpack_from("<I", data, offset)
            offset += 4
            found = value(kind)
            if found is not None:
                metadata[key] = found
        shapes: dict[str, list[int]] = {}
        for _ in range(n_tensors):
            name = string()
            (n_dims,) = struct.unpack_from("<I", data, offset)
            shapes[name] = list(struct.unpack_from(f"<{n_dims}Q", data, offset + 4))
            offset += 4 + 8 * n_dims + 4 + 8  # dims, then ggml type (u32) and data offset (u64)
    return GGUFHeader(metadata, shapes)
