"""What a rerun of `hare demo` still has to do, on real materializations of the curate_block job."""

import dagster as dg

from hare_assets.defs.graph import CURATE_BLOCK_JOB, SCAN_JOB, build_definitions
from hare_assets.defs.resume import ResumeCheck, plan_fingerprint, plan_tags
from hare_assets.lib.profile import load_profile

RAW, CLEAN = dg.AssetKey("raw_documents"), dg.AssetKey("clean_documents")


def test_done_means_same_plan_same_home_and_newer_than_its_inputs(tmp_path):
    home = str(tmp_path / "home")
    defs = build_definitions(load_profile("demo"), home=home)
    job = defs.resolve_job_def(CURATE_BLOCK_JOB)
    instance = dg.DagsterInstance.ephemeral()
    assert defs.resolve_job_def(SCAN_JOB).execute_in_process(instance=instance).success  # registers the blocks
    check = ResumeCheck(instance, defs, "plan-a", home)

    def run(*keys, plan="plan-a", where=home):
        assert job.execute_in_process(partition_key="news-00000", instance=instance, tags=plan_tags(plan, where),
                                      asset_selection=list(keys)).success

    assert check.pending([RAW, CLEAN], "news-00000") == [RAW, CLEAN]
    run(RAW)  # a run that stopped after its first asset
    assert check.pending([RAW, CLEAN], "news-00000") == [CLEAN]
    run(CLEAN)
    assert check.pending([RAW, CLEAN], "news-00000") == []
    assert check.pending([RAW, CLEAN], "books-00000") == [RAW, CLEAN]  # another partition
    assert ResumeCheck(instance, defs, "plan-b", home).pending([RAW, CLEAN], "news-00000") == [RAW, CLEAN]
    assert ResumeCheck(instance, defs, "plan-a", str(tmp_path / "elsewhere")).pending([RAW, CLEAN], "news-00000") == [RAW, CLEAN]
    run(RAW)  # its input changed after it: clean_documents is to be redone
    assert check.pending([RAW, CLEAN], "news-00000") == [CLEAN]
    run(RAW, plan="plan-b")  # the newest materialization counts, whatever plan made it
    assert check.pending([RAW, CLEAN], "news-00000") == [RAW, CLEAN]


def test_the_plan_follows_the_profile():
    profile = load_profile("demo")
    changed = profile.model_copy(update={"topics": profile.topics.model_copy(update={"k": 7})})
    assert plan_fingerprint(profile) == plan_fingerprint(load_profile("demo"))
    assert plan_fingerprint(changed) != plan_fingerprint(profile)
