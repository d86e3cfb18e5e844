"""The one Dagster entry point: the graph for the profile named by `HARE_PROFILE` (default `demo`)."""

from hare_assets.defs.graph import build_definitions
from hare_assets.lib.profile import load_profile

defs = build_definitions(load_profile())
