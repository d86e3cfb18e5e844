"""Imported once by the forkserver of the block pools: the models every worker would otherwise load for
itself (the language identifier is 73 MiB per process), loaded before the workers fork so they share it."""

from hare_assets.lib.text_rules import _language_identifier

_language_identifier()
