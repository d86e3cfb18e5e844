import importlib.util

import pytest

from hare_assets.lib.generation import build_backend


def test_vllm_without_vllm_says_how_to_install_it():
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here; the missing-extra message cannot be checked")
    with pytest.raises(ImportError, match=r"pip install '\.\[gpu\]'.*CUDA|CUDA.*pip install '\.\[gpu\]'"):
        build_backend("vllm", model="/models/mixtral")
