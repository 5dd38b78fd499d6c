"""Imagga normalization is a pure function: saved payload in, house models out.

Golden files: every ``tests/fixtures/imagga/<name>.json`` with a ``<name>.expected.json`` next to it.
The explicit tests below pin values worked out by hand from the payloads, so that a golden file
regenerated from broken code would not pass unnoticed.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import pytest

from image_analysis.errors import BadImageError, BadResponseError
from image_analysis.providers.imagga import (
    NSFW_CATEGORIES,
    SentImage,
    merge_outputs,
    normalize,
    normalize_colors,
    normalize_faces,
    normalize_nsfw,
    normalize_tags,
    normalize_text,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imagga"
GOLDEN = sorted(FIXTURES.glob("*.expected.json"))


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_every_payload_fixture_has_a_golden_file() -> None:
    payloads = {p.name for p in FIXTURES.glob("*.json") if not p.name.endswith(".expected.json")}
    goldens = {p.name.replace(".expected.json", ".json") for p in GOLDEN}
    # Error bodies have no normalized form: they raise.
    assert payloads - goldens == {"error_docs.json", "v1_tagging_error_1.json"}
    assert len(GOLDEN) == 11


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: p.name)
def test_golden(golden: Path) -> None:
    expected = json.loads(golden.read_text())
    payload = load(expected["fixture"])
    size = expected.get("sent_image", {"width": 1, "height": 1})
    output = normalize(
        expected["endpoint"],
        payload,
        sent=SentImage(size["width"], size["height"]),
        language=expected["language"],
    )
    assert output.model_dump(exclude={"raw"}, exclude_defaults=True) == expected["output"]
    assert output.raw == {expected["endpoint"]: payload}


# ---------------------------------------------------------------------------------------------------
# Values worked out by hand


def test_tags_scale_to_unit_and_keep_order() -> None:
    labels = normalize_tags(load("tags_1.json"))
    assert [(lbl.name, lbl.confidence, lbl.provider) for lbl in labels] == [
        ("mountain", 0.614116, "imagga"),  # 61.4116096496582 / 100
        ("landscape", 0.543507, "imagga"),  # 54.3507270812988 / 100
    ]


def test_tags_2_extremes() -> None:
    labels = normalize_tags(load("tags_2.json"))
    assert len(labels) == 115
    assert (labels[0].name, labels[0].confidence) == ("window", 0.815486)
    assert [(lbl.name, lbl.confidence) for lbl in labels[-2:]] == [("virus", 0.070144), ("glass", 0.07011)]
    assert all(a.confidence >= b.confidence for a, b in itertools.pairwise(labels))


def test_nsfw_beta_documented_example_maps_to_house_categories() -> None:
    categories = normalize_nsfw(load("nsfw_beta_docs.json"))
    assert [(c.name, c.confidence, c.source_label) for c in categories] == [
        ("suggestive", 0.8703, "underwear"),
        ("explicit", 0.1169, "nsfw"),
        ("safe", 0.0127, "safe"),
    ]


@pytest.mark.parametrize(
    ("source", "house"),
    [
        ("nsfw", "explicit"),
        ("underwear", "suggestive"),
        ("safe", "safe"),
        ("explicit", "explicit"),
        ("suggestive", "suggestive"),
    ],
)
def test_nsfw_mapping_table(source: str, house: str) -> None:
    assert NSFW_CATEGORIES[source] == house
    payload = {"result": {"categories": [{"confidence": 50, "name": {"en": source}}]}, "status": {"type": "success"}}
    assert normalize_nsfw(payload)[0].name == house


def test_nsfw_table_is_exactly_the_documented_names_plus_the_newer_model() -> None:
    assert set(NSFW_CATEGORIES) == {"nsfw", "underwear", "safe", "explicit", "suggestive"}


def test_unmapped_nsfw_label_lands_in_other_with_its_source_label() -> None:
    payload = {
        "result": {"categories": [{"confidence": 42.5, "name": {"en": "gore"}}]},
        "status": {"text": "", "type": "success"},
    }
    [category] = normalize_nsfw(payload)
    assert (category.name, category.confidence, category.source_label) == ("other", 0.425, "gore")


def test_colors_use_image_colors_with_hex_percent_and_palette_name() -> None:
    colors = normalize_colors(load("colors_1.json"))
    assert [(c.hex, c.percent, c.name) for c in colors] == [
        ("#547992", 0.483687, "cerulean"),
        ("#83562e", 0.479353, "light bronze"),
        ("#1f1b2e", 0.036013, "navy blue"),
    ]


def test_colors_tolerate_v1_era_strings_and_build_hex_from_rgb() -> None:
    payload = copy.deepcopy(load("colors_1.json"))
    first = payload["result"]["colors"]["image_colors"][0]
    first.update({"r": "174", "g": "11", "b": "255", "percent": "12.5", "html_color_name": "v1 name"})
    del first["html_code"], first["closest_palette_color"]
    first["added_in_v3"] = {"anything": True}
    colors = normalize_colors(payload)
    # 12.5 % now ranks second of three: after 47.94 % and before 3.60 %
    assert [(c.hex, c.percent, c.name) for c in colors] == [
        ("#83562e", 0.479353, "light bronze"),
        ("#ae0bff", 0.125, "v1 name"),
        ("#1f1b2e", 0.036013, "navy blue"),
    ]


def test_uppercase_html_code_is_lowered() -> None:
    payload = copy.deepcopy(load("colors_2.json"))
    payload["result"]["colors"]["image_colors"][0]["html_code"] = "#2A2C71"
    assert normalize_colors(payload)[0].hex == "#2a2c71"


def test_faces_boxes_are_fractions_of_the_sent_image() -> None:
    [face] = normalize_faces(load("faces_detections_docs.json"), SentImage(640, 427))
    assert face.confidence == 0.999976  # 99.99755859375 / 100
    assert face.box.x == pytest.approx(265 / 640, abs=1e-6)
    assert face.box.y == pytest.approx(34 / 427, abs=1e-6)
    assert face.box.width == pytest.approx(122 / 640, abs=1e-6)
    assert face.box.height == pytest.approx(122 / 427, abs=1e-6)
    assert face.name is None


def test_face_box_is_clamped_to_the_image() -> None:
    [face] = normalize_faces(load("faces_detections_docs.json"), SentImage(300, 150))
    # xmin 265 .. xmax 387 on a 300 px wide image: from 0.883333 to the right edge
    assert face.box.x == pytest.approx(265 / 300, abs=1e-6)
    assert face.box.x + face.box.width == pytest.approx(1.0, abs=1e-6)
    assert face.box.y + face.box.height == pytest.approx(1.0, abs=1e-6)


def test_text_items_with_boxes() -> None:
    [item] = normalize_text(load("text_docs.json"), SentImage(1200, 600))
    assert item.text == "TEST"
    assert item.confidence is None
    assert (item.box.x, item.box.y) == (pytest.approx(1 / 1200, abs=1e-6), pytest.approx(51 / 600, abs=1e-6))
    assert item.box.width == pytest.approx(1184 / 1200, abs=1e-6)


def test_tags_in_another_language_fall_back_to_english() -> None:
    payload = {
        "result": {
            "tags": [
                {"confidence": 90, "tag": {"de": "Berg", "en": "mountain"}},
                {"confidence": 80, "tag": {"en": "sky"}},
                {"confidence": 70, "tag": "v1 plain string"},
            ]
        },
        "status": {"text": "", "type": "success"},
    }
    assert [(lbl.name, lbl.confidence) for lbl in normalize_tags(payload, "de")] == [
        ("Berg", 0.9),
        ("sky", 0.8),
        ("v1 plain string", 0.7),
    ]


def test_integer_confidence_100_and_duplicates_keep_the_highest() -> None:
    payload = {
        "result": {"tags": [{"confidence": 100, "tag": {"en": "cat"}}, {"confidence": 40.0, "tag": {"en": "cat"}}]},
        "status": {"text": "", "type": "success"},
    }
    assert [(lbl.name, lbl.confidence) for lbl in normalize_tags(payload)] == [("cat", 1.0)]


def test_merge_outputs_keeps_every_section_and_raw() -> None:
    merged = merge_outputs(
        [
            normalize("tags", load("tags_1.json"), sent=SentImage(1, 1)),
            normalize("nsfw", load("nsfw_beta_docs.json"), sent=SentImage(1, 1)),
        ]
    )
    assert [lbl.name for lbl in merged.labels] == ["mountain", "landscape"]
    assert merged.moderation is not None and len(merged.moderation) == 3
    assert set(merged.raw) == {"tags", "nsfw"}


# ---------------------------------------------------------------------------------------------------
# Errors: a changed or failed payload is a BadResponseError, never a KeyError


def test_status_error_with_http_200_is_a_bad_response() -> None:
    with pytest.raises(BadResponseError) as caught:
        normalize_tags(load("error_docs.json"))
    assert caught.value.message == (
        'imagga: tags: the API answered status "error": human-readable reason why the processing was unsuccessful'
    )


def _mutated(name: str, change) -> dict:
    payload = copy.deepcopy(load(name))
    change(payload)
    return payload


MALFORMED = [
    ("tags", None),
    ("tags", []),
    ("tags", "not json at all"),
    ("tags", {"results": [], "unsuccessful": []}),  # the v1 envelope with nothing in it
    ("tags", {"status": {"type": "success", "text": ""}}),  # success without a result (DELETE /uploads)
    ("tags", {"tags": []}),  # neither status nor result
    ("tags", _mutated("tags_1.json", lambda p: p.pop("result"))),
    ("tags", _mutated("tags_1.json", lambda p: p["result"].update(tags={"en": "mountain"}))),
    ("tags", _mutated("tags_1.json", lambda p: p["result"]["tags"][0].update(confidence="high"))),
    ("tags", _mutated("tags_1.json", lambda p: p["result"]["tags"][0].update(confidence=float("nan")))),
    ("tags", _mutated("tags_1.json", lambda p: p["result"]["tags"][0].update(confidence=250))),
    ("nsfw", _mutated("nsfw_beta_docs.json", lambda p: p["result"].update(categories=None))),
    ("colors", _mutated("colors_1.json", lambda p: p["result"].pop("colors"))),
    ("colors", _mutated("colors_1.json", lambda p: p["result"]["colors"]["image_colors"][0].pop("percent"))),
    (
        "colors",
        _mutated(
            "colors_1.json",
            lambda p: p["result"]["colors"]["image_colors"][0].update(html_code="blue", r=300),
        ),
    ),
]


@pytest.mark.parametrize(("endpoint", "payload"), MALFORMED)
def test_malformed_payloads_raise_bad_response(endpoint: str, payload: object) -> None:
    with pytest.raises(BadResponseError) as caught:
        normalize(endpoint, payload, sent=SentImage(640, 427))
    assert caught.value.message.startswith(f"imagga: {endpoint}: ")
    assert caught.value.code == "bad_response"


# ---------------------------------------------------------------------------------------------------
# Valid but different: what Imagga may legitimately send normalizes; only an unusable body fails


def test_a_v2_answer_without_a_status_object_is_read_by_its_result() -> None:
    payload = _mutated("tags_1.json", lambda p: p.pop("status"))
    assert [(lbl.name, lbl.confidence) for lbl in normalize_tags(payload)] == [
        ("mountain", 0.614116),
        ("landscape", 0.543507),
    ]


def test_items_missing_what_a_section_needs_are_left_out_not_fatal() -> None:
    tags = _mutated("tags_1.json", lambda p: p["result"]["tags"][0].pop("tag"))
    assert [lbl.name for lbl in normalize_tags(tags)] == ["landscape"]
    faces = _mutated("faces_detections_docs.json", lambda p: p["result"]["faces"][0].pop("coordinates"))
    assert normalize_faces(faces, SentImage(640, 427)) == []
    broken_box = _mutated(
        "faces_detections_docs.json", lambda p: p["result"]["faces"][0]["coordinates"].update(xmax=None, width=None)
    )
    assert normalize_faces(broken_box, SentImage(640, 427)) == []
    texts = _mutated(
        "text_docs.json",
        lambda p: p["result"]["text"].extend([{"coordinates": {}}, {"data": "EXIT", "coordinates": {}}]),
    )
    assert [(t.text, t.box) for t in normalize_text(texts, SentImage(1200, 600))][1:] == [("EXIT", None)]


def test_localized_names_skip_null_translations() -> None:
    payload = _mutated(
        "tags_1.json", lambda p: p["result"]["tags"][0].update(tag={"de": None, "en": "mountain", "fr": "montagne"})
    )
    assert normalize_tags(payload, language="de")[0].name == "mountain"
    assert normalize_tags(payload, language="fr")[0].name == "montagne"


# ---------------------------------------------------------------------------------------------------
# The legacy v1 envelope (a real 2016 recording): read, and its HTTP 200 refusal is a typed error


def test_v1_tagging_results_become_labels() -> None:
    labels = normalize_tags(load("v1_tagging_1.json"))
    assert len(labels) == 80
    assert (labels[0].name, labels[0].confidence) == ("field", 0.616425)  # 61.64253543201611 / 100
    assert (labels[-1].name, labels[-1].confidence) == ("park", 0.071681)  # 7.16812985542264 / 100


def test_v1_unsuccessful_with_http_200_is_a_bad_image_naming_the_reason() -> None:
    with pytest.raises(BadImageError) as caught:
        normalize_tags(load("v1_tagging_error_1.json"))
    assert caught.value.retryable is False
    assert "Could not download URL. Request status code 404" in caught.value.message


def test_v1_categories_and_colors_read_like_their_v2_results() -> None:
    categories = {"results": [{"image": "x", "categories": [{"confidence": "99.1", "name": "safe"}]}]}
    (safe,) = normalize_nsfw(categories)
    assert (safe.name, safe.confidence, safe.source_label) == ("safe", 0.991, "safe")
    colors = {
        "results": [
            {
                "image": "x",
                "info": {"image_colors": [{"r": "174", "g": "30", "b": "31", "percent": "46.2", "html_code": ""}]},
            }
        ]
    }
    (color,) = normalize_colors(colors)
    assert (color.hex, color.percent) == ("#ae1e1f", 0.462)
