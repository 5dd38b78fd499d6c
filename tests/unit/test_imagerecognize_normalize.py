"""ImageRecognize normalization is a pure function; its status codes map to the error tree in one table.

Golden files: every ``tests/fixtures/imagerecognize/<name>.json`` with a ``<name>.expected.json`` next to
it. The explicit tests pin values worked out by hand from the payloads, so that a golden file regenerated
from broken code would not pass unnoticed. The status-code tests run the adapter over an httpx
MockTransport (no sockets) against the documented error bodies.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from image_analysis.credentials import Credentials
from image_analysis.errors import (
    AuthError,
    BadImageError,
    BadResponseError,
    ProviderError,
    QuotaExhaustedError,
    RateLimitedError,
    ServerError,
)
from image_analysis.imaging import decode
from image_analysis.providers import provider_class
from image_analysis.providers.base import AnalysisRequest, Deadline, ProviderDeps
from image_analysis.providers.http import RetryPolicy
from image_analysis.providers.imagerecognize import (
    NSFW_CATEGORIES,
    STATUS_KINDS,
    ImageRecognizeProvider,
    merge_outputs,
    normalize,
    normalize_celebrities,
    normalize_faces,
    normalize_nsfw,
    normalize_objects,
    normalize_text,
)
from image_analysis.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "imagerecognize"
IMAGES = ROOT / "tests" / "fixtures" / "images"
GOLDEN = sorted(FIXTURES.glob("*.expected.json"))
ERRORS = sorted(FIXTURES.glob("error_*.json"))
KEY = "ir-key-5Ta7P48b06S9"
OBJECT_ID = "5f2b9c0d41e8a7b3c6d9e0f1a2b3c4d5"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_every_payload_fixture_has_a_golden_file_or_is_an_error() -> None:
    payloads = {p.name for p in FIXTURES.glob("*.json") if not p.name.endswith(".expected.json")}
    goldens = {p.name.replace(".expected.json", ".json") for p in GOLDEN}
    assert payloads - goldens == {p.name for p in ERRORS}
    assert len(GOLDEN) == 6
    assert len(ERRORS) == 9


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: p.name)
def test_golden(golden: Path) -> None:
    expected = json.loads(golden.read_text())
    payload = load(expected["fixture"])
    output = normalize(expected["type"], payload)
    assert output.model_dump(exclude={"raw"}, exclude_defaults=True) == expected["output"]
    assert output.raw == {expected["type"]: payload}


# ---------------------------------------------------------------------------------------------------
# Values worked out by hand


def test_objects_documented_example_gives_labels_and_boxes() -> None:
    labels, objects = normalize_objects(load("objects_docs.json"))
    assert [(lbl.name, lbl.confidence, lbl.provider) for lbl in labels] == [
        ("Car", 0.9987, "imagerecognize"),  # 99.87 / 100
        ("Pedestrian", 0.9981, "imagerecognize"),
    ]
    car, pedestrian = objects
    assert car.name == "Car"
    assert (car.box.x, car.box.y, car.box.width, car.box.height) == (0.35, 0.88, 0.07, 0.11)
    assert (pedestrian.box.x, pedestrian.box.width, pedestrian.box.height) == (0.02, 0.82, 0.94)


def test_objects_without_boxes_are_labels_only_and_names_repeat_at_their_best() -> None:
    payload = {
        "status": 200,
        "message": "Success",
        "data": {
            "error": 0,
            "type": "objects",
            "objects": [
                {"name": "Dog", "confidence": 70},
                {"name": "Car", "confidence": 55.5, "coordinates": []},
                {"name": "Dog", "confidence": 91.25, "coordinates": {"x": 0.1, "y": 0.2, "width": 0.3, "height": 0.4}},
            ],
            "quota": 12,
            "added_later": True,
        },
    }
    labels, objects = normalize_objects(payload)
    assert [(lbl.name, lbl.confidence) for lbl in labels] == [("Dog", 0.9125), ("Car", 0.555)]
    # One box, given as a bare object instead of a list of one.
    [dog] = objects
    assert (dog.name, dog.confidence, dog.box.x, dog.box.height) == ("Dog", 0.9125, 0.1, 0.4)


def test_two_boxes_for_one_object_are_two_detections() -> None:
    payload = copy.deepcopy(load("objects_docs.json"))
    payload["data"]["objects"][0]["coordinates"].append({"x": 0.5, "y": 0.5, "width": 0.1, "height": 0.1})
    _, objects = normalize_objects(payload)
    assert [(o.name, o.box.x) for o in objects] == [("Car", 0.35), ("Car", 0.5), ("Pedestrian", 0.02)]


def test_null_objects_is_nothing_found() -> None:
    payload = copy.deepcopy(load("objects_docs.json"))
    payload["data"]["objects"] = None
    assert normalize_objects(payload) == ([], [])


def test_faces_drop_the_name_and_clamp_to_the_image() -> None:
    first, second = normalize_faces(load("detect_faces_synthetic.json"))
    assert first.name is None and first.confidence == 0.9999
    # x 0.9 + width 0.15 runs past the right edge: the box ends at 1.0
    assert (second.box.x, second.box.width, second.box.y, second.box.height) == (0.9, 0.1, 0.7, 0.2)


def test_a_face_without_a_usable_box_is_left_out() -> None:
    payload = copy.deepcopy(load("detect_faces_synthetic.json"))
    del payload["data"]["objects"][0]["coordinates"]
    faces = normalize_faces(payload)
    assert [(f.confidence, f.box.x) for f in faces] == [(0.963, 0.9)]  # only the second face is left


def test_celebrities_keep_names_and_get_the_whole_image_without_a_box() -> None:
    payload = copy.deepcopy(load("celebrities_synthetic.json"))
    del payload["data"]["objects"][1]["coordinates"]
    ada, babbage = normalize_celebrities(payload)
    assert (ada.name, ada.confidence, ada.box.x, ada.box.width) == ("Ada Lovelace", 0.9742, 0.31, 0.24)
    assert (babbage.name, babbage.confidence) == ("Charles Babbage", 0.885)
    assert (babbage.box.x, babbage.box.y, babbage.box.width, babbage.box.height) == (0.0, 0.0, 1.0, 1.0)


def test_text_keeps_reading_order_and_a_text_without_a_box() -> None:
    payload = copy.deepcopy(load("detect_text_synthetic.json"))
    payload["data"]["objects"].insert(0, {"name": "  EXIT ", "confidence": 50})
    payload["data"]["objects"].append({"name": "   ", "confidence": 99})
    texts = normalize_text(payload)
    assert [(t.text, t.confidence) for t in texts] == [("EXIT", 0.5), ("STOP", 0.9941), ("Main St", 0.9106)]
    assert texts[0].box is None
    assert (texts[2].box.y, texts[2].box.height) == (0.8, 0.05)


def test_nsfw_synthetic_maps_through_the_table_and_keeps_unknown_in_other() -> None:
    categories = normalize_nsfw(load("nsfw_synthetic.json"))
    assert [(c.name, c.confidence, c.source_label) for c in categories] == [
        ("suggestive", 0.932, "Suggestive"),
        ("suggestive", 0.932, "Female Swimwear Or Underwear"),
        ("other", 0.55, "Gambling"),
        ("explicit", 0.1275, "Explicit Nudity"),
    ]


@pytest.mark.parametrize(
    ("source", "house"),
    [
        ("Explicit Nudity", "explicit"),
        ("Explicit", "explicit"),
        ("Graphic Female Nudity", "explicit"),
        ("Suggestive", "suggestive"),
        ("Non-Explicit Nudity of Intimate parts and Kissing", "suggestive"),
        ("Swimwear or Underwear", "suggestive"),
        ("Violence", "violence"),
        ("Visually Disturbing", "violence"),
        ("Drugs", "drugs"),
        ("Drugs & Tobacco", "drugs"),
        ("Alcohol", "drugs"),
        ("Hate Symbols", "hate"),
        ("Rude Gestures", "other"),
        ("Gambling", "other"),
        ("Safe", "safe"),
    ],
)
def test_nsfw_mapping_table(source: str, house: str) -> None:
    assert NSFW_CATEGORIES[source.lower()] == house
    payload = {"status": 200, "data": {"error": 0, "type": "nsfw", "objects": [{"name": source, "confidence": 81}]}}
    [category] = normalize_nsfw(payload)
    assert (category.name, category.confidence, category.source_label) == (house, 0.81, source)


def test_nsfw_table_keys_are_lower_case_and_every_house_category_but_none_is_reachable() -> None:
    assert all(key == key.lower().strip() for key in NSFW_CATEGORIES)
    assert set(NSFW_CATEGORIES.values()) == {"explicit", "suggestive", "violence", "drugs", "hate", "other", "safe"}


def test_unmapped_nsfw_label_lands_in_other_with_its_source_label() -> None:
    payload = {"status": 200, "data": {"error": 0, "type": "nsfw", "objects": [{"name": "Gore", "confidence": 42.5}]}}
    [category] = normalize_nsfw(payload)
    assert (category.name, category.confidence, category.source_label) == ("other", 0.425, "Gore")


def test_nothing_unsafe_found_is_an_empty_answer_not_no_answer() -> None:
    payload = {"status": 200, "data": {"error": 0, "type": "nsfw", "objects": [], "quota": 1}}
    output = normalize("nsfw", payload)
    assert output.moderation == []  # checked, nothing found; None would mean "not asked"


def test_merge_outputs_keeps_every_section_and_raw() -> None:
    merged = merge_outputs(
        [normalize("objects", load("objects_docs.json")), normalize("nsfw", load("nsfw_synthetic.json"))]
    )
    assert [lbl.name for lbl in merged.labels] == ["Car", "Pedestrian"]
    assert len(merged.objects) == 2
    assert merged.moderation is not None and len(merged.moderation) == 4
    assert set(merged.raw) == {"objects", "nsfw"}


# ---------------------------------------------------------------------------------------------------
# Malformed payloads: a BadResponseError, never a KeyError


def _mutated(name: str, change: Callable[[dict], object]) -> dict:
    payload = copy.deepcopy(load(name))
    change(payload)
    return payload


MALFORMED = [
    ("objects", None),
    ("objects", []),
    ("objects", "Success"),
    ("objects", load("error_401_docs.json")),  # an error body reaching the normalizer
    ("objects", _mutated("objects_docs.json", lambda p: p.update(status=500))),
    ("objects", _mutated("objects_docs.json", lambda p: p["data"].update(objects=12))),
    ("objects", _mutated("objects_docs.json", lambda p: p["data"].update(type="nsfw"))),  # not what was asked
    ("objects", _mutated("objects_docs.json", lambda p: p["data"]["objects"][0].update(confidence="high"))),
    ("objects", _mutated("objects_docs.json", lambda p: p["data"]["objects"][0].update(confidence=float("nan")))),
    ("objects", _mutated("objects_docs.json", lambda p: p["data"]["objects"][0].update(confidence=250))),
    ("celebrities", _mutated("celebrities_synthetic.json", lambda p: p["data"].update(celebrities=True, objects=None))),
    ("detect_faces", _mutated("detect_faces_synthetic.json", lambda p: p["data"]["objects"][0].update(coordinates=7))),
    ("detect_text", _mutated("detect_text_synthetic.json", lambda p: p["data"]["objects"][0].update(name=["x"]))),
    ("nsfw", _mutated("nsfw_synthetic.json", lambda p: p["data"]["objects"][0].update(confidence=-3))),
]


@pytest.mark.parametrize(("kind", "payload"), MALFORMED)
def test_malformed_payloads_raise_bad_response(kind: str, payload: object) -> None:
    with pytest.raises(BadResponseError) as caught:
        normalize(kind, payload)
    assert caught.value.message.startswith(f"imagerecognize: {kind}: ")
    assert caught.value.code == "bad_response"


# ---------------------------------------------------------------------------------------------------
# Valid but different: plausible shapes of the undocumented types, and empty answers, normalize


def _data(kind: str, **data: object) -> dict:
    return {"status": 200, "message": "Success", "data": {"error": 0, **data}}


@pytest.mark.parametrize(
    "payload",
    [
        _data("objects", type="objects", objects=None),
        {"message": "Success", "data": {"error": "0", "type": "objects", "objects": []}},  # no status
    ],
    ids=["objects-null", "no-status"],
)
def test_an_empty_answer_is_an_empty_section(payload: dict) -> None:
    output = normalize("objects", payload)
    assert (output.labels, output.objects) == ([], [])


@pytest.mark.parametrize(
    "payload",
    [
        {"status": 200, "message": "Success", "data": None},
        {"status": 200, "message": "Success"},
        _data("nsfw", type="nsfw"),
        # A shape the docs do not show and we do not know: its findings under an unknown key.
        _data("nsfw", type="nsfw", moderation_results=[{"name": "Explicit Nudity", "confidence": 97.0}]),
    ],
    ids=["data-null", "no-data", "no-result-key", "unknown-key"],
)
def test_an_answer_without_a_result_key_we_know_is_a_bad_response_never_a_clean_section(payload: dict) -> None:
    # Read as an empty section, an nsfw answer we cannot read would pass an explicit image as clean.
    with pytest.raises(BadResponseError) as caught:
        normalize("nsfw", payload)
    assert "none of the result keys we know" in caught.value.message
    assert caught.value.retryable is True


@pytest.mark.parametrize(
    ("text", "error", "retryable"),
    [
        ("Image could not be read", BadImageError, False),
        ("Unsupported image content", BadImageError, False),
        ("Service temporarily unavailable, try again later", ServerError, True),
        ("Recognizer timed out", ServerError, True),
    ],
)
def test_data_error_is_about_the_image_unless_it_reads_as_passing(text: str, error: type, retryable: bool) -> None:
    payload = _mutated("objects_docs.json", lambda p: p["data"].update(error=text))
    with pytest.raises(error) as caught:
        normalize("objects", payload)
    assert caught.value.retryable is retryable
    assert text in caught.value.message


def test_type_is_optional_and_its_other_spellings_are_accepted() -> None:
    labels, _ = normalize_objects(_mutated("objects_docs.json", lambda p: p["data"].pop("type")))
    assert [lbl.name for lbl in labels] == ["Car", "Pedestrian"]
    faces = _mutated("detect_faces_synthetic.json", lambda p: p["data"].update(type="faces"))
    assert len(normalize_faces(faces)) == 2


def test_faces_under_a_faces_key_without_names_and_with_rekognition_boxes() -> None:
    payload = _data(
        "detect_faces",
        type="detect_faces",
        faces=[
            {"confidence": 99.5, "BoundingBox": {"Left": 0.25, "Top": 0.1, "Width": 0.2, "Height": 0.3}},
            {"confidence": 80, "box": {"x": 0.6, "y": 0.2, "width": 0.1, "height": 0.1}},
        ],
    )
    faces = normalize_faces(payload)
    assert [(f.name, f.confidence, f.box.x, f.box.y, f.box.width) for f in faces] == [
        (None, 0.995, 0.25, 0.1, 0.2),
        (None, 0.8, 0.6, 0.2, 0.1),
    ]


def test_text_under_a_text_key_as_items_or_plain_strings() -> None:
    items = _data("detect_text", type="detect_text", text=[{"text": "STOP", "confidence": 99.4}, "Main St"])
    assert [(t.text, t.confidence) for t in normalize_text(items)] == [("STOP", 0.994), ("Main St", None)]
    one_string = _data("detect_text", type="detect_text", text="STOP\nMain St\n")
    assert [t.text for t in normalize_text(one_string)] == ["STOP", "Main St"]


def test_nsfw_under_its_own_key_as_a_list_or_a_name_to_confidence_map() -> None:
    listed = _data("nsfw", type="nsfw", nsfw=[{"label": "Explicit Nudity", "score": 91.5}])
    assert [(c.name, c.confidence, c.source_label) for c in normalize_nsfw(listed)] == [
        ("explicit", 0.915, "Explicit Nudity")
    ]
    mapped = _data("nsfw", type="nsfw", nsfw={"Suggestive": 60, "Violence": 12.5})
    assert [(c.name, c.confidence) for c in normalize_nsfw(mapped)] == [("suggestive", 0.6), ("violence", 0.125)]


def test_celebrities_under_their_own_key() -> None:
    payload = _data("celebrities", type="celebrities", celebrities=[{"name": "Ada Lovelace", "confidence": 97}])
    (ada,) = normalize_celebrities(payload)
    assert (ada.name, ada.confidence, ada.box.width) == ("Ada Lovelace", 0.97, 1.0)


def test_items_missing_a_name_or_with_unusable_boxes_keep_what_they_can() -> None:
    def change(p: dict) -> None:
        p["data"]["objects"][0].pop("name")
        p["data"]["objects"][1]["coordinates"][0].update(x=120, y=40, width=64, height=48)  # pixels

    labels, objects = normalize_objects(_mutated("objects_docs.json", change))
    assert [(lbl.name, lbl.confidence) for lbl in labels] == [("Pedestrian", 0.9981)]
    assert objects == []
    no_width = _mutated("objects_docs.json", lambda p: p["data"]["objects"][0]["coordinates"][0].pop("width"))
    labels, objects = normalize_objects(no_width)
    assert [lbl.name for lbl in labels] == ["Car", "Pedestrian"] and [o.name for o in objects] == ["Pedestrian"]


# ---------------------------------------------------------------------------------------------------
# Status codes: every documented one, through the adapter, over a mock transport

FAST = RetryPolicy(base_delay=0.001, max_delay=0.002, safety_margin=0.0, min_try_seconds=0.0)

EXPECTED_ERRORS: dict[int, tuple[type[ProviderError], bool, str]] = {
    300: (BadResponseError, False, "Invalid request, no data received"),
    400: (AuthError, False, "APIkey missing"),
    401: (AuthError, False, "APIkey invalid"),
    402: (QuotaExhaustedError, False, "Quota limit reached"),
    412: (BadImageError, False, "Invalid file"),
    413: (BadImageError, False, "Image size too large"),
    415: (BadImageError, False, "Invalid file format"),
    420: (BadResponseError, False, "Invalid type"),
    430: (BadResponseError, False, "<…>"),
}


def test_the_status_table_covers_exactly_the_documented_codes() -> None:
    assert set(STATUS_KINDS) == set(EXPECTED_ERRORS)
    assert {int(p.stem.split("_")[1]) for p in ERRORS} == set(EXPECTED_ERRORS)


def make(handler: Callable[[httpx.Request], httpx.Response], **env: str) -> ImageRecognizeProvider:
    settings = Settings.from_env(
        {
            "RESULTS_TABLE": "t",
            "ALERTS_TOPIC_ARN": "a",
            "IMAGERECOGNIZE_API_KEY": KEY,
            "IMAGERECOGNIZE_TYPES": "objects",
            **env,
        }
    )
    deps = ProviderDeps(
        settings=settings,
        credentials=Credentials(settings),
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        extra={"retry_policy": FAST, "sleep": lambda _: None},
    )
    built = provider_class("imagerecognize").create(deps)
    assert isinstance(built, ImageRecognizeProvider)
    return built


def clean(fmt: str, size: tuple[int, int] = (160, 120)) -> bytes:
    """An image without any metadata: the house metadata policy lets it go as it is."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 90, 200)).save(buffer, format=fmt)
    return buffer.getvalue()


def request(name: str = "skimage-rocket.jpg", data: bytes | None = None) -> AnalysisRequest:
    image = decode(data if data is not None else (IMAGES / name).read_bytes(), max_pixels=100_000_000)
    return AnalysisRequest(image=image, object_id=OBJECT_ID, deadline=Deadline(30), bucket="b", key="users/a.jpg")


@pytest.mark.parametrize("http_status", ["same", 200], ids=["http-status-equals-body", "http-200"])
@pytest.mark.parametrize("error_file", ERRORS, ids=lambda p: p.stem)
def test_every_documented_error_maps_to_its_typed_error(error_file: Path, http_status: object) -> None:
    body = error_file.read_bytes()
    code = json.loads(body)["status"]
    calls: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        return httpx.Response(code if http_status == "same" else 200, content=body)

    error_class, retryable, vendor_text = EXPECTED_ERRORS[code]
    with pytest.raises(ProviderError) as caught:
        make(handler).analyze(request())
    error = caught.value
    assert type(error) is error_class
    assert error.retryable is retryable
    assert len(calls) == 1  # none of them is retried
    assert error.message.startswith("imagerecognize: ")
    assert f'the vendor said: "{vendor_text}"' in error.message
    assert KEY not in error.message


def test_error_messages_say_what_to_do() -> None:
    def answer(code: int) -> Callable[[httpx.Request], httpx.Response]:
        return lambda _: httpx.Response(code, content=(FIXTURES / f"error_{code}_docs.json").read_bytes())

    with pytest.raises(BadResponseError) as wrong_url:
        make(answer(300)).analyze(request())
    assert "IMAGERECOGNIZE_BASE_URL must be scheme://host only" in wrong_url.value.message
    with pytest.raises(AuthError) as no_key:
        make(answer(400)).analyze(request())
    assert "check api_key in the provider secret (IMAGERECOGNIZE_API_KEY locally)" in no_key.value.message
    with pytest.raises(QuotaExhaustedError) as quota:
        make(answer(402)).analyze(request())
    assert "route this capability to another provider" in quota.value.message


@pytest.mark.parametrize(("status", "error_class"), [(429, RateLimitedError), (500, ServerError), (503, ServerError)])
def test_other_statuses_fall_to_the_shared_table_and_are_retried(status: int, error_class: type) -> None:
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        return httpx.Response(status, json={"status": status, "status_message": "busy", "data": None})

    with pytest.raises(error_class):
        make(handler).analyze(request())
    assert len(calls) == 3


def test_a_200_whose_data_reports_an_image_error_is_a_bad_image_sent_once_and_not_retried() -> None:
    calls = []
    failed = {"status": 200, "message": "Success", "data": {"error": "Could not decode", "type": "objects"}}

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        return httpx.Response(200, json=failed)

    with pytest.raises(BadImageError) as caught:
        make(handler).analyze(request())
    assert len(calls) == 1  # another try cannot change what the vendor says about the image
    assert caught.value.retryable is False
    assert 'the vendor said: "Could not decode"' in caught.value.message


def test_a_200_whose_data_reports_a_passing_fault_is_retried() -> None:
    calls = []
    failed = {"status": 200, "message": "Success", "data": {"error": "Server busy, try again", "type": "objects"}}

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        return httpx.Response(200, json=failed)

    with pytest.raises(ServerError):
        make(handler).analyze(request())
    assert len(calls) == 3


# ---------------------------------------------------------------------------------------------------
# What goes over the wire (mock transport)


def _parts(req: httpx.Request) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]]]:
    """Form fields and files of a multipart request, read with the stdlib email parser."""
    import email.parser
    import email.policy

    raw = b"Content-Type: " + req.headers["content-type"].encode() + b"\r\n\r\n" + req.read()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    fields, files = {}, {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if part.get_filename():
            files[name] = (part.get_filename(), part.get_content_type(), payload)
        else:
            fields[name] = payload.decode()
    return fields, files


def test_one_request_per_type_with_only_that_types_options() -> None:
    seen: dict[str, tuple[dict[str, str], dict]] = {}
    answers = {
        "objects": "objects_docs.json",
        "nsfw": "nsfw_synthetic.json",
        "detect_text": "detect_text_synthetic.json",
    }

    def handler(req: httpx.Request) -> httpx.Response:
        assert req.method == "POST"
        assert req.url.path == "/api/v2/"  # the trailing slash
        fields, files = _parts(req)
        seen[fields["type"]] = (fields, files)
        return httpx.Response(200, content=(FIXTURES / answers[fields["type"]]).read_bytes())

    provider = make(
        handler,
        IMAGERECOGNIZE_TYPES="objects,nsfw,detect_text",
        IMAGERECOGNIZE_MAX_LABELS="10",
        IMAGERECOGNIZE_MIN_CONFIDENCE="80",
        IMAGERECOGNIZE_NSFW_MIN_CONFIDENCE="35",
    )
    original = clean("JPEG")
    output = provider.analyze(request(data=original))
    assert seen["objects"][0] == {"apikey": KEY, "type": "objects", "max_labels": "10", "min_confidence": "80"}
    assert seen["nsfw"][0] == {"apikey": KEY, "type": "nsfw", "nsfw_min_confidence": "35"}
    assert seen["detect_text"][0] == {"apikey": KEY, "type": "detect_text"}
    for _, files in seen.values():
        assert files["file"] == (f"{OBJECT_ID}.jpg", "image/jpeg", original)  # the original, opaque name
    assert [lbl.name for lbl in output.labels] == ["Car", "Pedestrian"]
    assert [t.text for t in output.text] == ["STOP", "Main St"]
    assert output.moderation is not None and output.moderation[0].source_label == "Suggestive"
    assert set(output.raw) == {"objects", "nsfw", "detect_text"}


@pytest.mark.parametrize("fmt", ["TIFF", "WEBP", "GIF"])
def test_formats_other_than_png_and_jpeg_are_converted(fmt: str) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (120, 80), (200, 30, 30)).save(buffer, format=fmt)
    uploads = []

    def handler(req: httpx.Request) -> httpx.Response:
        uploads.append(_parts(req)[1]["file"])
        return httpx.Response(200, content=(FIXTURES / "objects_docs.json").read_bytes())

    make(handler).analyze(request(data=buffer.getvalue()))
    [(name, mime, data)] = uploads
    assert (name, mime) == (f"{OBJECT_ID}.jpg", "image/jpeg")
    assert Image.open(io.BytesIO(data)).format == "JPEG"
    assert Image.open(io.BytesIO(data)).size == (120, 80)


def test_a_clean_png_goes_as_it_is() -> None:
    uploads = []

    def handler(req: httpx.Request) -> httpx.Response:
        uploads.append(_parts(req)[1]["file"])
        return httpx.Response(200, content=(FIXTURES / "objects_docs.json").read_bytes())

    original = clean("PNG")
    make(handler).analyze(request(data=original))
    assert uploads == [(f"{OBJECT_ID}.png", "image/png", original)]


def test_an_exif_rotated_jpeg_is_sent_upright() -> None:
    source = Image.open(IMAGES / "skimage-rocket.jpg")
    exif = source.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    source.save(buffer, format="JPEG", exif=exif)
    uploads = []

    def handler(req: httpx.Request) -> httpx.Response:
        uploads.append(_parts(req)[1]["file"])
        return httpx.Response(200, content=(FIXTURES / "objects_docs.json").read_bytes())

    make(handler).analyze(request(data=buffer.getvalue()))
    sent = Image.open(io.BytesIO(uploads[0][2]))
    assert sent.size == (427, 640)  # portrait, as displayed
    assert sent.getexif().get(0x0112) in (None, 1)


# ---------------------------------------------------------------------------------------------------
# Configuration


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"IMAGERECOGNIZE_BASE_URL": "https://imagerecognize.com/api/v2/"}, "scheme://host[:port] only"),
        ({"IMAGERECOGNIZE_TYPES": "objects,cache"}, "unknown cache"),
        ({"IMAGERECOGNIZE_TYPES": "labels"}, "unknown labels"),
        ({"IMAGERECOGNIZE_MAX_LABELS": "0"}, "between 1 and 1000"),
        ({"IMAGERECOGNIZE_MIN_CONFIDENCE": "80.5"}, "must be an integer"),
        ({"IMAGERECOGNIZE_NSFW_MIN_CONFIDENCE": "101"}, "between 0 and 100"),
    ],
)
def test_bad_configuration_fails_at_create(env: dict[str, str], complaint: str) -> None:
    settings = Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", **env})
    with pytest.raises(ValueError, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        ImageRecognizeProvider.create(ProviderDeps(settings=settings, credentials=Credentials(settings)))


def test_defaults() -> None:
    settings = Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a"})
    provider = ImageRecognizeProvider.create(
        ProviderDeps(settings=settings, credentials=Credentials(settings), http=httpx.Client())
    )
    assert provider.client.base_url == "https://imagerecognize.com"
    assert provider.types == ("objects", "nsfw")
    assert provider.enabled == {"labels", "objects", "moderation"}
    assert provider.form("objects") == {"type": "objects", "max_labels": "20", "min_confidence": "55"}
    assert provider.form("nsfw") == {"type": "nsfw", "nsfw_min_confidence": "50"}
    assert provider.form("celebrities") == {"type": "celebrities"}
    assert provider.max_concurrency == 2
    assert provider.max_upload_bytes == 50_000_000
    assert provider.accepted_formats == {"jpeg", "png"}


def test_routing_narrows_the_types_to_what_is_asked() -> None:
    seen: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        kind = _parts(req)[0]["type"]
        seen.append(kind)
        return httpx.Response(200, content=(FIXTURES / "nsfw_synthetic.json").read_bytes())

    provider = make(handler, IMAGERECOGNIZE_TYPES="objects,nsfw,celebrities")
    base = request(data=clean("JPEG"))
    asked = AnalysisRequest(**{**base.__dict__, "capabilities": frozenset({"moderation"})})
    output = provider.analyze(asked)
    assert seen == ["nsfw"]  # objects and celebrities are paid requests nobody asked for
    assert output.moderation is not None and len(output.moderation) == 4
    nothing = AnalysisRequest(**{**base.__dict__, "capabilities": frozenset({"ai_generated"})})
    assert provider.analyze(nothing).model_dump(exclude_defaults=True) == {}
    assert seen == ["nsfw"]
