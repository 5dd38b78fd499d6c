"""The sandbox's look at an image and the made-up scores built on it (local/sandbox/look.py, scores.py).

These are rules of thumb, not a model: the tests pin what a reader of the docstrings is promised.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw

from local.sandbox import scores
from local.sandbox.look import look_at

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SKIN = (224, 172, 140)


def encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def page() -> Image.Image:
    """Dark lines of "text" on a white page."""
    image = Image.new("RGB", (400, 300), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    for top in range(20, 280, 16):
        for left in range(20, 360, 30):
            draw.rectangle((left, top, left + 22, top + 6), fill=(20, 20, 20))
    return image


def test_skin_toned_pixels_are_counted_and_located() -> None:
    image = Image.new("RGB", (200, 100), (30, 60, 160))
    image.paste(Image.new("RGB", (100, 100), SKIN), (100, 0))  # the right half
    look = look_at(encoded(image))
    assert 0.45 <= look.skin <= 0.55
    assert look.skin_box is not None
    x, y, width, height = look.skin_box
    assert abs(x - 0.5) < 0.03 and y == 0.0 and abs(width - 0.5) < 0.03 and height == 1.0
    assert look_at(encoded(Image.new("RGB", (200, 100), (30, 60, 160)))).skin == 0.0


def test_more_skin_more_nsfw_and_a_blue_sky_is_safe() -> None:
    shares = []
    for columns in (0, 50, 120, 200):
        image = Image.new("RGB", (200, 100), (30, 60, 160))
        if columns:
            image.paste(Image.new("RGB", (columns, 100), SKIN), (0, 0))
        shares.append(scores.exposure(look_at(encoded(image))))
    nsfw = [s.nsfw for s in shares]
    assert nsfw == sorted(nsfw) and nsfw[0] < 0.05 and nsfw[-1] >= 0.95
    assert shares[0].safe > 0.9
    for share in shares:
        assert abs(share.nsfw + share.underwear + share.safe - 1.0) < 1e-9


def test_a_page_of_text_reads_as_text_and_a_photo_does_not() -> None:
    text = look_at(encoded(page()))
    assert scores.text_present(text) >= 0.3
    assert dict(scores.tags(text))["text"] >= 0.3
    rocket = look_at((SAMPLES / "skimage-rocket.jpg").read_bytes())
    assert scores.text_present(rocket) == 0.0
    assert "sky" in dict(scores.tags(rocket))


def test_the_same_picture_resized_or_reencoded_keeps_its_hash_and_other_pictures_do_not() -> None:
    cat = Image.open(SAMPLES / "skimage-chelsea.png").convert("RGB")
    original = look_at(encoded(cat))
    smaller = look_at(encoded(cat.resize((300, 200)), "JPEG", quality=90))
    assert smaller.key == original.key
    assert scores.ai_likelihood(smaller) == scores.ai_likelihood(original)
    coffee = look_at((SAMPLES / "skimage-coffee.png").read_bytes())
    assert coffee.key != original.key


def test_a_flat_or_smooth_render_is_likely_ai() -> None:
    flat = look_at(encoded(Image.new("RGB", (320, 240), (90, 40, 160))))
    assert flat.detail < 0.02 and scores.ai_likelihood(flat) > 0.9


def test_choices_are_scored_by_their_meaning() -> None:
    text = look_at(encoded(page()))
    assert scores.choice_score(text, "document") > scores.choice_score(text, "nsfw")
    skin = look_at(encoded(Image.new("RGB", (100, 100), SKIN)))
    assert scores.choice_score(skin, "explicit nudity") > scores.choice_score(skin, "safe")


def test_what_cannot_be_decoded_gets_a_neutral_look_hashed_from_its_bytes() -> None:
    first, second = look_at(b"not an image"), look_at(b"not an image either")
    assert not first.decoded and first.skin == 0.0 and first.width == 0
    assert first.chance("x") != second.chance("x")
    assert [word for word, _ in scores.tags(first)] == ["design"]  # no colour, skin or edges to go by
