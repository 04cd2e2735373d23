"""Word tokenizers of the tiny models, and the words of a question a tokenizer does not know."""

from __future__ import annotations

import pytest

from mm_ros.llm.tokens import VocabularyCheck, word_level_tokenizer, word_piece_tokenizer

WORDS = (
    "what",
    "is",
    "on",
    "my",
    "left",
    "right",
    "the",
    "red",
    "sphere",
    "cube",
    "where",
    "?",
    ".",
)
SPECIAL = ("[spatial]", "<p>", "</p>", "<5>")


def pieces(tokenizer, text: str) -> list[str]:  # type: ignore[no-untyped-def]
    return tokenizer.convert_ids_to_tokens(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_word_piece_keeps_known_words_whole_and_spells_the_rest() -> None:
    tokenizer = word_piece_tokenizer(WORDS, SPECIAL)
    assert pieces(tokenizer, "[spatial] What is on my LEFT?") == [
        *("[spatial]", "what", "is", "on", "my", "left", "?"),
    ]
    # a known word and an ending, not <unk>: "spheres" reads as "sphere" + "##s"
    assert pieces(tokenizer, "the spheres") == ["the", "sphere", "##s"]
    assert pieces(tokenizer, "rigth") == ["r", "##i", "##g", "##t", "##h"]
    assert pieces(tokenizer, "<p>red cube</p> <5>") == ["<p>", "red", "cube", "</p>", "<5>"]
    ids = tokenizer("where's the spheres?", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == "where's the spheres ?"
    assert tokenizer.unk_token_id not in ids
    # only characters outside the pieces become <unk>
    assert "<unk>" in pieces(tokenizer, "caf\u00e9")


def test_word_piece_ids_of_words_are_the_word_level_ones() -> None:
    level, piece = word_level_tokenizer(WORDS, SPECIAL), word_piece_tokenizer(WORDS, SPECIAL)
    for word in WORDS:
        assert level.convert_tokens_to_ids(word) == piece.convert_tokens_to_ids(word)
    assert len(piece) > len(level)


@pytest.mark.parametrize("build", [word_level_tokenizer, word_piece_tokenizer])
def test_unknown_words_of_word_tokenizers(build) -> None:  # type: ignore[no-untyped-def]
    check = VocabularyCheck(build(WORDS, SPECIAL))
    assert check.word_vocabulary
    assert check("[spatial] What's on my LEFT, rigth or Rigth? <p>red</p>") == (
        *("what's", "rigth", "or"),
    )
    assert check("where is the red cube?") == ()
    assert check("caf\u00e9 cube") == ("caf\u00e9",)


def test_unknown_words_of_other_tokenizers_are_those_with_unk() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, **{c: i + 1 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>")
    check = VocabularyCheck(tokenizer)
    assert not check.word_vocabulary
    assert check("zebra stripes") == ()  # every word spelt: nothing unknown
    assert check("a na\u00efve zebra") == ("na\u00efve",)
