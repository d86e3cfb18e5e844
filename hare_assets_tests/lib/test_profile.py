import pytest

from hare_assets.lib.profile import ProfileError, load_profile, resolve_profile_path


def _write(tmp_path, body: str):
    path = tmp_path / "p.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_demo_profile_loads_and_points_into_the_package():
    profile = load_profile("demo")
    assert [s.name for s in profile.sources] == ["encyclopedia", "forum", "news", "books"]
    assert all("hare_assets/demo/corpus" in s.path for s in profile.sources)


def test_env_var_selects_profile(monkeypatch, tmp_path):
    path = _write(tmp_path, "name: mine\nsources: [{name: a, format: jsonl, path: data}]\n")
    monkeypatch.setenv("HARE_PROFILE", str(path))
    profile = load_profile()
    assert profile.name == "mine"
    assert profile.sources[0].path == str(tmp_path / "data")  # relative to the profile file


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("name: x\nsources: [{name: a, format: xml, path: d}]\n", "sources.0.format"),
        ("name: x\nsources: [{name: a, format: jsonl, path: d, colour: red}]\n", "sources.0.colour"),
        ("name: x\nsources: [{name: a, format: jsonl, path: d}]\nclean: {quality: {min_wrods: 3}}\n", "clean.quality.min_wrods"),
        ("name: x\nsources: [{name: a, format: jsonl, path: d}]\ndedup: {bands: 20, rows: 8}\n", "dedup"),
        ("name: x\nsources: [{name: 'a b', format: jsonl, path: d}]\n", "sources.0.name"),
        ("name: x\nsources: [{name: a, format: hf}]\n", "sources.0"),
        ("name: x\nsources: [{name: a, format: jsonl, path: d, quality: {min_words: many}}]\n", "sources.0"),
        ("name: x\nsources: []\n", "sources"),
    ],
)
def test_bad_profile_names_the_field(tmp_path, body, field):
    with pytest.raises(ProfileError, match=rf"p\.yaml: .*{field.replace('.', '[.]')}"):
        load_profile(_write(tmp_path, body))


def test_missing_env_var_and_missing_profile(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    with pytest.raises(ProfileError, match=r"sources.0.path: environment variable \$\{NOPE_NOT_SET\} is not set"):
        load_profile(_write(tmp_path, "name: x\nsources: [{name: a, format: jsonl, path: '${NOPE_NOT_SET}/d'}]\n"))
    with pytest.raises(ProfileError, match="known profiles: .*demo"):
        resolve_profile_path("no-such-profile")


def test_per_source_quality_overrides():
    profile = load_profile("demo")
    assert profile.quality_for("news").min_words == 20
    assert profile.quality_for("encyclopedia").min_words == profile.clean.quality.min_words


def test_evaluation_limits_per_benchmark():
    from hare_assets.lib.profile import EvaluationConfig

    per = EvaluationConfig(limit={"default": 10, "mmlu": 1})
    assert (per.limit_for("mmlu"), per.limit_for("gsm8k")) == (1, 10)
    assert EvaluationConfig(limit=5).limit_for("mmlu") == 5 and EvaluationConfig().limit_for("mmlu") is None
    assert EvaluationConfig(limit={"mmlu": 2}).limit_for("arc_challenge") is None
