"""vLLM offline batches: `vllm.LLM(model=...).generate(prompts, SamplingParams(...))`.

vLLM needs CUDA and is an optional extra (`pip install '.[gpu]'`), imported only when this
backend is built. Each request gets its own SamplingParams (so per-request seeds hold) and the
whole batch goes to vLLM at once, which schedules it with continuous batching. Prompts go in as
token ids built by `prompting.prompt_ids`, the same as the transformers backend, so both see the
same tokens for the same request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hare_assets.lib.generation.models import local_weights
from hare_assets.lib.generation.prompting import prompt_ids
from hare_assets.lib.generation.types import Backend, Completion, GenerationRequest
from hare_assets.lib.paths import models_dir as default_models_dir

INSTALL_HINT = (
    "the 'vllm' generation backend needs vLLM, an optional GPU extra: on a CUDA machine run "
    "`pip install '.[gpu]'` in the checkout (or `pip install 'hare-assets[gpu]'`); on a machine "
    "without a GPU use the 'transformers', 'openai' (a vLLM server elsewhere) or 'extractive' backend"
)


class VLLMBackend(Backend):
    kind = "vllm"
    concurrent = False

    def __init__(self, model: str, model_id: str | None = None, max_input_tokens: int | None = None,
                 models_dir: str | None = None, **engine_kwargs: Any):
        try:
            import vllm
        except ImportError as exc:
            raise ImportError(f"{INSTALL_HINT} ({exc})") from None
        self._vllm = vllm
        self.model = model_id or str(model)
        self.path = local_weights(str(model), Path(models_dir) if models_dir else default_models_dir())  # a GGUF as HF
        self.max_input_tokens = max_input_tokens
        self.llm = vllm.LLM(model=self.path, **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        prompts = [{"prompt_token_ids": prompt_ids(self.tokenizer, r, self.max_input_tokens)} for r in requests]
        params = [
            self._vllm.SamplingParams(max_tokens=int(r.max_tokens), temperature=float(r.temperature), top_p=float(r.top_p),
                                      repetition_penalty=float(r.repetition_penalty), seed=r.seed, **self._structured(r))
            for r in requests
        ]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [
            Completion(out.outputs[0].text, len(prompt["prompt_token_ids"]), len(out.outputs[0].token_ids))
            for prompt, out in zip(prompts, outputs)
        ]

    def _structured(self, request: GenerationRequest) -> dict[str, Any]:
        """vLLM's structured outputs for a request with a schema: `structured_outputs` since 0.12, `guided_decoding`
        before (the field 0.12 removed)."""
        if request.response_schema is None:
            return {}
        schema = json.loads(request.response_schema)
        sampling_params = self._vllm.sampling_params
        if hasattr(sampling_params, "StructuredOutputsParams"):
            return {"structured_outputs": sampling_params.StructuredOutputsParams(json=schema)}
        return {"guided_decoding": sampling_params.GuidedDecodingParams(json=schema)}

    def __repr__(self) -> str:
        return f"VLLMBackend(model={self.model!r})"
