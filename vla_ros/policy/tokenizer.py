"""Instruction text -> fixed-length token ids + mask, with a HuggingFace `tokenizers` JSON file.

Checkpoints carry their tokenizer as ``tokenizer.json`` (the format Gemma/Llama/PaliGemma ship),
loaded offline with the `tokenizers` library. Every instruction becomes exactly ``max_tokens``
ids: an optional BOS, the text's tokens (truncated), then padding; the mask marks real tokens.
A fixed length keeps prefix shapes constant (batching, caching, compiled kernels).

`train_tokenizer` builds a small BPE tokenizer from a corpus for tiny test/demo checkpoints.
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")


class TextTokenizer:
    """A `tokenizers.Tokenizer` with the checkpoint's length, BOS and padding rules."""

    def __init__(self, tokenizer: Tokenizer, max_tokens: int, pad_token: str = "<pad>", bos_token: str | None = "<bos>",
                 source: str = "tokenizer"):
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.max_tokens = int(max_tokens)
        self.pad_id = self._token_id(pad_token, source)
        self.bos_id = None if bos_token is None else self._token_id(bos_token, source)

    def _token_id(self, token: str, source: str) -> int:
        idx = self.tokenizer.token_to_id(token)
        if idx is None:
            raise ValueError(f"{source}: special token {token!r} is not in the vocabulary")
        return int(idx)

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size(with_added_tokens=True))

    @classmethod
    def load(cls, path: str | os.PathLike, max_tokens: int, pad_token: str = "<pad>",
             bos_token: str | None = "<bos>") -> "TextTokenizer":
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: tokenizer file not found")
        try:
            tok = Tokenizer.from_file(path)
        except Exception as exc:  # tokenizers raises its own exception type
            raise ValueError(f"{path}: not a valid tokenizers JSON file: {exc}") from None
        return cls(tok, max_tokens, pad_token, bos_token, source=path)

    def save(self, path: str | os.PathLike) -> None:
        self.tokenizer.save(os.fspath(path))

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """-> ids int64 [B, max_tokens], mask bool [B, max_tokens]."""
        ids = np.full((len(texts), self.max_tokens), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(texts), self.max_tokens), dtype=bool)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"instruction: expected a string, got {type(text).__name__}")
            toks = self.tokenizer.encode(text, add_special_tokens=False).ids
            if self.bos_id is not None:
                toks = [self.bos_id] + toks
            toks = toks[: self.max_tokens]
            ids[i, : len(toks)] = toks
            mask[i, : len(toks)] = True
        return ids, mask


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 256) -> Tokenizer:
    """A small lower-casing BPE tokenizer with SPECIAL_TOKENS at ids 0..3 (deterministic for a corpus)."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    return tok
