"""Opt-out keywords: the lists as data, how a message is matched, the provider's word wins."""

from __future__ import annotations

import pytest

from schemas.optout import KEYWORDS, classify, normalize_text


def test_no_word_means_two_things_in_any_two_languages() -> None:
    kinds: dict[str, set[str]] = {}
    for lists in KEYWORDS.values():
        for kind, words in lists.items():
            for word in words:
                kinds.setdefault(normalize_text(word), set()).add(kind)
    assert {word: k for word, k in kinds.items() if len(k) > 1} == {}


def test_every_language_has_all_three_kinds() -> None:
    for language, lists in KEYWORDS.items():
        assert set(lists) == {"stop", "start", "help"}, language
        assert all(lists.values()), language


@pytest.mark.parametrize(
    ("text", "kind", "language"),
    [
        ("STOP", "stop", "en"),
        ("stop", "stop", "en"),
        ("  Stop!  ", "stop", "en"),
        ("*STOP*", "stop", "en"),
        ("Opt out", "stop", "en"),
        ("opt-out", "stop", "en"),
        ("unsubscribe.", "stop", "en"),
        ("START", "start", "en"),
        ("unstop", "start", "en"),
        ("help?", "help", "en"),
        ("Arrêt", "stop", "fr"),
        ("ARRET", "stop", "fr"),
        ("¡Baja!", "stop", "es"),
        ("ayuda", "help", "es"),
        ("Stopp", "stop", "de"),
        ("Hilfe", "help", "de"),
        ("sair", "stop", "pt"),
        ("aiuto", "help", "it"),
        ("afmelden", "stop", "nl"),
    ],
)
def test_keywords_are_matched_like_providers_match_them(
    text: str, kind: str, language: str
) -> None:
    match = classify(text)
    assert match is not None, text
    assert (match.kind, match.language) == (kind, language)


@pytest.mark.parametrize(
    "text",
    [None, "", "STOP please", "please stop sending me these", "stopping by later", "hi", "x" * 50],
)
def test_a_conversation_is_no_keyword(text: str | None) -> None:
    assert classify(text) is None


def test_the_providers_own_classification_wins() -> None:
    match = classify("please stop", hint="STOP")
    assert match is not None and (match.kind, match.language) == ("stop", "provider")
    start = classify("STOP", hint="start")
    assert start is not None and start.kind == "start"
    assert classify("hello", hint="OTHER") is None  # an unknown hint is no keyword
