import pytest

from hare_assets.lib.generation import build_backend


def test_unknown_backend_lists_the_kinds():
    with pytest.raises(ValueError, match="extractive.*openai.*transformers.*vllm"):
        build_backend("llamacpp", model="x")


def test_one_call_serves_every_kind_from_a_profile():
    profile = {"model": None, "base_url": None, "api_key": None, "timeout": 120.0, "device": "cpu"}
    assert build_backend("extractive", **profile).model == "hare-offline-extractive-v1"
    openai = build_backend("openai", **{**profile, "model": "m", "base_url": "http://127.0.0.1:8000/v1/", "api_key": "secret"})
    assert openai.url == "http://127.0.0.1:8000/v1/chat/completions" and openai.timeout == 120.0
    assert "secret" not in repr(openai)
    with pytest.raises(TypeError, match="temprature"):
        build_backend("extractive", temprature=0.7)  # a typo is not silently ignored
    with pytest.raises(ValueError, match="cannot run model"):
        build_backend("extractive", model="mixtral")
