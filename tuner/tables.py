"""Results tables as parquet files — local paths or URIs (s3://, gs://) through pyarrow's filesystems —
written atomically, so a crash never leaves a half-written file."""
import pyarrow as pa
import pyarrow.fs
import pyarrow.parquet as pq


def write_rows(rows: list[dict], location: str) -> None:
    """Replace `location` with `rows` (the union of their keys as columns, None where a row lacks one)."""
    filesystem, path = pyarrow.fs.FileSystem.from_uri(str(location))
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = pa.Table.from_pylist([{key: row.get(key) for key in columns} for row in rows])
    partial = path + ".partial"
    pq.write_table(table, partial, filesystem=filesystem)
    filesystem.move(partial, path)  # a rename on local disks: readers see the old table or the new one


def read_rows(location: str) -> list[dict]:
    filesystem, path = pyarrow.fs.FileSystem.from_uri(str(location))
    if filesystem.get_file_info(path).type != pyarrow.fs.FileType.File:
        return []
    return pq.read_table(path, filesystem=filesystem).to_pylist()
