"""The word-level tokenizer of the bundled prior's caption encoder (and of the avatar model's).

Kept apart from dream3d.priors.model so that code which only tokenizes (the avatar model)
does not import diffusers' UNet classes, about 1.6 s of every `dream3d avatar` start.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import Tensor

from dream3d.priors.captions import vocabulary

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[BOS]")


class WordTokenizer:
    """Lower-case words ([a-z0-9]+) -> ids; [BOS] first, [PAD] after, unknown words -> [UNK]."""

    def __init__(self, vocab: dict[str, int], max_length: int) -> None:
        self.vocab = dict(vocab)
        self.max_length = int(max_length)
        self.pad_id, self.unk_id, self.bos_id = (self.vocab[t] for t in SPECIAL_TOKENS)

    @classmethod
    def from_words(cls, words: list[str], max_length: int) -> "WordTokenizer":
        vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
        for w in words:
            vocab.setdefault(w, len(vocab))
        return cls(vocab, max_length)

    @classmethod
    def default(cls, max_length: int = 16) -> "WordTokenizer":
        """The tokenizer over the caption grammar's vocabulary."""
        return cls.from_words(vocabulary(), max_length)

    def words(self, text: str) -> list[str]:
        return re.findall(r"[a-z0-9]+", text.lower())

    def __call__(self, prompts: list[str]) -> Tensor:
        """prompts: B strings -> [B, max_length] int64 ids (long prompts are cut)."""
        ids = torch.full((len(prompts), self.max_length), self.pad_id, dtype=torch.long)
        for b, text in enumerate(prompts):
            toks = [self.bos_id] + [self.vocab.get(w, self.unk_id) for w in self.words(text)]
            toks = toks[: self.max_length]
            ids[b, : len(toks)] = torch.tensor(toks)
        return ids

    def unknown_words(self, text: str) -> list[str]:
        """Words of `text` the tokenizer maps to [UNK]."""
        return [w for w in self.words(text) if w not in self.vocab]

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "vocab.json").write_text(json.dumps(self.vocab, indent=1))
        (folder / "tokenizer_config.json").write_text(
            json.dumps({"tokenizer_class": "WordTokenizer", "max_length": self.max_length,
                        "special_tokens": list(SPECIAL_TOKENS), "lowercase": True, "word_pattern": "[a-z0-9]+"}, indent=1)
        )

    @classmethod
    def load(cls, folder: Path) -> "WordTokenizer":
        vocab = json.loads((folder / "vocab.json").read_text())
        cfg = json.loads((folder / "tokenizer_config.json").read_text())
        return cls(vocab, cfg["max_length"])


__all__ = ["SPECIAL_TOKENS", "WordTokenizer"]
