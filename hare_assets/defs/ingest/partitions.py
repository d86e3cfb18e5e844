"""One static partition per profile source."""

import dagster as dg

from hare_assets.lib.profile import Profile


def source_partitions(profile: Profile) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition([s.name for s in profile.sources])
