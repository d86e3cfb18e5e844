"""Resources every stage shares."""

import dagster as dg

from hare_assets.lib.storage import TableStore


class HareStorage(dg.ConfigurableResource):
    """Parquet tables for every asset under one root: a local path or an fsspec URL (s3://, gs://, …)."""

    root: str

    @property
    def tables(self) -> TableStore:
        return TableStore(self.root)
