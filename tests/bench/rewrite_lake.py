"""Prepares a copy of a lake for a same-run A/B of a lake-format change: splits every Parquet
file of DST (a copy of a stopped server's data directory, `wal/checkpoint` included) into two
files of half its row groups each, named as two flushes. Started on DST with
`--compaction-delay 1s`, a build's compaction merges them back into one file per partition,
written in that build's format, with the same rows in the same order.

Usage: ~/.cache/lakescope/venv/bin/python tests/bench/rewrite_lake.py DST
"""
import pathlib
import sys

import pyarrow.parquet as pq

SEQ_KEY = b"lakescope.wal_seq"

dst = pathlib.Path(sys.argv[1])
for path in sorted(dst.glob("*/date=*/hour=*/*.parquet")):
    source = pq.ParquetFile(path)
    seq = int(path.name.split("-")[0])
    groups = source.metadata.num_row_groups
    if groups < 2:
        sys.exit(f"{path}: one row group, nothing to split")
    halves = [(range(0, groups // 2), seq - 1), (range(groups // 2, groups), seq)]
    if seq < 1 or any(p.name.startswith(f"{seq - 1:020}-") for p in path.parent.iterdir()):
        sys.exit(f"{path}: no free sequence number below {seq}")
    tables = [(source.read_row_groups(list(r)), s) for r, s in halves]
    path.unlink()
    for table, s in tables:
        meta = dict(table.schema.metadata or {})
        meta[SEQ_KEY] = str(s).encode()
        pq.write_table(table.replace_schema_metadata(meta), path.parent / f"{s:020}-0.parquet")
    print(f"{path.name}: {source.metadata.num_rows} rows into {seq - 1:020}-0 and {seq:020}-0")
