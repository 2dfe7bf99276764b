"""Reads a Lakescope data directory with pyarrow and DuckDB only (no Lakescope code) and prints,
as JSON, what each engine finds: for the spans table, the row count, the sorted span ids, the
columns and per-service counts (ids, stored as bytes, printed as lowercase hex); for the logs table, the row count and the ERROR-or-worse count.
Usage: read_lake.py DATA_DIR [spans|logs|metrics]"""

import json
import sys
from pathlib import Path

import duckdb
import pyarrow.dataset as ds


def with_pyarrow(spans_dir: Path) -> dict:
    dataset = ds.dataset(spans_dir, format="parquet", partitioning="hive")
    table = dataset.to_table()
    services = {}
    for name in table.column("service_name").to_pylist():
        services[name] = services.get(name, 0) + 1
    attributes = table.column("attributes").type
    return {
        "rows": table.num_rows,
        # Ids are stored as bytes; shown as the API shows them, lowercase hex.
        "span_ids": sorted(i.hex() for i in table.column("span_id").to_pylist()),
        "columns": table.schema.names,
        "services": services,
        "attributes_type": str(attributes),
        "partitions": sorted({str(p) for p in table.column("hour").unique().to_pylist()}),
    }


def with_duckdb(spans_dir: Path) -> dict:
    glob = str(spans_dir / "**" / "*.parquet")
    con = duckdb.connect()
    rel = f"read_parquet('{glob}', hive_partitioning = true)"
    rows = con.execute(f"SELECT count(*) FROM {rel}").fetchone()[0]
    ids = [r[0] for r in con.execute(
        f"SELECT lower(hex(span_id)) FROM {rel} ORDER BY span_id").fetchall()]
    services = dict(con.execute(f"SELECT service_name, count(*) FROM {rel} GROUP BY 1").fetchall())
    errors = con.execute(
        f"SELECT count(*) FROM {rel} WHERE status_code = 'ERROR' AND span_kind = 'SERVER'"
    ).fetchone()[0]
    route = con.execute(
        f"SELECT attributes['http.route'] FROM {rel} WHERE attributes['http.route'] IS NOT NULL LIMIT 1"
    ).fetchone()
    return {
        "rows": rows,
        "span_ids": ids,
        "services": services,
        "server_errors": errors,
        "http_route": route[0] if route else None,
    }


def logs(logs_dir: Path) -> dict:
    table = ds.dataset(logs_dir, format="parquet", partitioning="hive").to_table()
    severities = table.column("severity_number").to_pylist()
    glob = str(logs_dir / "**" / "*.parquet")
    con = duckdb.connect()
    rel = f"read_parquet('{glob}', hive_partitioning = true)"
    rows, errors = con.execute(f"SELECT count(*), count(*) FILTER (WHERE severity_number >= 17) FROM {rel}").fetchone()
    return {
        "pyarrow": {"rows": table.num_rows, "errors": sum(1 for s in severities if s >= 17)},
        "duckdb": {"rows": rows, "errors": errors},
    }


def metrics(metrics_dir: Path) -> dict:
    table = ds.dataset(metrics_dir, format="parquet", partitioning="hive").to_table()
    kinds = table.column("metric_type").to_pylist()
    counts = table.column("count").to_pylist()
    glob = str(metrics_dir / "**" / "*.parquet")
    con = duckdb.connect()
    rel = f"read_parquet('{glob}', hive_partitioning = true)"
    rows, hist = con.execute(f"SELECT count(*), sum(count) FILTER (WHERE metric_type = 'histogram') FROM {rel}").fetchone()
    return {
        "pyarrow": {"rows": table.num_rows, "histogram_count": sum(c for k, c in zip(kinds, counts) if k == "histogram")},
        "duckdb": {"rows": rows, "histogram_count": int(hist)},
    }


def main() -> None:
    table = sys.argv[2] if len(sys.argv) > 2 else "spans"
    if table == "metrics":
        print(json.dumps(metrics(Path(sys.argv[1]) / "metrics")))
        return
    if table == "logs":
        print(json.dumps(logs(Path(sys.argv[1]) / "logs")))
        return
    spans_dir = Path(sys.argv[1]) / "spans"
    print(json.dumps({"pyarrow": with_pyarrow(spans_dir), "duckdb": with_duckdb(spans_dir)}))


if __name__ == "__main__":
    main()
