"""The accounting check every stage carries: rows in = out + removed (by reason) + quarantined."""

import dagster as dg

from hare_assets.lib.accounting import Account

CHECK_NAME = "rows_accounted"


def accounting_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        CHECK_NAME,
        asset=asset,
        blocking=True,
        description="Every input row is kept, removed with a named reason, or quarantined; nothing vanishes.",
    )


def accounting_result(asset: str, account: Account) -> dg.AssetCheckResult:
    """Blocking: an unbalanced account fails the run before anything downstream reads the output."""
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=CHECK_NAME,
        passed=account.balanced,
        severity=dg.AssetCheckSeverity.ERROR,
        description=account.summary(),
        metadata={
            "rows_in": account.rows_in,
            "rows_out": account.rows_out,
            "rows_removed": account.rows_removed,
            "rows_quarantined": account.quarantined,
            "unexplained": account.unexplained,
        },
    )


def account_metadata(account: Account) -> dict[str, dg.MetadataValue]:
    return {
        "dagster/row_count": dg.MetadataValue.int(account.rows_out),
        "rows_in": dg.MetadataValue.int(account.rows_in),
        "rows_removed": dg.MetadataValue.int(account.rows_removed),
        "rows_quarantined": dg.MetadataValue.int(account.quarantined),
        "accounting": dg.MetadataValue.text(account.summary()),
    }
