"""Results tables as parquet files, written atomically so a crash never leaves a half-written file."""
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def write_rows(rows: list[dict], path: str | Path) -> None:
    """Replace `path` with `rows` (the union of their keys as columns, None where a row lacks one)."""
    path = Path(path)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = pa.Table.from_pylist([{key: row.get(key) for key in columns} for row in rows])
    partial = path.with_name(path.name + ".partial")
    pq.write_table(table, partial)
    os.replace(partial, path)


def read_rows(path: str | Path) -> list[dict]:
    path = Path(path)
    return pq.read_table(path).to_pylist() if path.is_file() else []
