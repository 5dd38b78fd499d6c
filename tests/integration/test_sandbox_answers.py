"""The vendor sandbox as the vendors behave, over real sockets: the documented request options are
honoured, the answers depend on the image sent (made up from its pixels: rules of thumb, not a model),
and ``answers="saved"`` still serves the saved real answers byte for byte. The last test runs two
images through the real adapters and the deployed pipeline: one is flagged, the other is not.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.driver import load_handler
from local.sandbox import VendorSandbox
from tests.integration.conftest import SAMPLES
from tests.integration.test_cache_and_routing import upload_and_process
from tests.integration.test_pipeline_end_to_end import item

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
KEY, SECRET = "sandbox-key", "sandbox-secret"
IMAGGA_AUTH = (KEY, SECRET)
BEARER = {"Authorization": f"Bearer {KEY}"}


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


CAT, ROCKET, PAGE = sample("skimage-chelsea.png"), sample("skimage-rocket.jpg"), sample("skimage-page.png")


# ---------------------------------------------------------------------------------------------------
# AI or Not: only / excluding


def aiornot(url: str, image: bytes, **params: Any) -> httpx.Response:
    response = httpx.post(f"{url}/v2/image/sync", params=params, files={"image": ("a", image)}, headers=BEARER)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize(
    ("params", "runs"),
    [
        ({}, ["ai_generated", "deepfake", "nsfw", "quality"]),  # "By default, it runs ..."
        ({"only": ["ai_generated"]}, ["ai_generated"]),
        ({"only": ["nsfw", "reverse_search"]}, ["nsfw", "reverse_search"]),
        ({"excluding": ["deepfake", "quality"]}, ["ai_generated", "nsfw"]),
        ({"excluding": ["nsfw"]}, ["ai_generated", "deepfake", "quality"]),
    ],
)
def test_aiornot_runs_only_the_reports_asked_for(params: dict[str, Any], runs: list[str]) -> None:
    with VendorSandbox("aiornot") as url:
        answer = aiornot(url, ROCKET, **params).json()
    report = answer["report"]
    assert sorted(report) == sorted([*runs, "meta"])
    assert report["meta"]["processing_status"] == dict.fromkeys(runs, "processed")


def test_aiornot_saved_answers_lose_the_reports_not_run_and_are_unchanged_otherwise() -> None:
    saved_bytes = (FIXTURES / "aiornot" / "v2_image_sync_1.json").read_bytes()
    saved = json.loads(saved_bytes)
    with VendorSandbox("aiornot", answers="saved") as url:
        plain = aiornot(url, ROCKET)
        only = aiornot(url, ROCKET, only=["nsfw"]).json()
        excluding = aiornot(url, ROCKET, excluding=["deepfake", "quality"]).json()
    assert plain.content == saved_bytes  # the default four: the saved answer byte for byte
    assert plain.headers["X-Sandbox-Answer"] == "saved"
    assert only["report"] == {
        "nsfw": saved["report"]["nsfw"],
        "meta": {**saved["report"]["meta"], "processing_status": {"nsfw": "processed"}},
    }
    assert sorted(excluding["report"]) == ["ai_generated", "meta", "nsfw"]
    assert excluding["report"]["ai_generated"] == saved["report"]["ai_generated"]
    assert excluding["id"] == saved["id"]


def test_aiornot_answers_depend_on_the_image_and_describe_the_upload() -> None:
    with VendorSandbox("aiornot") as url:
        cat, rocket = aiornot(url, CAT).json(), aiornot(url, ROCKET, external_id="abc").json()
        again = aiornot(url, CAT).json()
        astronaut = aiornot(url, sample("skimage-astronaut.png"), only=["deepfake"]).json()
    assert cat["report"]["nsfw"]["is_detected"] is True  # most of the cat is skin-toned
    assert rocket["report"]["nsfw"]["is_detected"] is False
    assert cat["report"]["ai_generated"] != rocket["report"]["ai_generated"]
    assert again["report"] == cat["report"]  # the same image, the same made-up answer
    ai = rocket["report"]["ai_generated"]
    assert ai["verdict"] == ("ai" if ai["ai"]["confidence"] >= 0.5 else "human")
    assert ai["ai"]["confidence"] + ai["human"]["confidence"] == pytest.approx(1.0)
    assert rocket["external_id"] == "abc" and "external_id" not in cat
    meta = rocket["report"]["meta"]
    assert (meta["width"], meta["height"], meta["format"], meta["size_bytes"]) == (640, 427, "jpeg", len(ROCKET))
    fake = astronaut["report"]["deepfake"]
    assert fake["is_detected"] is True and fake["confidence"] >= 0.8
    [roi] = fake["rois"]
    box = roi["bbox"]
    assert 0 <= box["x1"] < box["x2"] <= 512 and 0 <= box["y1"] < box["y2"] <= 512


# ---------------------------------------------------------------------------------------------------
# Imagga: limit, threshold, language, the colors options


def imagga(url: str, path: str, image: bytes, **params: str) -> httpx.Response:
    response = httpx.post(f"{url}{path}", params=params, files={"image": ("a", image)}, auth=IMAGGA_AUTH)
    assert response.status_code == 200, response.text
    return response


def tags_of(response: httpx.Response) -> list[tuple[str, float]]:
    return [(next(iter(t["tag"].values())), t["confidence"]) for t in response.json()["result"]["tags"]]


def test_imagga_limit_and_threshold_cut_the_image_driven_tags() -> None:
    with VendorSandbox("imagga") as url:
        every = tags_of(imagga(url, "/v2/tags", ROCKET))
        limited = tags_of(imagga(url, "/v2/tags", ROCKET, limit="2"))
        above_40 = tags_of(imagga(url, "/v2/tags", ROCKET, threshold="40"))
        below_floor = tags_of(imagga(url, "/v2/tags", ROCKET, threshold="3"))
    assert len(every) > 4 and every == sorted(every, key=lambda t: -t[1])
    assert limited == every[:2]
    assert above_40 == [t for t in every if t[1] >= 40] and 0 < len(above_40) < len(every)
    # "you cannot go lower than" 7: a lower threshold gives what no threshold gives.
    assert below_floor == every and min(c for _, c in every) >= 7


def test_imagga_saved_tags_follow_limit_and_threshold_with_the_floor_of_7(tmp_path: Path) -> None:
    confidences = [61.4, 20.5, 8.0, 6.9, 3.0]
    body = {
        "result": {"tags": [{"confidence": c, "tag": {"en": f"t{c}"}} for c in confidences]},
        "status": {"text": "", "type": "success"},
    }
    (tmp_path / "tags.json").write_text(json.dumps(body))
    box = VendorSandbox("imagga", fixtures_dir=tmp_path, responses={"tags": "tags.json"})
    with box as url:

        def kept(**params: str) -> list[float]:
            return [c for _, c in tags_of(imagga(url, "/v2/tags", ROCKET, **params))]

        assert kept() == [61.4, 20.5, 8.0]
        assert kept(threshold="3") == [61.4, 20.5, 8.0]
        assert kept(threshold="20") == [61.4, 20.5]
        assert kept(limit="1") == [61.4]
        assert kept(limit="-1", threshold="8") == [61.4, 20.5, 8.0]


def test_imagga_saved_tags_are_served_byte_for_byte_when_the_options_leave_them_whole() -> None:
    saved = (FIXTURES / "imagga" / "tags_2.json").read_bytes()
    with VendorSandbox("imagga", answers="saved") as url:
        assert imagga(url, "/v2/tags", ROCKET).content == saved
        assert imagga(url, "/v2/tags", ROCKET, language="en", threshold="7").content == saved
        assert len(imagga(url, "/v2/tags", ROCKET, limit="5").json()["result"]["tags"]) == 5


def test_imagga_names_tags_in_the_asked_languages() -> None:
    with VendorSandbox("imagga") as url:
        answer = imagga(url, "/v2/tags", ROCKET, language="de,fr").json()
    assert all(set(t["tag"]) == {"de", "fr"} for t in answer["result"]["tags"])
    assert {"de": "Himmel", "fr": "ciel"} in [t["tag"] for t in answer["result"]["tags"]]


def test_imagga_colors_options() -> None:
    with VendorSandbox("imagga") as url:
        full = imagga(url, "/v2/colors", ROCKET)
        overall_only = imagga(url, "/v2/colors", ROCKET, extract_object_colors="0")
        two = imagga(url, "/v2/colors", ROCKET, overall_count="2", separated_count="1").json()["result"]["colors"]
        none = imagga(url, "/v2/colors", ROCKET, extract_overall_colors="0").json()["result"]["colors"]
    colors = full.json()["result"]["colors"]
    assert colors["foreground_colors"] and colors["background_colors"] and "X-Sandbox-Assumed-Shape" not in full.headers
    trimmed = overall_only.json()["result"]["colors"]
    assert (trimmed["foreground_colors"], trimmed["background_colors"]) == ([], [])
    assert trimmed["image_colors"] == colors["image_colors"] and "object_percentage" not in trimmed
    assert overall_only.headers["X-Sandbox-Assumed-Shape"] == "true"  # no document shows this answer
    assert two["image_colors"] == colors["image_colors"][:2] and len(two["background_colors"]) == 1
    assert none["image_colors"] == []
    # The largest colour of the night sky is a dark blue.
    top = colors["image_colors"][0]
    assert top["closest_palette_color_parent"] in ("navy blue", "blue") and top["b"] > top["r"]


def test_imagga_nsfw_and_tags_depend_on_the_image() -> None:
    with VendorSandbox("imagga") as url:
        cat = imagga(url, "/v2/categories/nsfw_beta", CAT).json()["result"]["categories"]
        rocket = imagga(url, "/v2/categories/nsfw_beta", ROCKET).json()["result"]["categories"]
        page_tags = dict(tags_of(imagga(url, "/v2/tags", PAGE)))
        rocket_tags = dict(tags_of(imagga(url, "/v2/tags", ROCKET)))
    assert (cat[0]["name"]["en"], rocket[0]["name"]["en"]) == ("nsfw", "safe")
    assert cat[0]["confidence"] >= 80 and rocket[0]["confidence"] >= 80
    assert sum(c["confidence"] for c in cat) == pytest.approx(100, abs=0.01)
    assert "text" in page_tags and "text" not in rocket_tags
    assert "sky" in rocket_tags and "sky" not in page_tags


def test_a_route_given_a_file_is_saved_while_the_others_follow_the_image() -> None:
    box = VendorSandbox("imagga")
    box.vendor.set_response("tags", "tags_1.json")
    with box as url:
        tags = imagga(url, "/v2/tags", ROCKET)
        nsfw = imagga(url, "/v2/categories/nsfw_beta", ROCKET)
    assert tags.content == (FIXTURES / "imagga" / "tags_1.json").read_bytes()
    assert (tags.headers["X-Sandbox-Answer"], nsfw.headers["X-Sandbox-Answer"]) == ("saved", "image")


# ---------------------------------------------------------------------------------------------------
# CoreViz: single (it fetches the image URL; a local file server stands in for the bucket)


@pytest.fixture(scope="module")
def image_host() -> Iterator[str]:
    files = {"/cat.png": CAT, "/rocket.jpg": ROCKET, "/page.png": PAGE}

    class Files(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def coreviz(url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{url}/api/ai/tag", json=body, headers={"x-api-key": KEY})
    assert response.status_code == 200, response.text
    return response.json()


def test_coreviz_single_picks_the_documented_half_of_a_classification(image_host: str) -> None:
    choices = ["receipt", "document", "nsfw", "landscape"]
    with VendorSandbox("coreviz") as url:
        every = coreviz(url, {"image": f"{image_host}/page.png", "choices": choices})
        explicit = coreviz(url, {"image": f"{image_host}/page.png", "choices": choices, "single": False})
        best = coreviz(url, {"image": f"{image_host}/page.png", "choices": choices, "single": True})
    # "all_scores | Scores for all choices (when single: false)"; single defaults to false.
    assert list(every) == ["all_scores"] and every == explicit
    assert [s["choice"] for s in every["all_scores"]] == choices
    # "classification | The best matching classification (when single: true)"
    assert sorted(best) == ["classification", "confidence"]
    top = max(every["all_scores"], key=lambda s: s["score"])
    assert (best["classification"], best["confidence"]) == (top["choice"], top["score"])
    assert best["classification"] in ("receipt", "document")  # a page of text


def test_coreviz_answers_depend_on_the_image(image_host: str) -> None:
    prompt = "identify if this image contains inappropriate content"  # the docs' moderation example
    with VendorSandbox("coreviz") as url:
        cat = coreviz(url, {"image": f"{image_host}/cat.png", "choices": ["nsfw", "safe"], "single": True})
        rocket = coreviz(url, {"image": f"{image_host}/rocket.jpg", "choices": ["nsfw", "safe"], "single": True})
        flagged = coreviz(url, {"image": f"{image_host}/cat.png", "prompt": prompt})["tags"]
        clean = coreviz(url, {"image": f"{image_host}/rocket.jpg", "prompt": prompt})["tags"]
        plain = coreviz(url, {"image": f"{image_host}/rocket.jpg"})["tags"]

    def inappropriate(tags: list[dict[str, Any]]) -> bool:
        # The docs: tags.some(tag => tag.tag === 'inappropriate' && tag.confidence > 0.8)
        return any(t["tag"] == "inappropriate" and t["confidence"] > 0.8 for t in tags)

    assert (cat["classification"], rocket["classification"]) == ("nsfw", "safe")
    assert inappropriate(flagged) and not inappropriate(clean)
    assert "inappropriate" not in {t["tag"] for t in plain} and "sky" in {t["tag"] for t in plain}


# ---------------------------------------------------------------------------------------------------
# ImageRecognize: max_labels, min_confidence, nsfw_min_confidence; assumed shapes


def imagerecognize(url: str, image: bytes, kind: str, **form: str) -> httpx.Response:
    response = httpx.post(
        f"{url}/api/v2/", data={"apikey": KEY, "type": kind, **form}, files={"file": ("a.jpg", image)}
    )
    assert response.status_code == 200, response.text
    return response


def found(response: httpx.Response) -> list[tuple[str, float]]:
    return [(o["name"], o["confidence"]) for o in response.json()["data"]["objects"]]


def test_imagerecognize_options_cut_the_image_driven_findings() -> None:
    objects = {"max_labels": "100", "min_confidence": "0"}
    with VendorSandbox("imagerecognize") as url:
        every = found(imagerecognize(url, ROCKET, "objects", **objects))
        two = found(imagerecognize(url, ROCKET, "objects", **{**objects, "max_labels": "2"}))
        above_40 = found(imagerecognize(url, ROCKET, "objects", **{**objects, "min_confidence": "40"}))
        all_nsfw = found(imagerecognize(url, CAT, "nsfw", nsfw_min_confidence="0"))
        cat_nsfw = found(imagerecognize(url, CAT, "nsfw", nsfw_min_confidence="50"))
        rocket_nsfw = found(imagerecognize(url, ROCKET, "nsfw", nsfw_min_confidence="50"))
    assert len(every) > 3 and two == every[:2]
    assert above_40 == [o for o in every if o[1] >= 40] and 0 < len(above_40) < len(every)
    assert {name for name, _ in all_nsfw} == {"Explicit Nudity", "Suggestive", "Female Swimwear Or Underwear"}
    assert cat_nsfw == [o for o in all_nsfw if o[1] >= 50] and ("Explicit Nudity", cat_nsfw[0][1]) == cat_nsfw[0]
    assert rocket_nsfw == []  # nothing on the rocket reaches 50


def test_imagerecognize_saved_answers_follow_the_options() -> None:
    objects_docs = (FIXTURES / "imagerecognize" / "objects_docs.json").read_bytes()
    with VendorSandbox("imagerecognize", answers="saved") as url:
        documented = imagerecognize(url, ROCKET, "objects", max_labels="10", min_confidence="80")
        one = found(imagerecognize(url, ROCKET, "objects", max_labels="1", min_confidence="80"))
        strict = found(imagerecognize(url, ROCKET, "objects", max_labels="10", min_confidence="100"))
        nsfw_50 = found(imagerecognize(url, ROCKET, "nsfw", nsfw_min_confidence="50"))
        nsfw_10 = found(imagerecognize(url, ROCKET, "nsfw", nsfw_min_confidence="10"))
    assert documented.content == objects_docs  # the docs' own example request gets the docs' answer
    assert one == [("Car", 99.87)] and strict == []
    assert ("Explicit Nudity", 12.75) in nsfw_10 and ("Explicit Nudity", 12.75) not in nsfw_50
    assert [name for name, _ in nsfw_50] == ["Suggestive", "Female Swimwear Or Underwear", "Gambling"]


@pytest.mark.parametrize("answers", ["image", "saved"])
def test_imagerecognize_shapes_no_document_shows_are_marked_assumed(answers: str) -> None:
    with VendorSandbox("imagerecognize", answers=answers) as url:
        marks = {
            kind: imagerecognize(url, ROCKET, kind, **form).headers.get("X-Sandbox-Assumed-Shape")
            for kind, form in (
                ("objects", {"max_labels": "10", "min_confidence": "50"}),
                ("nsfw", {"nsfw_min_confidence": "50"}),
                ("detect_faces", {}),
                ("detect_text", {}),
                ("celebrities", {}),
            )
        }
    assert marks == {
        "objects": None,
        "nsfw": "true",
        "detect_faces": "true",
        "detect_text": "true",
        "celebrities": "true",
    }


def test_imagerecognize_text_and_faces_depend_on_the_image() -> None:
    with VendorSandbox("imagerecognize") as url:
        page_text = found(imagerecognize(url, PAGE, "detect_text"))
        rocket_text = found(imagerecognize(url, ROCKET, "detect_text"))
        cat_faces = found(imagerecognize(url, CAT, "detect_faces"))
        astronaut = imagerecognize(url, sample("skimage-astronaut.png"), "detect_faces").json()["data"]["objects"]
    assert page_text and rocket_text == []
    assert cat_faces == []  # skin-toned from edge to edge: no face-sized patch
    [face] = astronaut
    box = face["coordinates"][0]
    assert face["name"] == "Face" and box["x"] >= 0 and box["x"] + box["width"] <= 1.0001


# ---------------------------------------------------------------------------------------------------
# ImageSEO: lang


def imageseo(url: str, image: bytes, **form: str) -> httpx.Response:
    response = httpx.post(
        f"{url}/v1/external/projects/images",
        data=form,
        files={"imageFile": ("a.jpg", image)},
        headers={"Authentication": KEY},
    )
    assert response.status_code == 200, response.text
    return response


def names(response: httpx.Response) -> list[str]:
    result = response.json()["result"]
    return [entry["name"] for entry in result["labels"] + result["alts"]]


def test_imageseo_lang_names_the_labels_and_answers_depend_on_the_image() -> None:
    with VendorSandbox("imageseo") as url:
        english = imageseo(url, ROCKET, lang="en")
        french = imageseo(url, ROCKET, lang="fr")
        page = imageseo(url, PAGE)
    assert "Sky" in names(english) and "Ciel" in names(french) and "Sky" not in names(french)
    assert [e["score"] for e in english.json()["result"]["labels"]] == [
        e["score"] for e in french.json()["result"]["labels"]
    ]
    assert "Text" in names(page) and "Text" not in names(english)
    result = english.json()["result"]
    assert (result["width"], result["height"], result["weight"]) == ("640", "427", str(len(ROCKET)))


def test_imageseo_saved_answer_is_byte_for_byte() -> None:
    with VendorSandbox("imageseo", answers="saved") as url:
        saved = imageseo(url, ROCKET, lang="fr")
    assert saved.content == (FIXTURES / "imageseo" / "image_report_docs.json").read_bytes()


# ---------------------------------------------------------------------------------------------------
# Through the real adapters and the deployed pipeline: one image flagged, the other not


@pytest.fixture
def vendors(stack, monkeypatch) -> Iterator[dict[str, VendorSandbox]]:
    boxes = {"imagga": VendorSandbox("imagga"), "aiornot": VendorSandbox("aiornot")}
    with boxes["imagga"] as imagga_url, boxes["aiornot"] as aiornot_url:
        monkeypatch.setenv("PROVIDERS", "builtin,imagga,aiornot")
        monkeypatch.setenv("IMAGGA_BASE_URL", imagga_url)
        monkeypatch.setenv("IMAGGA_API_KEY", KEY)
        monkeypatch.setenv("IMAGGA_API_SECRET", SECRET)
        monkeypatch.setenv("AIORNOT_BASE_URL", aiornot_url)
        monkeypatch.setenv("AIORNOT_API_KEY", KEY)
        yield boxes


def test_the_pipeline_flags_one_image_and_not_the_other(stack, s3, table, alerts, vendors, prefix) -> None:
    handler = load_handler()
    for name, body in (("cat.png", CAT), ("rocket.jpg", ROCKET)):
        upload_and_process(stack, s3, handler, prefix + name, body)
    cat, rocket = (item(table, stack.bucket, prefix + name) for name in ("cat.png", "rocket.jpg"))
    for stored in (cat, rocket):
        assert {p["name"]: p["status"] for p in stored["providers"]} == {
            "builtin": "succeeded",
            "imagga": "succeeded",
            "aiornot": "succeeded",
        }
    # Imagga's nsfw_beta "nsfw" (house category explicit) decides: the cat is mostly skin-toned.
    assert "nsfw" in cat["flags"] and cat["moderation"]["nsfw_score"] >= 0.8
    assert rocket["flags"] == [] and rocket["moderation"]["nsfw_score"] < 0.8
    # AI or Not's nsfw boolean is "other" and flags nothing by default; it was raised for the cat only.
    aiornot_nsfw = {
        name: [c["confidence"] for c in stored["moderation"]["categories"] if c["provider"] == "aiornot"]
        for name, stored in (("cat", cat), ("rocket", rocket))
    }
    assert aiornot_nsfw == {"cat": [1.0], "rocket": [0.0]}
    assert {a["Message"]["key"] for a in alerts()} == {prefix + "cat.png"}
    # Both vendors were sent each image once per endpoint.
    assert len(vendors["aiornot"].requests) == 2 and len(vendors["imagga"].requests) == 4
