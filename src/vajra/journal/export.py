"""`vajra journal export DB OUT.csv [--parquet OUT.parquet]`: the journal as a table for analysis.

One row per event, in seq order, columns as in the database (`journal.COLUMNS`) except `kind`,
written as its name (PLACE, ACK, FILL...). Columns a kind does not use are empty (NULL). Which
column holds which field of each kind: `journal.KIND_COLUMNS` (e.g. `code` is the time in force
of a PLACE, the reason of a REJECT; `text` the venue id of an ACK, the fill id of a FILL).

The database is opened read-only, so exporting while the engine runs is safe (WAL readers do
not block the writer) and sees the events committed when the export started.

Parquet needs pyarrow or polars. Neither is a dependency: they are used if they import (both
ship free-threaded 3.13t wheels at some versions; importing a C extension that is not marked
free-threading-safe turns the GIL back on, which does not matter for this offline command).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import itertools
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from vajra.journal.journal import COLUMNS, JournalError, Kind, iter_rows

_KIND = COLUMNS.index("kind")
_STRING_COLUMNS = frozenset({"kind", "text", "detail"})
_BATCH = 65536


def parquet_engine() -> tuple[str, ModuleType] | None:
    """('pyarrow', module) or ('polars', module) if either imports, else None."""
    for name in ("pyarrow", "polars"):
        try:
            return name, importlib.import_module(name)
        except ImportError:
            continue
    return None


def _named(row: tuple[Any, ...]) -> list[Any]:
    out = list(row)
    k = out[_KIND]
    try:
        out[_KIND] = Kind(k).name
    except ValueError:
        out[_KIND] = str(k)  # a kind from a newer build: keep the code
    return out


class _ParquetSink:
    """Row batches into one Parquet file through pyarrow (streamed) or polars (at close)."""

    def __init__(self, path: str, engine: tuple[str, ModuleType]) -> None:
        self.path = path
        self.name, self.mod = engine
        self.pending: list[list[Any]] = []
        self._writer: Any = None
        self._chunks: list[Any] = []
        if self.name == "pyarrow":
            pa = self.mod
            self._pq = importlib.import_module("pyarrow.parquet")
            self._schema = pa.schema(
                [(c, pa.string() if c in _STRING_COLUMNS else pa.int64()) for c in COLUMNS]
            )

    def add(self, row: list[Any]) -> None:
        self.pending.append(row)
        if len(self.pending) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        rows, self.pending = self.pending, []
        cols = list(zip(*rows, strict=True)) if rows else [() for _ in COLUMNS]
        if self.name == "pyarrow":
            pa = self.mod
            table = pa.Table.from_arrays(
                [pa.array(list(c), type=f.type) for c, f in zip(cols, self._schema, strict=True)],
                schema=self._schema,
            )
            if self._writer is None:
                self._writer = self._pq.ParquetWriter(self.path, self._schema)
            self._writer.write_table(table)
        else:
            pl = self.mod
            self._chunks.append(
                pl.DataFrame(
                    {c: list(v) for c, v in zip(COLUMNS, cols, strict=True)},
                    schema={c: pl.Utf8 if c in _STRING_COLUMNS else pl.Int64 for c in COLUMNS},
                )
            )

    def close(self) -> None:
        if self.pending or (self._writer is None and not self._chunks):
            self._flush()
        if self.name == "pyarrow":
            self._writer.close()
        else:
            self.mod.concat(self._chunks).write_parquet(self.path)


def export(
    db: str | os.PathLike[str], csv_path: str | os.PathLike[str], parquet_path: str | None = None
) -> int:
    """Write the journal's events to `csv_path` (and `parquet_path`); returns the row count.
    Raises JournalError for a missing or foreign database, RuntimeError if Parquet is asked for
    and neither pyarrow nor polars imports."""
    sink: _ParquetSink | None = None
    if parquet_path is not None:
        engine = parquet_engine()
        if engine is None:
            raise RuntimeError("Parquet needs pyarrow or polars; neither imports here")
        sink = _ParquetSink(parquet_path, engine)
    n = 0
    rows = iter_rows(db)
    first = next(rows, None)  # opens and checks the database before the output is created
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for row in itertools.chain(() if first is None else (first,), rows):
            named = _named(row)
            w.writerow(named)  # None is written as an empty field
            if sink is not None:
                sink.add(named)
            n += 1
    if sink is not None:
        sink.close()
    return n


def main(argv: Sequence[str] | None = None) -> int:
    """`vajra journal export DB OUT.csv [--parquet OUT.parquet]` (argv without the subcommand)."""
    p = argparse.ArgumentParser(
        prog="vajra journal export",
        description="Write a Vajra journal's events to CSV (and Parquet) for analysis.",
    )
    p.add_argument("db", help="the journal database (SQLite)")
    p.add_argument("csv", help="output CSV file")
    p.add_argument("--parquet", metavar="OUT.parquet", help="also write Parquet (pyarrow/polars)")
    args = p.parse_args(argv)
    try:
        n = export(args.db, args.csv, args.parquet)
    except (JournalError, RuntimeError) as e:
        print(f"vajra journal export: {e}", file=sys.stderr)
        return 2
    out = args.csv + (f" and {args.parquet}" if args.parquet else "")
    print(f"{n} events -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
