"""Tokenizers: marker tokens, the word tokenizers of tiny models, and the unknown-word check.

Every backend needs the modality marker tokens. `VocabularyCheck` says which words of a question
a model's tokenizer does not know.

A word-level tokenizer keeps tiny models tiny: each word, punctuation mark and ``<...>`` tag of
the training texts is one token, so a few hundred rows of embeddings cover the whole world. The
word-piece variant (mm-tiny) keeps that, and writes a word it does not hold as the longest known
word it starts with plus ``##`` pieces ("spheres" → ``sphere ##s``, "rigth" → ``r ##i ##g ##t
##h``) instead of one ``<unk>``.
"""

from __future__ import annotations

import logging
import re
import string
from typing import TYPE_CHECKING, Any

from mm_ros.core.prompt import marker_tokens

if TYPE_CHECKING:
    from collections.abc import Iterable

log = logging.getLogger(__name__)

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
# One token per <tag> (markers, box numbers such as <37>, [task] identifiers), word or mark.
WORD_PATTERN = r"<[^<>\s]+>|\[[a-z]+\]|[A-Za-z0-9_']+|[^\sA-Za-z0-9_']"
_PLAIN_WORD = re.compile(r"[\w']+")
_TAGS = re.compile(r"<[^<>\s]+>|\[[a-z]+\]")
# Pieces every word can be spelt with (word-piece tokenizers): letters, digits and the
# apostrophe, each as a word start and as a ``##`` continuation, and common English endings.
PIECE_CHARACTERS = string.ascii_lowercase + string.digits + "'_"
PIECE_ENDINGS = ("s", "es", "ed", "ing", "ly", "er", "est", "'s", "n't")


def word_level_tokenizer(words: Iterable[str], special: Iterable[str] = ()) -> Any:
    """Return a ``PreTrainedTokenizerFast`` whose vocabulary is ``words`` (lower-cased).

    ``<pad> <unk> <s> </s>`` come first (ids 0-3), then the modality markers and ``special``
    (never split, never lower-cased), then the words in the order given, duplicates dropped.
    """
    return _tokenizer(words, special, pieces=False)


def word_piece_tokenizer(words: Iterable[str], special: Iterable[str] = ()) -> Any:
    """Return a ``PreTrainedTokenizerFast`` over ``words`` that spells unknown words in pieces.

    Ids as `word_level_tokenizer` gives them (special tokens, then ``words``), then the pieces:
    every character of `PIECE_CHARACTERS` as a word start and as ``##`` continuation, and the
    ``##`` endings of `PIECE_ENDINGS`. A word of the vocabulary is one token; another word is
    its longest known start plus continuations (WordPiece), so only characters outside the
    pieces become ``<unk>``.
    """
    return _tokenizer(words, special, pieces=True)


def _tokenizer(words: Iterable[str], special: Iterable[str], *, pieces: bool) -> Any:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = list(dict.fromkeys([PAD, UNK, BOS, EOS, *marker_tokens(), *special]))
    extra: list[str] = []
    if pieces:
        extra = [*PIECE_CHARACTERS, *(f"##{c}" for c in PIECE_CHARACTERS)]
        extra += [f"##{e}" for e in PIECE_ENDINGS]
    vocab: dict[str, int] = {}
    for token in [*specials, *(w.lower() for w in words), *extra]:
        vocab.setdefault(token, len(vocab))
    model: models.Model = (
        models.WordPiece(vocab=vocab, unk_token=UNK, max_input_chars_per_word=64)
        if pieces
        else models.WordLevel(vocab=vocab, unk_token=UNK)
    )
    core = Tokenizer(model)
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(WORD_PATTERN), "isolated")]
    )
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        additional_special_tokens=[s for s in specials if s not in {PAD, UNK, BOS, EOS}],
    )


class VocabularyCheck:
    """Say which words of a question a model's tokenizer does not know.

    For a tokenizer with a word vocabulary (word-level, word-piece: the tiny models) a word is
    unknown when it is not one token of that vocabulary: the model never learnt it, whether it
    becomes ``<unk>`` or pieces. For any other tokenizer (byte-level BPE of a real LLM: every
    word can be spelt) a word is unknown when its tokens include ``<unk>``. Built once per
    loaded model: it reads the vocabulary once.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        kind = type(backend.model).__name__ if backend is not None else ""
        self.word_vocabulary = kind in {"WordLevel", "WordPiece"}
        self.vocab = frozenset(tokenizer.get_vocab()) if self.word_vocabulary else frozenset()
        self.unk_id = tokenizer.unk_token_id

    def __call__(self, text: str) -> tuple[str, ...]:
        """Return the unknown words of ``text``, lower-cased, in order, each once."""
        out: list[str] = []
        for word in _PLAIN_WORD.findall(_TAGS.sub(" ", text)):
            key = word.lower()
            if key in out or not self._unknown(word, key):
                continue
            out.append(key)
        return tuple(out)

    def _unknown(self, word: str, key: str) -> bool:
        if self.word_vocabulary:
            return key not in self.vocab and word not in self.vocab
        if self.unk_id is None:
            return False
        ids = self.tokenizer(word, add_special_tokens=False)["input_ids"]
        return int(self.unk_id) in ids


def ensure_marker_tokens(tokenizer: Any, model: Any) -> list[str]:
    """Add the modality marker tokens the tokenizer lacks; grow the embedding table to match.

    Returns the tokens added. New embedding rows are untrained: a warning says so, because a
    model that never saw its markers will not know where a modality block starts and ends.
    """
    vocab = tokenizer.get_vocab()
    missing = [m for m in marker_tokens() if m not in vocab]
    if not missing:
        return []
    tokenizer.add_special_tokens({"additional_special_tokens": missing})
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    log.warning(
        "tokenizer had no marker tokens %s: added them with untrained embeddings "
        "(train the projectors with mm_ros.train before trusting answers)",
        " ".join(missing),
    )
    return missing
