"""Opt-out keywords of inbound messages (STOP / START / HELP), per language, as data.

A person who replies `STOP` to a sender must get no more messages from it; `START`
undoes that; `HELP` asks who is writing and how to stop. Carriers require senders to
honour the first two (CTIA's Messaging Principles in the US, similar rules elsewhere), and
some providers (Twilio Advanced Opt-Out) classify the reply themselves and say so in the
webhook (`OptOutType`): that word wins over ours (`classify(text, hint)`).

Matching is what the providers do: the whole message, after trimming, ignoring case,
accents and punctuation around the word, and with inner spaces or dashes collapsed
(`opt-out`, `Opt out` and `OPTOUT` are one word). `STOP please` is not a keyword: a
sentence is a conversation, not a command. A word belongs to one kind in every language
(a test checks it), so the order of the languages never changes the answer.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["KEYWORDS", "Keyword", "KeywordMatch", "classify", "normalize_text"]

Keyword = Literal["stop", "start", "help"]

#: language (ISO 639-1) -> kind -> words, written as people type them (accents allowed;
#: matching ignores them). English follows Twilio's default lists plus CTIA's REVOKE and
#: OPTOUT; the others are the words providers and carriers document for those markets.
KEYWORDS: Final[Mapping[str, Mapping[Keyword, frozenset[str]]]] = {
    "en": {
        "stop": frozenset(
            {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
             "OPT OUT", "OPT-OUT"}
        ),
        "start": frozenset({"START", "UNSTOP", "YES", "OPTIN", "OPT IN", "SUBSCRIBE"}),
        "help": frozenset({"HELP", "INFO"}),
    },
    "es": {
        "stop": frozenset({"PARAR", "ALTO", "BAJA", "DETENER", "CANCELAR", "DESUSCRIBIR"}),
        "start": frozenset({"ALTA", "COMENZAR", "REANUDAR"}),
        "help": frozenset({"AYUDA"}),
    },
    "fr": {
        "stop": frozenset({"ARRÊT", "ARRÊTER", "DÉSABONNER", "DÉSINSCRIRE"}),
        "start": frozenset({"DÉMARRER", "REPRENDRE", "ABONNER"}),
        "help": frozenset({"AIDE"}),
    },
    "de": {
        "stop": frozenset({"STOPP", "ABBESTELLEN", "ABMELDEN", "ENDE"}),
        "start": frozenset({"ANMELDEN", "STARTEN"}),
        "help": frozenset({"HILFE"}),
    },
    "pt": {
        "stop": frozenset({"SAIR", "CANCELAR", "PARAR"}),
        "start": frozenset({"INICIAR", "VOLTAR"}),
        "help": frozenset({"AJUDA"}),
    },
    "it": {
        "stop": frozenset({"CANCELLA", "DISISCRIVI", "BASTA"}),
        "start": frozenset({"ISCRIVI", "RIATTIVA"}),
        "help": frozenset({"AIUTO"}),
    },
    "nl": {
        "stop": frozenset({"AFMELDEN", "UITSCHRIJVEN"}),
        "start": frozenset({"AANMELDEN"}),
        "help": frozenset({"HULP"}),
    },
}  # fmt: skip

_SPACES = re.compile(r"[\s\-_]+")
#: Punctuation and symbols people put around a keyword ("Stop!", "*STOP*", "stop.").
_EDGES = " \t\r\n.,;:!?¡¿'\"`*()[]{}<>-_~"
#: Longest message worth classifying: a keyword reply is one or two words.
_MAX_TEXT = 40


def normalize_text(text: str) -> str:
    """Upper case, accents removed, edge punctuation stripped, inner spaces/dashes removed."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SPACES.sub("", plain.strip(_EDGES).upper())


def _index() -> dict[str, tuple[Keyword, str, str]]:
    """normalized word -> (kind, language, word as listed); the first language listing a
    word names it (a word shared by two languages is the same kind in both)."""
    index: dict[str, tuple[Keyword, str, str]] = {}
    for language, kinds in KEYWORDS.items():
        for kind, words in kinds.items():
            for word in sorted(words):
                index.setdefault(normalize_text(word), (kind, language, word))
    return index


_INDEX: Final[Mapping[str, tuple[Keyword, str, str]]] = _index()

#: Providers' own opt-out classifications (Twilio `OptOutType`) -> our kind.
_HINTS: Final[Mapping[str, Keyword]] = {"STOP": "stop", "START": "start", "HELP": "help"}


@dataclass(frozen=True, slots=True)
class KeywordMatch:
    """What an inbound message asks for, and why we think so."""

    kind: Keyword
    #: The keyword as listed (or the provider's classification).
    word: str
    #: ISO 639-1 language of the list it came from; "provider" when the provider said so.
    language: str


def classify(text: str | None, hint: str | None = None) -> KeywordMatch | None:
    """The keyword an inbound message is, or None for anything else (a conversation).

    `hint` is the provider's own classification (Twilio's `OptOutType`): when it names a
    kind we know, it wins, because the provider also acts on it (it stops sending)."""
    if hint:
        kind = _HINTS.get(hint.strip().upper())
        if kind is not None:
            return KeywordMatch(kind, hint.strip().upper(), "provider")
    if not text or len(text) > _MAX_TEXT:
        return None
    found = _INDEX.get(normalize_text(text))
    if found is None:
        return None
    return KeywordMatch(found[0], found[2], found[1])
