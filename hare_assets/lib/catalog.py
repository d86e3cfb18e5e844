"""A DuckDB catalog: one view per stored table, so any stage can be queried with SQL."""

from __future__ import annotations

import duckdb

from hare_assets.lib.storage import TableStore


def open_catalog(store: TableStore, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """Connect and (re)create a view per table over all its partitions' Parquet files."""
    con = duckdb.connect(database)
    if not store.is_local:
        con.execute("INSTALL httpfs; LOAD httpfs;")  # s3://, gs://, https:// through DuckDB's own reader
    for table in store.tables():
        files = ", ".join(f"'{store.location(f)}'" for f in store.files(table))
        if files:  # committed parts only: a killed run's leftovers are not part of the table
            con.execute(f"CREATE OR REPLACE VIEW \"{table}\" AS SELECT * FROM read_parquet([{files}], union_by_name=true)")
    return con
