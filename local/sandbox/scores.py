"""Made-up scores: what the sandbox's image-driven answers report, as plain functions of a ``Look``.

**None of this is a model, and none of it is what a vendor would answer.** Each function turns the few
pixel measurements of ``look.py`` into a number with a rule of thumb, so that answers differ from one
image to the next in a way a person can follow (many skin-toned pixels -> an NSFW-ish score; a lot of
blue at the top -> "sky"; dark strokes on a light page -> "text"), and so that a demo flags some
images and not others. Vendor modules put these numbers into the vendors' own answer shapes and scales.

Scores are 0..1 here; a vendor module scales them (Imagga and ImageRecognize: 0-100).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from local.sandbox.look import Look

# ---------------------------------------------------------------------------------------------------
# Colours: Imagga's palette entries as they appear in its saved answers (tests/fixtures/imagga/colors_*.json
# and the docs example): (name, html code, parent). The last eight are the sandbox's own, for colours no
# saved answer shows (white, dim grey, black, green, yellow, orange, pink, purple).

PALETTE: tuple[tuple[str, str, str], ...] = (
    ("graphite", "#3a3536", "black"),
    ("electric blue", "#363b7c", "blue"),
    ("royal blue", "#00539c", "blue"),
    ("cerulean", "#0074a8", "blue"),
    ("larkspur", "#6e7e99", "blue"),
    ("brownie", "#584039", "brown"),
    ("pewter", "#84898c", "grey"),
    ("periwinkle", "#81a0d4", "light blue"),
    ("ice blue", "#9bb7d4", "light blue"),
    ("sand", "#c1b7b0", "light grey"),
    ("blueberry", "#2d3359", "navy blue"),
    ("navy blue", "#2b2e43", "navy blue"),
    ("moss", "#525f48", "olive green"),
    ("antique gold", "#8c7c61", "olive green"),
    ("fiesta", "#be5141", "red"),
    ("light bronze", "#8c5e37", "skin"),
    ("dark bronze", "#542e0c", "skin"),
    ("medium coffee", "#9c7644", "skin"),
    ("light brown", "#ac8a64", "skin"),
    ("white", "#f4f4f4", "white"),
    ("dim grey", "#696969", "grey"),
    ("black", "#101010", "black"),
    ("green", "#3f8f3a", "green"),
    ("yellow", "#e8d13a", "yellow"),
    ("orange", "#e8762c", "orange"),
    ("pink", "#e58fb4", "pink"),
    ("purple", "#7b4fa0", "purple"),
)


def _rgb(html: str) -> tuple[int, int, int]:
    return int(html[1:3], 16), int(html[3:5], 16), int(html[5:7], 16)


@dataclass(frozen=True)
class PaletteMatch:
    name: str
    html_code: str
    parent: str
    distance: float


def closest_colour(rgb: tuple[int, int, int]) -> PaletteMatch:
    """The nearest palette entry (plain RGB distance, scaled to look like Imagga's small numbers)."""
    best = min(PALETTE, key=lambda entry: sum((a - b) ** 2 for a, b in zip(rgb, _rgb(entry[1]), strict=True)))
    distance = sum((a - b) ** 2 for a, b in zip(rgb, _rgb(best[1]), strict=True)) ** 0.5 / 4
    return PaletteMatch(best[0], best[1], best[2], round(distance, 6))


# ---------------------------------------------------------------------------------------------------
# Moderation-ish scores


@dataclass(frozen=True)
class Exposure:
    """Imagga nsfw_beta's three classes, summing to 1: nsfw (explicit), underwear, safe."""

    nsfw: float
    underwear: float
    safe: float


def exposure(look: Look) -> Exposure:
    """More skin-toned pixels, more "nsfw": none under a quarter of the image, nearly all at four fifths."""
    share = min(1.0, max(0.0, (look.skin - 0.25) / 0.55))
    nsfw = 0.02 + 0.96 * share**1.5
    underwear = (1.0 - nsfw) * min(1.0, look.skin * 1.6) * 0.85
    return Exposure(nsfw=nsfw, underwear=underwear, safe=max(0.0, 1.0 - nsfw - underwear))


def nsfw_detected(look: Look) -> bool:
    """AI or Not's boolean NSFW report: a third of the image skin-toned."""
    return look.skin >= 0.35


def ai_likelihood(look: Look) -> float:
    """Chance that the image is AI-made: a hash of the pixels, skewed so that about three photos in ten
    score >= 0.5; an image with almost no edges (a flat fill, a smooth gradient: rendered, not shot)
    scores near 1."""
    smooth = min(1.0, max(0.0, (0.1 - look.detail) / 0.08)) if look.decoded else 0.0
    return smooth * 0.97 + (1 - smooth) * look.chance("ai_generated") ** 2


def high_quality(look: Look) -> bool:
    """AI or Not's quality report: enough edges and pixels to read (not blurred, not a thumbnail)."""
    return look.decoded and look.detail >= 0.12 and min(look.width, look.height) >= 128


# ---------------------------------------------------------------------------------------------------
# Faces, deepfakes, celebrities

Box = tuple[float, float, float, float]  # x, y, width, height as fractions of the image


def faces(look: Look) -> list[tuple[Box, float]]:
    """One "face" where the skin-toned pixels are, when they cover between 3% and 70% of the image."""
    if look.skin_box is None or not 0.03 <= look.skin <= 0.7:
        return []
    return [(look.skin_box, round(0.6 + 0.39 * min(1.0, look.skin * 4), 4))]


def deepfake(look: Look) -> tuple[bool, float]:
    """(detected, confidence): only an image with a face can be one, and a hash picks about one in six."""
    draw = look.chance("deepfake")
    if faces(look) and draw > 5 / 6:
        return True, round(0.8 + 0.19 * (draw - 5 / 6) * 6, 4)
    return False, round(0.4 * draw, 4)


def is_celebrity(look: Look) -> bool:
    return bool(faces(look)) and look.chance("celebrity") > 0.8


def text_present(look: Look) -> float:
    """How much the image looks like a page of text (0: not at all; a scanned page about 0.75)."""
    return min(0.95, look.ink * 3)


# ---------------------------------------------------------------------------------------------------
# Tags


def tags(look: Look) -> list[tuple[str, float]]:
    """English tags with scores, highest first; words Imagga-like (lower case)."""
    found: dict[str, float] = {}

    def add(word: str, score: float) -> None:
        if score > 0:
            found[word] = max(found.get(word, 0.0), min(0.99, score))

    for rgb, share in look.palette[:3]:
        add(closest_colour(rgb).parent, 0.3 + 0.6 * share)
    if look.skin >= 0.05:
        add("skin", 0.2 + 0.7 * look.skin)
        if look.skin <= 0.8:
            person = 0.3 + 0.6 * min(1.0, look.skin * 2.5)
            add("person", person)
            add("people", person * 0.8)
            add("portrait", person * 0.7)
    add("sky", look.sky * 2.2)
    add("outdoors", max(look.sky, look.green) * 1.6)
    add("nature", look.green * 1.8)
    add("plant", look.green * 1.5)
    add("landscape", (look.green + look.sky) * 1.2)
    text = text_present(look)
    add("text", text)
    add("document", text * 0.9)
    add("paper", text * 0.8)
    add("page", text * 0.7)
    add("dark", (0.4 - look.brightness) * 2.5)
    add("light", (look.brightness - 0.6) * 2.5)
    add("colorful", (look.saturation - 0.3) * 2.0)
    if look.saturation < 0.05 and look.decoded:
        add("black and white", 0.8 - look.saturation * 4)
    if look.detail < 0.25:
        add("gradient", (0.25 - look.detail) * 3 * look.saturation)
        add("abstract", (0.25 - look.detail) * 2.5 * look.saturation)
    add("texture", (look.detail - 0.4) * 1.2)
    add("pattern", (look.detail - 0.5) * 1.0)
    add("design", 0.1 + 0.2 * look.chance("design"))
    return sorted(((word, round(score, 4)) for word, score in found.items()), key=lambda kv: (-kv[1], kv[0]))


# Where an ImageRecognize object sits: the skin box for a person, the top third for the sky.
def object_box(look: Look, word: str) -> Box | None:
    if word in ("person", "people", "portrait") and look.skin_box is not None:
        return look.skin_box
    if word == "sky":
        return (0.0, 0.0, 1.0, 1 / 3)
    if word in ("text", "document", "paper", "page"):
        return (0.05, 0.05, 0.9, 0.9)
    return None


# ---------------------------------------------------------------------------------------------------
# Choices (CoreViz classification): a choice is scored by what its words mean to the rules above.

_CHOICE_WORDS: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"nsfw", "explicit", "nude", "nudity", "porn", "adult", "sexual", "inappropriate", "unsafe"}), "nsfw"),
    (frozenset({"suggestive", "underwear", "swimwear", "lingerie", "racy", "bikini"}), "underwear"),
    (frozenset({"safe", "sfw", "clean", "appropriate", "harmless"}), "safe"),
    (
        frozenset({"document", "text", "receipt", "invoice", "contract", "page", "scan", "letter", "form"}),
        "text",
    ),
    (frozenset({"person", "people", "portrait", "selfie", "face", "human", "man", "woman"}), "person"),
)


def choice_score(look: Look, choice: str) -> float:
    """A choice's score: by its words when the rules above know them, else mostly a hash of the picture."""
    words = set(re.findall(r"[a-z]+", choice.lower()))
    meaning = next((what for vocabulary, what in _CHOICE_WORDS if words & vocabulary), None)
    draw = look.chance("choice:" + choice.lower())
    tagged = dict(tags(look))
    if meaning in ("nsfw", "underwear", "safe"):
        base = getattr(exposure(look), meaning)
    elif meaning == "text":
        base = text_present(look)
    elif meaning == "person":
        base = tagged.get("person", 0.0)
    elif words & set(tagged):
        base = max(tagged[w] for w in words & set(tagged))
    else:
        base = 0.1 + 0.3 * draw
    return round(min(0.99, max(0.01, 0.85 * base + 0.15 * draw)), 4)


# ---------------------------------------------------------------------------------------------------
# Translations of the tag words, for Imagga's ``language`` and ImageSEO's ``lang`` (fr, de, es only:
# other languages get the English word).

TRANSLATIONS: dict[str, dict[str, str]] = {
    "black": {"fr": "noir", "de": "schwarz", "es": "negro"},
    "blue": {"fr": "bleu", "de": "blau", "es": "azul"},
    "brown": {"fr": "marron", "de": "braun", "es": "marrón"},
    "grey": {"fr": "gris", "de": "grau", "es": "gris"},
    "light blue": {"fr": "bleu clair", "de": "hellblau", "es": "azul claro"},
    "light grey": {"fr": "gris clair", "de": "hellgrau", "es": "gris claro"},
    "navy blue": {"fr": "bleu marine", "de": "marineblau", "es": "azul marino"},
    "olive green": {"fr": "vert olive", "de": "olivgrün", "es": "verde oliva"},
    "red": {"fr": "rouge", "de": "rot", "es": "rojo"},
    "skin": {"fr": "peau", "de": "Haut", "es": "piel"},
    "white": {"fr": "blanc", "de": "weiß", "es": "blanco"},
    "green": {"fr": "vert", "de": "grün", "es": "verde"},
    "yellow": {"fr": "jaune", "de": "gelb", "es": "amarillo"},
    "orange": {"fr": "orange", "de": "orange", "es": "naranja"},
    "pink": {"fr": "rose", "de": "rosa", "es": "rosa"},
    "purple": {"fr": "violet", "de": "lila", "es": "morado"},
    "person": {"fr": "personne", "de": "Person", "es": "persona"},
    "people": {"fr": "gens", "de": "Leute", "es": "gente"},
    "portrait": {"fr": "portrait", "de": "Porträt", "es": "retrato"},
    "sky": {"fr": "ciel", "de": "Himmel", "es": "cielo"},
    "outdoors": {"fr": "extérieur", "de": "draußen", "es": "exterior"},
    "nature": {"fr": "nature", "de": "Natur", "es": "naturaleza"},
    "plant": {"fr": "plante", "de": "Pflanze", "es": "planta"},
    "landscape": {"fr": "paysage", "de": "Landschaft", "es": "paisaje"},
    "text": {"fr": "texte", "de": "Text", "es": "texto"},
    "document": {"fr": "document", "de": "Dokument", "es": "documento"},
    "paper": {"fr": "papier", "de": "Papier", "es": "papel"},
    "page": {"fr": "page", "de": "Seite", "es": "página"},
    "dark": {"fr": "sombre", "de": "dunkel", "es": "oscuro"},
    "light": {"fr": "clair", "de": "hell", "es": "claro"},
    "colorful": {"fr": "coloré", "de": "bunt", "es": "colorido"},
    "black and white": {"fr": "noir et blanc", "de": "schwarzweiß", "es": "blanco y negro"},
    "gradient": {"fr": "dégradé", "de": "Farbverlauf", "es": "degradado"},
    "abstract": {"fr": "abstrait", "de": "abstrakt", "es": "abstracto"},
    "texture": {"fr": "texture", "de": "Textur", "es": "textura"},
    "pattern": {"fr": "motif", "de": "Muster", "es": "patrón"},
    "design": {"fr": "design", "de": "Design", "es": "diseño"},
}


def translated(word: str, language: str) -> str:
    """``word`` in ``language`` when the table has it, else the English word."""
    return TRANSLATIONS.get(word, {}).get(language.lower()[:2], word) if language.lower() != "en" else word


def title(word: str) -> str:
    """ "black and white" -> "Black and white" (ImageRecognize and ImageSEO capitalize their labels)."""
    return word[:1].upper() + word[1:]
