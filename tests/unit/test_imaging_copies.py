"""Vendor copies of a big JPEG come from the one reduced decode, and identical requests share one encoding."""

import io

import pytest
from PIL import Image

from image_analysis.imaging import decode

JPEG = frozenset({"jpeg"})


def _jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue()


@pytest.fixture
def big():
    return decode(_jpeg(4000, 3000), max_pixels=100_000_000)


def test_a_big_jpeg_keeps_its_reduced_decode(big):
    assert big.draft is not None
    assert max(big.draft.size) < 4000
    assert (big.width, big.height) == (4000, 3000)


def test_a_copy_up_to_the_draft_size_never_decodes_the_file_again(big, monkeypatch):
    monkeypatch.setattr(type(big), "open", lambda self: pytest.fail("the file was decoded again"))
    payload, mime = big.for_vendor(keep_metadata=True).encoded_for(JPEG, 5_000_000, max_side=1024)
    copy = Image.open(io.BytesIO(payload))
    assert mime == "image/jpeg"
    assert max(copy.size) == 1024
    assert copy.size == (1024, 768)


def test_a_copy_larger_than_the_draft_decodes_the_file(big):
    payload, _ = big.for_vendor(keep_metadata=True).encoded_for(JPEG, 50_000_000, max_side=3000)
    assert Image.open(io.BytesIO(payload)).size == (3000, 2250)


def test_providers_asking_for_the_same_copy_share_one_encoding(big, monkeypatch):
    first = big.encoded_for(JPEG, 5_000_000, max_side=600)
    monkeypatch.setattr(type(big), "_reencode", lambda *a: pytest.fail("encoded twice"))
    assert big.encoded_for(JPEG, 5_000_000, max_side=600)[0] is first[0]
    # Another metadata policy is another copy, never the one made for the first.
    monkeypatch.undo()
    kept = big.for_vendor(keep_metadata=False).encoded_for(JPEG, 5_000_000, max_side=500)
    assert Image.open(io.BytesIO(kept[0])).size == (500, 375)


def test_small_jpegs_and_other_formats_keep_no_draft():
    assert decode(_jpeg(640, 480), max_pixels=100_000_000).draft is None
    out = io.BytesIO()
    Image.new("RGB", (3000, 2000)).save(out, format="PNG")
    assert decode(out.getvalue(), max_pixels=100_000_000).draft is None


def test_a_copy_no_larger_than_the_working_copy_is_made_from_it(monkeypatch):
    small = decode(_jpeg(640, 480), max_pixels=100_000_000)
    monkeypatch.setattr(type(small), "open", lambda self: pytest.fail("the file was decoded again"))
    payload, _ = small.for_vendor(keep_metadata=True).encoded_for(JPEG, 5_000_000, max_side=450)
    assert Image.open(io.BytesIO(payload)).size == (450, 338)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _white_text_on_transparency() -> Image.Image:
    """What a dark page shows and a white one hides: white strokes, everything else transparent."""
    image = Image.new("RGBA", (640, 480), (0, 0, 0, 0))
    for x in range(100, 540, 40):
        for y in range(100, 380):
            for dx in range(10):
                image.putpixel((x + dx, y), (255, 255, 255, 255))
    return image


def test_a_transparent_image_is_judged_and_sent_on_the_backdrop_that_shows_it():
    decoded = decode(_png(_white_text_on_transparency()), max_pixels=100_000_000)
    assert decoded.backdrop == "black"
    # The offline analysis sees the strokes: on white it would see a blank page.
    assert decoded.working.convert("L").getextrema() == (0, 255)
    payload, mime = decoded.encoded_for(frozenset({"png"}), 5_000_000, 450)
    copy = Image.open(io.BytesIO(payload))
    assert payload != decoded.data  # never the original, whose transparency a vendor may draw on white
    assert mime == "image/png" and copy.mode == "RGB"
    assert copy.getpixel((0, 0)) == (0, 0, 0) and copy.getpixel((int(105 * 450 / 640), 200)) == (255, 255, 255)


def test_dark_strokes_on_transparency_go_on_white_and_an_opaque_alpha_channel_is_no_transparency():
    dark = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    dark.paste((10, 10, 10, 255), (50, 50, 150, 150))
    assert decode(_png(dark), max_pixels=100_000_000).backdrop == "white"
    opaque = Image.new("RGBA", (200, 200), (30, 60, 90, 255))
    plain = decode(_png(opaque), max_pixels=100_000_000)
    assert plain.backdrop is None
    assert plain.encoded_for(frozenset({"png"}), 5_000_000)[0] is plain.data  # sent as it is


def test_saving_a_copy_leaves_the_shared_decoded_images_as_they_were():
    small = decode(_jpeg(400, 300), max_pixels=100_000_000)
    before = dict(vars(small.working))
    small.for_vendor(keep_metadata=True).encoded_for(frozenset({"png"}), 5_000_000, max_side=400)  # re-encoded
    # Pillow's save records its settings on the image it is called on: never on one that threads share.
    assert dict(vars(small.working)) == before


def test_the_metadata_check_parses_the_file_once_for_every_vendor(monkeypatch):
    image = decode(_jpeg(640, 480), max_pixels=100_000_000)
    opened = []
    real_open = type(image).open
    monkeypatch.setattr(type(image), "open", lambda self: opened.append(1) or real_open(self))
    for side in (300, 350, 400):
        image.for_vendor(keep_metadata=False).encoded_for(JPEG, 5_000_000, max_side=side)
    assert opened == [1]


def test_a_vendor_copy_never_waits_for_the_working_copy_which_is_made_once_on_first_use(monkeypatch):
    # The vendors' requests go out while the offline analyzer makes the working copy in its own thread.
    image = decode(_jpeg(1000, 800), max_pixels=100_000_000)
    made = []
    real_resize = Image.Image.resize
    monkeypatch.setattr(Image.Image, "resize", lambda self, *a, **k: made.append(a[0]) or real_resize(self, *a, **k))
    sent, _ = image.for_vendor(keep_metadata=False).encoded_for(JPEG, 5_000_000)
    assert sent == image.data and made == []
    assert image.working.size == (512, 410) and image.for_vendor(keep_metadata=True).working is image.working
    assert made == [(512, 410)]


def test_a_copy_larger_than_the_working_size_is_made_without_the_working_copy():
    out = io.BytesIO()
    Image.linear_gradient("L").resize((1000, 800)).convert("RGB").save(out, format="PNG")
    image = decode(out.getvalue(), max_pixels=100_000_000)
    sent, mime = image.for_vendor(keep_metadata=False).encoded_for(JPEG, 5_000_000, max_side=900)
    assert mime == "image/jpeg" and Image.open(io.BytesIO(sent)).size == (900, 720)
    assert image._working._image is None  # the builtin analyzer makes it, in its own thread


def test_a_small_copy_of_a_photo_under_twice_the_working_size_is_made_from_the_decode_at_once():
    # A 640 px photo for Imagga's 300 px short side: resizing the decoded image costs a little more than
    # resizing the working copy, but waiting for the working copy would put its making on the request's path.
    image = decode(_jpeg(640, 427), max_pixels=100_000_000)
    sent, mime = image.for_vendor(keep_metadata=False).encoded_for(JPEG, 5_000_000, max_side=450)
    assert mime == "image/jpeg" and Image.open(io.BytesIO(sent)).size == (450, 300)
    assert image._working._image is None


def test_a_small_copy_of_a_large_image_is_made_from_the_working_copy():
    # From a 2000 px PNG, the 512 px working copy saves the large resize: it is made (once) and used.
    out = io.BytesIO()
    Image.linear_gradient("L").resize((2000, 1500)).convert("RGB").save(out, format="PNG")
    image = decode(out.getvalue(), max_pixels=100_000_000)
    sent, _ = image.for_vendor(keep_metadata=False).encoded_for(JPEG, 5_000_000, max_side=400)
    assert Image.open(io.BytesIO(sent)).size == (400, 300)
    assert image._working._image is not None and image._working._image.size == (512, 384)


def test_a_copy_made_from_the_decode_is_upright_and_laid_on_the_backdrop():
    # The two things the working copy does that a copy from the decode must do itself: turn the image by
    # its EXIF orientation, and flatten transparency on the backdrop the image is judged on.
    turned = Image.linear_gradient("L").resize((700, 450)).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter: 450 wide, 700 high
    out = io.BytesIO()
    turned.save(out, format="JPEG", quality=90, exif=exif)
    image = decode(out.getvalue(), max_pixels=100_000_000)
    sent, _ = image.for_vendor(keep_metadata=False).encoded_for(JPEG, 5_000_000, max_side=600)
    assert (image.width, image.height) == (450, 700) and Image.open(io.BytesIO(sent)).size == (386, 600)
    assert image._working._image is None

    clear = Image.new("RGBA", (700, 500), (255, 255, 255, 0))
    clear.paste((255, 255, 255, 255), (0, 0, 350, 500))  # white on the left half, nothing on the right
    out = io.BytesIO()
    clear.save(out, format="PNG")
    image = decode(out.getvalue(), max_pixels=100_000_000)
    sent, mime = image.for_vendor(keep_metadata=False).encoded_for(JPEG, 5_000_000, max_side=560)
    copy = Image.open(io.BytesIO(sent))
    assert image.backdrop == "black" and mime == "image/jpeg" and copy.mode == "RGB"
    assert copy.getpixel((50, 200))[0] > 240 and copy.getpixel((500, 200))[0] < 15  # the clear half is black
    assert image._working._image is None
