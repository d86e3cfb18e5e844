"""One static partition per benchmark the profile decontaminates against and evaluates on."""

import dagster as dg

from hare_assets.lib.benchmarks import load_registry
from hare_assets.lib.profile import Profile, ProfileError


def benchmark_partitions(profile: Profile) -> dg.StaticPartitionsDefinition:
    known = load_registry()
    unknown = [b for b in profile.integrity.benchmarks if b not in known]
    if unknown:
        raise ProfileError(f"profile {profile.name!r}: integrity.benchmarks {unknown} are not in resources/benchmarks.yaml "
                           f"(known: {sorted(known)})")
    return dg.StaticPartitionsDefinition(list(profile.integrity.benchmarks))
