"""Tokenizers: the marker tokens every backend needs, and the word-level tokenizer of mm-tiny.

A word-level tokenizer keeps tiny models tiny: each word, punctuation mark and ``<...>`` tag of
the training answers is one token, so a few hundred rows of embeddings cover the whole world.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mm_ros.core.prompt import marker_tokens

if TYPE_CHECKING:
    from collections.abc import Iterable

log = logging.getLogger(__name__)

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
# One token per <tag> (markers, box numbers such as <37>, [task] identifiers), word or mark.
WORD_PATTERN = r"<[^<>\s]+>|\[[a-z]+\]|[A-Za-z0-9_']+|[^\sA-Za-z0-9_']"


def word_level_tokenizer(words: Iterable[str], special: Iterable[str] = ()) -> Any:
    """Return a ``PreTrainedTokenizerFast`` whose vocabulary is ``words`` (lower-cased).

    ``<pad> <unk> <s> </s>`` come first (ids 0-3), then the modality markers and ``special``
    (never split, never lower-cased), then the words in the order given, duplicates dropped.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = list(dict.fromkeys([PAD, UNK, BOS, EOS, *marker_tokens(), *special]))
    vocab: dict[str, int] = {}
    for token in [*specials, *(w.lower() for w in words)]:
        vocab.setdefault(token, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
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
