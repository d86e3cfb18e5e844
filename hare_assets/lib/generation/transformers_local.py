"""A local Hugging Face causal LM (a directory, a hub id when a hub is reachable, a GGUF file or a packaged
model's short name: see `models`), on CPU or GPU, in bf16 where that is native and fp32 elsewhere.

Requests are grouped by sampling settings and generated in left-padded batches (a decoder
continues from the right edge of each row, so padding goes on the left). Prompts are built by
`prompting.prompt_ids` (the chat template when the tokenizer has one). Token counts come from
the tokenizer: prompt tokens as fed to the model, completion tokens up to (not including) the
first end-of-sequence token. A seeded request samples under a forked RNG, so it is repeatable
and leaves the process's global torch RNG untouched. A request with a `response_schema` is decoded
under xgrammar's grammar mask, so its reply is JSON that the schema accepts (or ends at max_tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hare_assets.lib.generation.models import local_weights, torch_dtype
from hare_assets.lib.generation.prompting import prompt_ids
from hare_assets.lib.generation.types import Backend, Completion, GenerationRequest, PermanentError, TransientError
from hare_assets.lib.paths import models_dir as default_models_dir


class TransformersBackend(Backend):
    kind = "transformers"
    concurrent = False

    def __init__(
        self,
        model: str,
        device: str | None = None,
        dtype: str = "auto",
        model_id: str | None = None,
        trust_remote_code: bool = False,
        max_input_tokens: int | None = None,
        models_dir: str | None = None,
        log: Callable[[str], None] = print,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = model_id or str(model)
        self.path = local_weights(str(model), Path(models_dir) if models_dir else default_models_dir(), log)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.max_input_tokens = max_input_tokens
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=trust_remote_code)
        self.dtype = torch_dtype(dtype, self.device)
        self.lm = AutoModelForCausalLM.from_pretrained(self.path, dtype=self.dtype, trust_remote_code=trust_remote_code)
        self.lm.to(self.device).eval()
        tok = self.tokenizer
        self.eos_id = tok.eos_token_id if tok.eos_token_id is not None else self.lm.config.eos_token_id
        pad = tok.pad_token_id
        self._compiler: Any = None  # xgrammar's, made for the first request with a response_schema
        self._grammars: dict[str, Any] = {}
        self.pad_id = pad if pad is not None else (self.eos_id if self.eos_id is not None else (tok.unk_token_id or 0))

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        return prompt_ids(self.tokenizer, request, self.max_input_tokens)

    # --- generation ---------------------------------------------------------------------------

    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        out: list[Completion | None] = [None] * len(requests)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, r in enumerate(requests):  # replies to different schemas share a batch: each row gets its own grammar
            settings = (int(r.max_tokens), float(r.temperature), float(r.top_p), float(r.repetition_penalty), r.seed,
                        r.response_schema is not None)
            groups.setdefault(settings, []).append(i)
        for (*settings, constrained), idx in groups.items():
            schemas = [requests[i].response_schema for i in idx] if constrained else None
            completions = self._generate([self.prompt_ids(requests[i]) for i in idx], *settings, schemas)
            for i, c in zip(idx, completions):
                out[i] = c
        return out  # type: ignore[return-value]

    def _json_constraint(self, schemas: list[str]) -> Any:
        """xgrammar's logits processor holding one reply per schema (a row of the batch each); the tokenizer's grammar
        tables and each schema are compiled once per backend."""
        try:
            import xgrammar as xgr
        except ImportError:
            raise PermanentError("a response_schema on the transformers backend needs xgrammar: `make setup`, or pip install "
                                 "xgrammar (or set tasks.structured_output: false)") from None
        if self._compiler is None:
            info = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=self.lm.config.vocab_size)
            self._compiler = xgr.GrammarCompiler(info)
        for schema in set(schemas) - set(self._grammars):
            try:
                # compact JSON: with free whitespace between tokens a small model can loop on newlines until max_tokens
                self._grammars[schema] = self._compiler.compile_json_schema(schema, any_whitespace=False)
            except Exception as exc:
                raise PermanentError(f"response_schema does not compile: {exc}") from None
        return xgr.contrib.hf.LogitsProcessor([self._grammars[s] for s in schemas])

    def _generate(self, prompts: list[list[int]], max_tokens: int, temperature: float, top_p: float, penalty: float,
                  seed: int | None, schemas: list[str] | None) -> list[Completion]:
        import torch

        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[row, width - len(ids) :] = 1
        sampling: dict[str, Any] = {"do_sample": temperature > 0}
        if temperature > 0:
            sampling.update(temperature=temperature, top_p=top_p, top_k=0)
        if penalty != 1.0:
            sampling["repetition_penalty"] = penalty
        if schemas is not None:
            from transformers import LogitsProcessorList

            sampling["logits_processor"] = LogitsProcessorList([self._json_constraint(schemas)])
        devices = [torch.device(self.device)] if str(self.device).startswith("cuda") else []
        try:
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                if seed is not None:
                    torch.manual_seed(seed)
                generated = self.lm.generate(
                    input_ids=input_ids.to(self.device),
                    attention_mask=attention.to(self.device),
                    max_new_tokens=max_tokens,
                    pad_token_id=self.pad_id,
                    eos_token_id=self.eos_id,
                    **sampling,
                )
        except torch.OutOfMemoryError as exc:  # the Generator retries, then falls back to single requests
            raise TransientError(f"out of memory generating a batch of {len(prompts)}: {exc}") from None
        completions = []
        for row, ids in enumerate(prompts):
            new = generated[row, width:].tolist()
            if self.eos_id is not None and self.eos_id in new:
                new = new[: new.index(self.eos_id)]
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            completions.append(Completion(text, len(ids), len(new)))
        return completions

    def close(self) -> None:
        self.lm = None  # type: ignore[assignment]
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"TransformersBackend(model={self.model!r}, device={self.device!r}, dtype={self.dtype})"
