"""Instruction encoder: a CLIP tokenizer + ``CLIPTextModel`` behind one small module.

InstructPix2Pix (like Stable Diffusion 1.x) conditions the UNet on the text encoder's
``last_hidden_state`` of the prompt padded to the encoder's context length; the "null"
instruction of classifier-free guidance is the encoding of the empty string.

Nothing here downloads: tokenizers are built from in-memory vocabularies (:func:`tiny_clip_tokenizer`)
or read from local folders / strings (:func:`tokenizer_from_files`).
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
#: Files a model may embed for its tokenizer: data only (vocabularies, merges, settings).
TOKENIZER_FILES = frozenset({"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                             "special_tokens_map.json", "added_tokens.json"})
CLIP_TOKENIZER_CLASSES = ("CLIPTokenizer", "CLIPTokenizerFast")


class TextConditioner(nn.Module):
    """Prompts -> (B, L, D) hidden states for cross-attention.

    Args:
        tokenizer: a ``transformers`` CLIP tokenizer (anything with the ``__call__`` interface).
        text_encoder: ``transformers.CLIPTextModel``.
        max_length: context length L; default: the encoder's ``max_position_embeddings``.

    Example:
        >>> from transformers import CLIPTextConfig, CLIPTextModel
        >>> tokenizer = tiny_clip_tokenizer()
        >>> encoder = CLIPTextModel(CLIPTextConfig(  # random and tiny: 16 positions of 32 channels
        ...     vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_attention_heads=2,
        ...     num_hidden_layers=1, max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1))
        >>> text = TextConditioner(tokenizer, encoder)
        >>> text.max_length, text.hidden_size, TextConditioner(tokenizer, encoder, max_length=77).max_length
        (16, 32, 16)
        >>> text.tokenize(["warm"])  # BOS, w a r m</w>, EOS, then EOS padding to L
        tensor([[ 0, 46,  2, 36, 27,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1]])
        >>> embedding = text(["make it warmer", ""])  # "": the null instruction of classifier-free guidance
        >>> embedding.shape  # (K, L, D)
        torch.Size([2, 16, 32])
        >>> torch.allclose(embedding[1], text([""])[0], atol=1e-5)  # each prompt is encoded on its own
        True
    """

    def __init__(self, tokenizer, text_encoder, max_length: int | None = None):
        super().__init__()
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        limit = int(text_encoder.config.max_position_embeddings)
        self.max_length = min(limit, int(max_length or limit))

    @property
    def hidden_size(self) -> int:
        return int(self.text_encoder.config.hidden_size)

    def tokenize(self, prompts: Sequence[str]) -> torch.Tensor:
        """K prompts -> (K, L) int64 token ids, padded / truncated to ``max_length``."""
        ids = self.tokenizer(
            list(prompts), padding="max_length", max_length=self.max_length, truncation=True, return_tensors="pt"
        ).input_ids
        return ids.to(next(self.text_encoder.parameters()).device)

    def forward(self, prompts: Sequence[str]) -> torch.Tensor:
        """K prompts -> (K, L, D) ``last_hidden_state``."""
        return self.text_encoder(self.tokenize(prompts)).last_hidden_state


def tiny_clip_tokenizer(alphabet: str = string.ascii_lowercase + string.digits + string.punctuation,
                        merges: Sequence[str] = ()):
    """A small CLIP BPE tokenizer over ``alphabet``; offline, for tests.

    Ids: 0 = BOS, 1 = EOS (also pad/unk), then every character twice (inside a word and word-final
    ``</w>``), then one token per merge (``"a b"`` adds ``"ab"``). Vocabulary size:
    ``2 + 2 len(alphabet) + len(merges)``. Built from ``vocab.json`` / ``merges.txt`` files, the
    form every transformers version reads (and the layout of a Stable Diffusion ``tokenizer/``).

    Example:
        >>> len(tiny_clip_tokenizer())  # 2 + 2 x (26 letters + 10 digits + 32 punctuation marks)
        138
        >>> tokenizer = tiny_clip_tokenizer("warm", merges=("w a",))  # w=2 w</w>=3 a=4 a</w>=5 r=6 ... m</w>=9 wa=10
        >>> len(tokenizer), tokenizer("warm").input_ids
        (11, [0, 10, 6, 9, 1])
        >>> tokenizer.convert_ids_to_tokens([0, 10, 6, 9, 1])
        ['<|startoftext|>', 'wa', 'r', 'm</w>', '<|endoftext|>']
    """
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as folder:
        clip_tokenizer_files(folder, alphabet, merges)
        return CLIPTokenizer.from_pretrained(folder, local_files_only=True)


def clip_tokenizer_files(folder: str | Path, alphabet: str, merges: Sequence[str] = ()) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` of :func:`tiny_clip_tokenizer` into ``folder``.

    Example:
        >>> with tempfile.TemporaryDirectory() as root:
        ...     folder = clip_tokenizer_files(Path(root) / "tokenizer", "abc", merges=("a b",))  # created if needed
        ...     print(sorted(p.name for p in folder.iterdir()))
        ...     print(json.loads((folder / "vocab.json").read_text()))
        ...     print((folder / "merges.txt").read_text().splitlines())
        ['merges.txt', 'vocab.json']
        {'<|startoftext|>': 0, '<|endoftext|>': 1, 'a': 2, 'a</w>': 3, 'b': 4, 'b</w>': 5, 'c': 6, 'c</w>': 7, 'ab': 8}
        ['#version: 0.2', 'a b']
    """
    vocab = {BOS: 0, EOS: 1}
    for ch in dict.fromkeys(alphabet):
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    for merge in merges:
        vocab.setdefault(merge.replace(" ", ""), len(vocab))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")
    return folder


def tokenizer_to_files(tokenizer) -> dict[str, str]:
    """The files ``save_pretrained`` writes, as {file name: text}, to embed in a model file.

    Example:
        >>> tokenizer = tiny_clip_tokenizer()
        >>> files = tokenizer_to_files(tokenizer)  # which files depends on the transformers version
        >>> set(files) <= TOKENIZER_FILES, all(isinstance(text, str) for text in files.values())
        (True, True)
        >>> tokenizer_from_files(files)("make it warmer").input_ids == tokenizer("make it warmer").input_ids
        True
    """
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        return {p.name: p.read_text(encoding="utf-8") for p in sorted(Path(folder).iterdir()) if p.is_file()}


def tokenizer_from_files(files: dict[str, str]):
    """Inverse of :func:`tokenizer_to_files`: a CLIP tokenizer, local only, never code from the file.

    The files may hold data only: names outside :data:`TOKENIZER_FILES` (such as a ``.py``
    module), an ``auto_map`` entry or a ``tokenizer_class`` other than CLIP's are refused,
    since each is a way for a model file to name Python code to import.

    Example:
        >>> tokenizer = tiny_clip_tokenizer("abc")
        >>> again = tokenizer_from_files(tokenizer_to_files(tokenizer))  # the round trip of a model file
        >>> type(again).__name__, len(again), again("cab").input_ids == tokenizer("cab").input_ids
        ('CLIPTokenizer', 8, True)
        >>> tokenizer_from_files({**tokenizer_to_files(tokenizer), "tokenization_evil.py": "import os"})
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: the embedded tokenizer holds ['tokenization_evil.py']; only [...] are read (code is never ...)
    """
    from transformers import CLIPTokenizer

    check_tokenizer_files(files)
    with tempfile.TemporaryDirectory() as folder:
        for name, text in files.items():
            (Path(folder) / name).write_text(text, encoding="utf-8")
        return CLIPTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)


def check_tokenizer_files(files) -> None:
    """ValueError unless ``files`` is {allowed file name: text} naming no code (see above).

    Example:
        >>> check_tokenizer_files({"vocab.json": "{}", "merges.txt": "#version: 0.2"})  # data only: no error
        >>> check_tokenizer_files({"tokenizer_config.json": '{"auto_map": {"AutoTokenizer": "evil.Tokenizer"}}'})
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: the embedded tokenizer names Python classes to import (auto_map); model files never run code, ...
        >>> check_tokenizer_files({"tokenizer_config.json": '{"tokenizer_class": "LlamaTokenizer"}'})
        Traceback (most recent call last):
        ValueError: the embedded tokenizer is a 'LlamaTokenizer'; only CLIP tokenizers are read
        >>> check_tokenizer_files({"vocab.json": b"{}"})
        Traceback (most recent call last):
        ValueError: the embedded tokenizer must be a JSON object of {file name: text}
    """
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise ValueError("the embedded tokenizer must be a JSON object of {file name: text}")
    unknown = sorted(set(files) - TOKENIZER_FILES)
    if unknown:
        raise ValueError(f"the embedded tokenizer holds {unknown}; only {sorted(TOKENIZER_FILES)} are read "
                         "(code is never loaded from a model file)")
    try:
        config = json.loads(files.get("tokenizer_config.json", "{}"))
    except (ValueError, RecursionError):
        raise ValueError("the embedded tokenizer_config.json is not valid JSON") from None
    if not isinstance(config, dict):
        raise ValueError("the embedded tokenizer_config.json must be a JSON object")
    if "auto_map" in config:
        raise ValueError("the embedded tokenizer names Python classes to import (auto_map); model files "
                         "never run code, so this file is refused")
    if config.get("tokenizer_class", "CLIPTokenizer") not in CLIP_TOKENIZER_CLASSES:
        raise ValueError(f"the embedded tokenizer is a {config['tokenizer_class']!r}; only CLIP tokenizers are read")
