"""Turning a request into prompt token ids for local models (transformers, vLLM offline).

With a chat template the rendered text already carries the special tokens it wants, so it is
tokenized without adding more (no double BOS). Without one (a base model such as a freshly
trained HARE checkpoint) system and user text are joined and BOS is put in front when the
tokenizer does not add it itself (the Mistral SentencePiece tokenizer does not).
"""

from __future__ import annotations

from typing import Any

from hare_assets.lib.generation.types import GenerationRequest


def _messages(request: GenerationRequest, fold_system: bool) -> list[dict[str, str]]:
    if request.system and fold_system:
        return [{"role": "user", "content": f"{request.system}\n\n{request.prompt}"}]
    head = [{"role": "system", "content": request.system}] if request.system else []
    return [*head, {"role": "user", "content": request.prompt}]


def prompt_ids(tokenizer: Any, request: GenerationRequest, max_input_tokens: int | None = None) -> list[int]:
    if getattr(tokenizer, "chat_template", None):
        try:
            text = tokenizer.apply_chat_template(_messages(request, False), tokenize=False, add_generation_prompt=True)
        except Exception:  # templates that refuse a system role (Mistral's): fold it into the user turn
            text = tokenizer.apply_chat_template(_messages(request, True), tokenize=False, add_generation_prompt=True)
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    else:
        text = f"{request.system}\n\n{request.prompt}" if request.system else request.prompt
        ids = list(tokenizer(text)["input_ids"])
        bos = getattr(tokenizer, "bos_token_id", None)
        if bos is not None and (not ids or ids[0] != bos):
            ids.insert(0, bos)
    if max_input_tokens and len(ids) > max_input_tokens:
        ids = ids[-max_input_tokens:]  # keep the end: the instruction and the generation prompt
    return ids
