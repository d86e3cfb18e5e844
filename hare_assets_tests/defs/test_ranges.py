"""A run over several partitions reports one result: counts summed, each partition's details kept, checks combined."""

import dagster as dg

from hare_assets.defs.accounting import account_metadata, accounting_result
from hare_assets.defs.ranges import combined
from hare_assets.lib.accounting import Account


def _result(account: Account, note: str) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={**account_metadata(account), "note": dg.MetadataValue.text(note)},
                                check_results=[accounting_result("synthetic_documents", account)])


def test_one_partition_reports_its_own_result():
    one = _result(Account(rows_in=2, rows_out=2), "alone")
    assert combined({"topic-000": one}) is one


def test_several_partitions_sum_their_counts_and_fail_if_one_fails():
    balanced = _result(Account(rows_in=2, rows_out=1, removed={"too_few_words": 1}), "first")
    broken = _result(Account(rows_in=3, rows_out=1), "second")  # two rows unaccounted for
    result = combined({"topic-000": balanced, "topic-001": broken})
    meta = {k: v.value for k, v in result.metadata.items()}
    assert (meta["rows_in"], meta["dagster/row_count"], meta["rows_removed"]) == (5, 2, 1)
    assert meta["topic-000/note"] == "first" and meta["topic-001/note"] == "second"
    assert "| topic-001 | 1 | 3 | 0 | 0 |" in meta["partitions"]
    [check] = result.check_results
    assert not check.passed and check.description.startswith("failed for topic-001: ")
    assert check.metadata["rows_in"].value == 5 and check.metadata["unexplained"].value == 2
