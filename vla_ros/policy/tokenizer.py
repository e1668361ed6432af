"""Instruction text -> fixed-length token ids + mask, with a HuggingFace `tokenizers` JSON file.

Checkpoints carry their tokenizer as ``tokenizer.json`` (the format Gemma/Llama/PaliGemma ship),
loaded offline with the `tokenizers` library. Every instruction becomes exactly ``max_tokens``
ids: an optional BOS, the text's tokens (truncated), then padding; the mask marks real tokens.
A fixed length keeps prefix shapes constant (batching, caching, compiled kernels).

`train_tokenizer` builds a small BPE tokenizer from a corpus for tiny test/demo checkpoints.
`build_prompt` is the text a checkpoint's prompt form (config ``io.prompt``) hands the tokenizer.
`sentencepiece_tokenizer` reads a SentencePiece BPE ``.model`` (PaliGemma's format) without the
sentencepiece package, into the same `tokenizers` pipeline transformers converts it to, so a
``tokenizer.model`` and its ``tokenizer.json`` give the same ids.
"""

from __future__ import annotations

import os
import struct
from typing import Iterable, Iterator, Sequence

import numpy as np
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")


def build_prompt(form: str, text: str, normalized_state: np.ndarray | None = None, bins: int = 256) -> str:
    """The tokenizer's input for an instruction, per prompt form.

    plain: the instruction. pi0: the instruction plus a newline unless it ends with one (LeRobot's
    pi0 processor). pi05: ``"Task: <text>, State: <bins>;\nAction: "`` (openpi / LeRobot) where the
    text is stripped with '_' and newlines made spaces, and each dim of the normalised (unpadded)
    state becomes its bin over [-1, 1] (``np.digitize(s, linspace(-1, 1, bins + 1)[:-1]) - 1``, so a
    value below -1 is "-1" and one above 1 is bins - 1).
    """
    if form == "plain":
        return text
    if form == "pi0":
        return text if text.endswith("\n") else text + "\n"
    if form == "openpi_pi0":  # openpi's PaligemmaTokenizer: cleaned text, then "\n" (its own piece)
        return text.strip().replace("_", " ").replace("\n", " ") + "\n"
    if form == "pi05":
        if normalized_state is None:
            raise ValueError("prompt pi05: the normalised state is required")
        cleaned = text.strip().replace("_", " ").replace("\n", " ")
        binned = np.digitize(normalized_state, bins=np.linspace(-1, 1, bins + 1)[:-1]) - 1
        return f"Task: {cleaned}, State: {' '.join(map(str, binned))};\nAction: "
    raise ValueError(f"prompt: expected plain, pi0, pi05 or openpi_pi0, got {form!r}")


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
        """A `tokenizers` JSON file, or a SentencePiece ``.model`` (converted in memory)."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: tokenizer file not found")
        if path.endswith(".model"):
            return cls(sentencepiece_tokenizer(path), max_tokens, pad_token, bos_token, source=path)
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


def _varint(b: bytes, i: int) -> tuple[int, int]:
    r = shift = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return r, i


def _fields(b: bytes) -> Iterator[tuple[int, object]]:
    """(field number, value) of a protobuf message: ints for varints, bytes otherwise."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(b, i)
        elif wire == 1:
            v, i = b[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif wire == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield num, v


# sentencepiece_model.proto: piece types, TrainerSpec / NormalizerSpec field numbers
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _BYTE = 1, 2, 3, 4, 6
_TRAINER_MODEL_TYPE, _TRAINER_BYTE_FALLBACK = 3, 35
_NORM_NAME, _NORM_ADD_DUMMY_PREFIX = 1, 3
_BPE = 2


def sentencepiece_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """A SentencePiece BPE model (Gemma/PaliGemma settings) -> the equivalent `tokenizers.Tokenizer`.

    Mirrors transformers' conversion: vocab in piece order, merges = every split of a piece into
    two pieces, ordered by the merged piece's id; spaces become U+2581, byte fallback, control and
    unknown pieces special added tokens, user-defined ones (e.g. "\\n") plain added tokens.
    Other settings (unigram models, a dummy prefix, non-identity normalisers) are refused by name.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
        pieces: list[tuple[str, int]] = []
        trainer: dict[int, object] = {}
        norm: dict[int, object] = {}
        for num, v in _fields(data):
            if num == 1:
                piece, kind = "", _NORMAL
                for g, u in _fields(v):  # type: ignore[arg-type]
                    if g == 1:
                        piece = u.decode("utf-8")  # type: ignore[union-attr]
                    elif g == 3:
                        kind = int(u)  # type: ignore[arg-type]
                pieces.append((piece, kind))
            elif num == 2:
                trainer = dict(_fields(v))  # type: ignore[arg-type]
            elif num == 3:
                norm = dict(_fields(v))  # type: ignore[arg-type]
    except (OSError, ValueError, IndexError, UnicodeDecodeError, struct.error) as exc:
        raise ValueError(f"{path}: not a readable SentencePiece model ({exc})") from None
    if not pieces:
        raise ValueError(f"{path}: not a SentencePiece model (no pieces)")
    if trainer.get(_TRAINER_MODEL_TYPE, 1) != _BPE:
        raise ValueError(f"{path}: only SentencePiece BPE models (PaliGemma's) are supported; convert it to "
                         "tokenizer.json")
    name = norm.get(_NORM_NAME, b"nmt_nfkc")
    if name != b"identity" or norm.get(_NORM_ADD_DUMMY_PREFIX, 1):
        raise ValueError(f"{path}: normaliser {name!r} / dummy prefix not supported (PaliGemma: identity, none); "
                         "convert it to tokenizer.json")
    vocab = {p: i for i, (p, _) in enumerate(pieces)}
    merges = []
    for merged, rank in vocab.items():
        local = [(merged[:k], merged[k:]) for k in range(1, len(merged)) if merged[:k] in vocab and merged[k:] in vocab]
        local.sort(key=lambda lr: (vocab[lr[0]], vocab[lr[1]]))
        merges.extend((rank, lr) for lr in local)
    merges.sort(key=lambda m: (m[0], len(m[1][0]), len(m[1][1])))
    unk = next((p for p, k in pieces if k == _UNKNOWN), None)
    tok = Tokenizer(models.BPE(vocab, [lr for _, lr in merges], unk_token=unk, fuse_unk=True,
                               byte_fallback=bool(trainer.get(_TRAINER_BYTE_FALLBACK, 0))))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    special = [AddedToken(p, normalized=False, special=True) for p, k in pieces if k in (_UNKNOWN, _CONTROL)]
    user = [AddedToken(p, normalized=False, special=False) for p, k in pieces if k == _USER_DEFINED]
    tok.add_special_tokens(special)
    tok.add_tokens(user)
    return tok


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
