"""One static partition per D3 task: the Restruct types and each open task set in the profile."""

import dagster as dg

from hare_assets.lib.profile import Profile


def task_partitions(profile: Profile) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition([*profile.tasks.restruct, *(t.name for t in profile.tasks.open)])
