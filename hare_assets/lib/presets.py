"""Model presets: HARE-1.1B's Mistral architecture, and tiny shapes that train on a laptop CPU.

HARE kept Mistral's architecture and tokenizer and shrank the model to 1.1B parameters
(22 layers, hidden 2048, 32 query / 8 key-value heads, FFN 5632, 2048-token context).
The tiny presets keep every architectural choice (GQA, RoPE, RMSNorm, SwiGLU, untied
embeddings, the 32,000 vocab) so the demo and the tests exercise the same code paths.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import MistralConfig

VOCAB_SIZE = 32_000
BOS_ID, EOS_ID = 1, 2


@dataclass(frozen=True)
class Preset:
    name: str
    num_hidden_layers: int
    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    seq_len: int
    vocab_size: int = VOCAB_SIZE
    rope_theta: float = 10_000.0
    rms_norm_eps: float = 1e-5
    tie_word_embeddings: bool = False

    def param_count(self) -> int:
        """Exact parameter count of `MistralForCausalLM` with this shape (no biases)."""
        head_dim = self.hidden_size // self.num_attention_heads
        kv = self.num_key_value_heads * head_dim
        attn = 2 * self.hidden_size * self.hidden_size + 2 * self.hidden_size * kv
        mlp = 3 * self.hidden_size * self.intermediate_size
        layer = attn + mlp + 2 * self.hidden_size  # two RMSNorm weights
        embed = self.vocab_size * self.hidden_size
        head = 0 if self.tie_word_embeddings else embed
        return self.num_hidden_layers * layer + embed + head + self.hidden_size  # + final norm


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("hare-1.1b", 22, 2048, 32, 8, 5632, 2048),
        Preset("tiny", 4, 256, 4, 2, 688, 256),
        Preset("mini", 4, 128, 4, 2, 344, 128),  # the demo: two stages in a few minutes on 2 CPU cores
        Preset("micro", 2, 64, 4, 2, 172, 64),
    )
}


def get_preset(preset: str | Preset) -> Preset:
    if isinstance(preset, Preset):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown model preset {preset!r}; known: {', '.join(PRESETS)}") from None


def make_config(preset: str | Preset, **overrides: Any) -> MistralConfig:
    """A `MistralConfig` for a preset; `overrides` are preset fields or any `MistralConfig` field.

    No sliding window (HARE trains with full 2048-token attention) and SDPA attention, the
    kernel that runs on CPU and GPU alike and that vLLM's loader does not care about.
    """
    base = get_preset(preset)
    fields = {k: overrides.pop(k) for k in list(overrides) if k in Preset.__dataclass_fields__}
    p = replace(base, **fields)
    shape = asdict(p)
    shape.pop("name")
    seq_len = shape.pop("seq_len")
    attn = overrides.pop("attn_implementation", "sdpa")
    from transformers import MistralConfig  # here: importing transformers costs seconds that `hare` commands need not pay

    config = MistralConfig(
        **shape,
        head_dim=p.hidden_size // p.num_attention_heads,
        max_position_embeddings=overrides.pop("max_position_embeddings", seq_len),
        sliding_window=overrides.pop("sliding_window", None),
        hidden_act=overrides.pop("hidden_act", "silu"),
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        attention_dropout=overrides.pop("attention_dropout", 0.0),
        initializer_range=overrides.pop("initializer_range", 0.02),
        **overrides,
    )
    config._attn_implementation = attn
    return config
