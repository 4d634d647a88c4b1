"""Shared-memory layouts, declared once and read by every side from the same declaration.

A `Layout` is an ordered list of named, fixed-size fields. Offsets are computed here and nowhere
else, so the engine (writer) and the monitor (reader) cannot disagree about where a value lives;
the layout's hash goes into every segment header and a reader refuses a segment whose hash differs
(a stale monitor against a newer engine fails loudly instead of reading garbage).

Fields that different threads write must not share a cache line (LMAX Disruptor's rule: one
writer per line). `Field(..., align=128)` starts a field on its own 128-byte boundary: 128 rather
than 64 because adjacent-line prefetch on x86 pulls lines in pairs.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

#: Padding unit separating lines written by different threads (two 64-byte lines, see module doc).
LINE = 128

_SCALAR_SIZES = {"q": 8, "Q": 8, "d": 8}


@dataclass(frozen=True, slots=True)
class Field:
    """One named field. `fmt` is a struct code: 'q' (int64), 'Q' (uint64), 'd' (float64) or
    'Ns' (N raw bytes, e.g. '32s'); `count` > 1 makes an array of that element."""

    name: str
    fmt: str = "q"
    count: int = 1
    align: int = 8
    doc: str = ""

    @property
    def element_size(self) -> int:
        if self.fmt in _SCALAR_SIZES:
            return _SCALAR_SIZES[self.fmt]
        if self.fmt.endswith("s") and self.fmt[:-1].isdigit():
            return int(self.fmt[:-1])
        raise ValueError(f"field {self.name!r}: unsupported format {self.fmt!r}")

    @property
    def size(self) -> int:
        return self.element_size * self.count


@dataclass(frozen=True)
class Layout:
    """A versioned, named sequence of fields with computed offsets and a stable hash.

    Bump `version` whenever the meaning of a field changes without its shape changing; shape
    changes alter the hash on their own.
    """

    name: str
    version: int
    fields: tuple[Field, ...]
    offsets: dict[str, int] = field(init=False, repr=False, compare=False)
    size: int = field(init=False, compare=False)
    hash: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        offsets: dict[str, int] = {}
        pos = 0
        for f in self.fields:
            if f.name in offsets:
                raise ValueError(f"layout {self.name!r}: duplicate field {f.name!r}")
            if f.align <= 0 or f.align & (f.align - 1):
                raise ValueError(
                    f"layout {self.name!r}: field {f.name!r} align must be a power of 2"
                )
            if f.fmt in _SCALAR_SIZES and f.align < 8:
                raise ValueError(f"layout {self.name!r}: scalar field {f.name!r} must be 8-aligned")
            pos = (pos + f.align - 1) & ~(f.align - 1)
            offsets[f.name] = pos
            pos += f.size
        size = (pos + 7) & ~7
        canon = ";".join(f"{f.name}:{f.fmt}:{f.count}:{offsets[f.name]}" for f in self.fields)
        digest = hashlib.blake2b(
            f"{self.name}|{self.version}|{canon}".encode(), digest_size=8
        ).digest()
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "size", size)
        # Signed, so it round-trips through an int64 ('q') header word.
        object.__setattr__(self, "hash", struct.unpack("<q", digest)[0])

    def offset(self, name: str) -> int:
        """Byte offset of `name` from the start of the layout."""
        try:
            return self.offsets[name]
        except KeyError:
            raise KeyError(f"layout {self.name!r} has no field {name!r}") from None

    def word(self, name: str) -> int:
        """Index of `name` in a `memoryview.cast('q')` of the layout (8-byte fields only)."""
        off = self.offset(name)
        if off % 8:
            raise ValueError(f"field {name!r} of {self.name!r} is not 8-byte aligned")
        return off // 8

    def get_field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"layout {self.name!r} has no field {name!r}")

    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def describe(self) -> list[dict[str, object]]:
        """Machine-readable declaration (the monitor and docs print it)."""
        return [
            {
                "name": f.name,
                "fmt": f.fmt,
                "count": f.count,
                "offset": self.offsets[f.name],
                "doc": f.doc,
            }
            for f in self.fields
        ]


def line_fields(*names: str, doc: str = "") -> Iterable[Field]:
    """int64 fields where the first starts a new padded line: a group owned by one writer."""
    for i, n in enumerate(names):
        yield Field(n, "q", align=LINE if i == 0 else 8, doc=doc)


def align_up(n: int, a: int = LINE) -> int:
    return (n + a - 1) & ~(a - 1)
