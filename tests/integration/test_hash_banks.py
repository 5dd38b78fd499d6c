"""Hash banks end to end on the stack in the emulator: the command line, the analysis function, the alert.

Bank entries come from the PDQ reference images (tests/fixtures/pdq), which no other test uploads; each
test uses banks of its own and takes its entries out again, since every function matches every bank.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from PIL import Image, PngImagePlugin

from image_analysis.analyzers.pdq import pdq_hash, to_hex
from image_analysis.banks.api import add_hash, add_to_rejected, remove_from_rejected
from image_analysis.banks.matcher import BankMatcher
from image_analysis.banks.model import REJECTED, Entry, LowQuality
from image_analysis.banks.store import BankStore
from image_analysis_cli.main import cli, run
from local.driver import LambdaContext, QueueDriver, load_handler
from local.sandbox import VendorSandbox
from tests.integration.test_pipeline_end_to_end import item, s3_event, sqs_event
from tests.unit.test_bank_screening import animation

pytestmark = pytest.mark.integration
PDQ = Path(__file__).resolve().parents[1] / "fixtures" / "pdq"


def jpeg(image: Image.Image, quality: int = 80) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def generated_png(image: Image.Image) -> bytes:
    """The picture with Automatic1111's generator text: builtin flags it ai_generated."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a bridge at dusk\nSteps: 30, Sampler: DPM++ 2M, CFG scale: 7, Seed: 1234")
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def bridge(name: str = "bridge-1-original.jpg") -> Image.Image:
    return Image.open(PDQ / name)


def cli_run(stack, *args):
    return CliRunner().invoke(cli, ["--stack-name", stack.name, "bank", *args], catch_exceptions=False)


@pytest.fixture
def store(stack) -> BankStore:
    return BankStore(
        stack.outputs["BanksTableName"],
        boto3.client("dynamodb"),
        boto3.client("s3"),
        stack.outputs["BanksBucketName"],
    )


@pytest.fixture
def banks(store):
    """Creates banks with unique names; afterwards every entry they hold is removed again (so that later
    tests' functions, which match every bank, are not affected)."""
    created: list[str] = []

    def create(flag: str = "known_bad", distance: int = 31) -> str:
        name = f"t-{uuid.uuid4().hex[:8]}"
        store.create(name, distance, flag)
        created.append(name)
        return name

    yield create
    for name in [*created, REJECTED]:
        if store.get(name) is None:
            continue
        _bank, entries = store.load(name)
        for value in entries:
            store.remove(name, value)


@pytest.fixture
def fresh_handler(stack, monkeypatch):
    """A new container after each change of the banks: its first image loads them (no poll wait)."""

    def make(**env: str):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return load_handler()

    return make


def upload(stack, s3, handler, key: str, body: bytes, sequencer: str = "0055AED6DCD90281E5") -> dict:
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    event = sqs_event(s3_event(stack.bucket, key, etag, len(body), sequencer))
    assert handler(event, LambdaContext()) == {"batchItemFailures": []}
    return event


def test_a_turned_and_recompressed_copy_of_a_banked_image_is_flagged_alerted_once_and_quarantined(
    stack, s3, table, banks, fresh_handler, alerts, prefix, tmp_path
):
    name = banks("known_bad")
    original = tmp_path / "original.jpg"
    original.write_bytes((PDQ / "bridge-1-original.jpg").read_bytes())
    added = cli_run(stack, "add", name, str(original))
    assert added.exit_code == 0, added.output
    assert "quality 100" in added.output

    handler = fresh_handler(QUARANTINE_TAGS="true")
    copy = bridge("bridge-3-rotate-180.jpg").resize((640, 402))  # Meta's rotated file, smaller, recompressed
    key = f"{prefix}reupload.jpg"
    event = upload(stack, s3, handler, key, jpeg(copy, 60))

    stored = item(table, stack.bucket, key)
    assert stored["flags"] == ["known_bad"]
    assert stored["pdq"] == pdq_hash(Image.open(io.BytesIO(jpeg(copy, 60)))).hex
    assert int(stored["pdq_quality"]) >= 50
    [match] = stored["matches"]
    assert match["bank"] == name and int(match["distance"]) <= 31 and match["label"] == str(original)
    sent = alerts()
    assert len(sent) == 1
    assert sent[0]["Message"]["flags"] == ["known_bad"] and sent[0]["Message"]["matches"][0]["bank"] == name
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=stack.bucket, Key=key)["TagSet"]}
    assert tags == {"moderation": "flagged", "flags": "known_bad"}

    # The same event delivered again: a duplicate, no second alert.
    assert handler(event, LambdaContext()) == {"batchItemFailures": []}
    assert alerts() == []
    listed = CliRunner().invoke(cli, ["--stack-name", stack.name, "flagged", "--flag", "known_bad"])
    assert f"known_bad  s3://{stack.bucket}/{key}" in listed.output


def test_every_rotation_and_flip_matches_and_unrelated_images_do_not(
    stack, s3, table, banks, fresh_handler, prefix, tmp_path
):
    name = banks("none")  # matches are recorded; nothing is flagged
    cli_run(stack, "import", name, str(hash_list(tmp_path, bridge(), "bridge")))
    handler = fresh_handler()
    photo = bridge().convert("RGB")
    for transpose in Image.Transpose:
        key = f"{prefix}{transpose.name.lower()}.jpg"
        upload(stack, s3, handler, key, jpeg(photo.transpose(transpose).resize((800, 502)), 70))
        stored = item(table, stack.bucket, key)
        assert [m["bank"] for m in stored["matches"]] == [name], transpose.name
        assert stored["flags"] == []
    for unrelated in ("q0122.jpg", "q0291.jpg", "wee.jpg"):
        key = f"{prefix}{unrelated}"
        upload(stack, s3, handler, key, (PDQ / unrelated).read_bytes())
        assert item(table, stack.bucket, key)["matches"] == [], unrelated


def hash_list(folder: Path, image: Image.Image, label: str) -> Path:
    """A hash list as ``bank import`` reads it: the image's hash and a label."""
    path = folder / f"list-{uuid.uuid4().hex[:8]}.txt"
    path.write_text(f"{pdq_hash(image).hex},{label}\n")
    return path


def test_a_low_quality_hash_is_neither_added_nor_matched(
    stack, s3, table, banks, store, fresh_handler, prefix, tmp_path
):
    name = banks("known_bad")
    flat = Image.linear_gradient("L").resize((300, 300))  # a smooth ramp: PDQ quality well under 50
    path = tmp_path / "flat.png"
    flat.save(path)
    refused = cli_run(stack, "add", name, str(path))
    assert refused.exit_code == 1
    assert f"Not added: {path}: PDQ quality" in refused.output and "under 50" in refused.output
    assert store.load(name)[1] == {}
    with pytest.raises(LowQuality, match="under 50"):
        add_hash(store, name, pdq_hash(flat).hex, pdq_hash(flat).quality)

    # Its hash banked anyway (a list names hashes without their quality): the image still does not match.
    store.compact(name, [Entry(pdq_hash(flat).value, "from a list")])
    key = f"{prefix}flat.png"
    buffer = io.BytesIO()
    flat.save(buffer, format="PNG")
    upload(stack, s3, fresh_handler(), key, buffer.getvalue())
    stored = item(table, stack.bucket, key)
    assert int(stored["pdq_quality"]) < 50
    assert stored["matches"] == [] and stored["flags"] == []


def test_a_rescan_adds_known_bad_to_an_older_flagged_result_with_exactly_one_more_alert(
    stack, s3, table, banks, fresh_handler, alerts, prefix, tmp_path
):
    name = banks("known_bad")
    handler = fresh_handler()
    # Uploaded before the bank knew the picture: a mirrored, generated-looking copy, flagged ai_generated.
    key = f"{prefix}mirrored.png"
    upload(stack, s3, handler, key, generated_png(bridge("bridge-6-flipy.jpg").resize((800, 502))))
    before = item(table, stack.bucket, key)
    assert before["flags"] == ["ai_generated"] and before["matches"] == []
    [first] = alerts()

    original = tmp_path / "bridge.jpg"
    original.write_bytes((PDQ / "bridge-1-original.jpg").read_bytes())
    assert cli_run(stack, "add", name, str(original)).exit_code == 0
    scanned = cli_run(stack, "rescan", name)
    assert scanned.exit_code == 0, scanned.output
    assert f"maybe  s3://{stack.bucket}/{key}" in scanned.output  # a mirror: only its estimate was near
    QueueDriver(handler, stack.queue_urls).drain()

    after = item(table, stack.bucket, key)
    assert after["flags"] == ["ai_generated", "known_bad"]
    assert [m["bank"] for m in after["matches"]] == [name]
    # (Results of earlier tests in this session may show the same bridge: only this key's alerts count.)
    [second] = [a for a in alerts() if a["Message"]["key"] == key]
    assert second["Message"]["flags"] == ["ai_generated", "known_bad"]
    assert second["Message"]["alert_id"] != first["Message"]["alert_id"] == before["alert_id"]
    assert after["alert_id"] == second["Message"]["alert_id"]

    # Run again, and the same request delivered twice: nothing more goes out.
    again = cli_run(stack, "rescan", name)
    assert key not in again.output
    rematch = {
        **s3_event(stack.bucket, key, after["etag"], int(after["size_bytes"]), "0055AED6DCD90281E5"),
        "imageAnalysis": {"rematch": {"banks": [name]}},
    }
    assert handler(sqs_event(rematch), LambdaContext()) == {"batchItemFailures": []}
    QueueDriver(handler, stack.queue_urls).drain()
    assert [a for a in alerts() if a["Message"]["key"] == key] == []


def test_a_rescan_finds_a_new_entry_matching_a_later_frame_of_a_stored_animation_and_alerts_once(
    stack, s3, table, banks, fresh_handler, alerts, prefix, tmp_path
):
    name = banks("known_bad")
    handler = fresh_handler()
    key = f"{prefix}anim.gif"
    upload(stack, s3, handler, key, animation(bad_frame=3))
    before = item(table, stack.bucket, key)
    assert before["flags"] == [] and before["matches"] == [] and int(before["frames"]) == 5
    assert [a for a in alerts() if a["Message"]["key"] == key] == []

    # The bridge enters the bank after the upload: the stored hash (the first frame's) is far from it.
    original = tmp_path / "bridge.jpg"
    original.write_bytes((PDQ / "bridge-1-original.jpg").read_bytes())
    assert cli_run(stack, "add", name, str(original)).exit_code == 0
    scanned = cli_run(stack, "rescan", name)
    assert scanned.exit_code == 0, scanned.output
    assert f"maybe  s3://{stack.bucket}/{key}" in scanned.output
    QueueDriver(handler, stack.queue_urls).drain()

    after = item(table, stack.bucket, key)
    assert after["flags"] == ["known_bad"]
    [match] = after["matches"]
    assert match["bank"] == name and int(match["frame"]) == 3 and int(match["distance"]) <= 31
    [alert] = [a for a in alerts() if a["Message"]["key"] == key]
    assert alert["Message"]["flags"] == ["known_bad"] and int(alert["Message"]["matches"][0]["frame"]) == 3

    # Matched now: a second rescan passes it by, and the request delivered again alerts nothing more.
    assert key not in cli_run(stack, "rescan", name).output
    rematch = {
        **s3_event(stack.bucket, key, after["etag"], int(after["size_bytes"]), "0055AED6DCD90281E5"),
        "imageAnalysis": {"rematch": {"banks": [name]}},
    }
    assert handler(sqs_event(rematch), LambdaContext()) == {"batchItemFailures": []}
    QueueDriver(handler, stack.queue_urls).drain()
    assert [a for a in alerts() if a["Message"]["key"] == key] == []


def test_bank_changes_reach_a_running_matcher_at_its_next_poll_without_reloading_the_snapshot(store, banks):
    name = banks("known_bad")
    now = [1000.0]
    reads: list[str] = []
    s3 = boto3.client("s3")
    s3.meta.events.register("provide-client-params.s3.GetObject", lambda params, **_: reads.append(params["Key"]))
    matcher = BankMatcher(
        BankStore(store.table_name, boto3.client("dynamodb"), s3, store.bucket), poll_seconds=30, clock=lambda: now[0]
    )
    photo = pdq_hash(bridge())
    other = pdq_hash(Image.open(PDQ / "q0122.jpg"))
    store.compact(name, [Entry(other.value, "in the snapshot")])
    assert matcher.match([photo]).matches == ()  # first use: the banks are loaded
    assert len(reads) >= 1
    reads.clear()

    add_hash(store, name, photo.hex, photo.quality, label="added later")
    now[0] += 29
    assert matcher.match([photo]).matches == ()  # before the poll interval: the view it had
    now[0] += 2
    outcome = matcher.match([photo])
    assert [(m.bank, m.label) for m in outcome.matches] == [(name, "added later")] and outcome.known_bad
    assert reads == []  # only the change was read, not the snapshot again

    store.remove(name, photo.value)
    now[0] += 31
    assert matcher.match([photo]).matches == ()
    assert [m.label for m in matcher.match([other]).matches] == ["in the snapshot"]

    store.compact(name)  # a new snapshot: loaded at the next poll, once
    now[0] += 31
    assert [m.label for m in matcher.match([other]).matches] == ["in the snapshot"]
    assert len([key for key in reads if key.startswith(f"banks/{name}/")]) == 1


def test_the_rejected_bank_is_created_on_first_use_and_an_appeal_takes_the_hash_out(store, banks):
    banks()  # registers the clean-up, which also empties 'rejected'
    photo = pdq_hash(bridge())
    delta = add_to_rejected(
        store, photo.hex, photo.quality, label="s3://uploads/bad.jpg", source="arn:aws:iam::1:user/mod"
    )
    rejected = store.require(REJECTED)
    assert rejected.flag == "known_bad" and rejected.distance == 31
    assert store.load(REJECTED)[1][photo.value] == "s3://uploads/bad.jpg"
    assert store.deltas(REJECTED, delta.seq - 1)[0].source == "arn:aws:iam::1:user/mod"
    remove_from_rejected(store, photo.hex)
    assert photo.value not in store.load(REJECTED)[1]
    with pytest.raises(LowQuality):
        add_to_rejected(store, None, None)


def skipping_handler(fresh_handler, base_url):
    """builtin and the Imagga sandbox, with SKIP_VENDORS_ON_MATCH on."""
    return fresh_handler(
        PROVIDERS="builtin,imagga",
        IMAGGA_BASE_URL=base_url,
        IMAGGA_API_KEY="sandbox-key",
        IMAGGA_API_SECRET="sandbox-secret",
        SKIP_VENDORS_ON_MATCH="true",
    )


def test_skip_vendors_on_match_skips_the_paid_calls_for_a_known_bad_image_only(
    stack, s3, table, banks, fresh_handler, prefix, tmp_path
):
    name = banks("known_bad")
    cli_run(stack, "import", name, str(hash_list(tmp_path, bridge(), "known")))
    with VendorSandbox("imagga") as base_url:
        handler = skipping_handler(fresh_handler, base_url)
        upload(stack, s3, handler, f"{prefix}known.jpg", jpeg(bridge(), 75))
        known = item(table, stack.bucket, f"{prefix}known.jpg")
        upload(stack, s3, handler, f"{prefix}other.jpg", (PDQ / "q0291.jpg").read_bytes())
        other = item(table, stack.bucket, f"{prefix}other.jpg")
    assert known["flags"] == ["known_bad"]
    runs = {p["name"]: p for p in known["providers"]}
    assert runs["imagga"]["status"] == "skipped" and int(runs["imagga"]["calls"]) == 0
    assert known["status"] == "partial"  # a capability had no answer: the vendor was not asked
    assert not known.get("labels")
    assert {p["name"]: p["status"] for p in other["providers"]}["imagga"] == "succeeded"


def test_skip_vendors_on_match_sends_no_frame_of_an_animation_whose_later_frame_is_known_bad(
    stack, s3, table, banks, fresh_handler, prefix, tmp_path
):
    name = banks("known_bad")
    cli_run(stack, "import", name, str(hash_list(tmp_path, bridge(), "known")))
    with VendorSandbox("imagga") as base_url:
        handler = skipping_handler(fresh_handler, base_url)
        upload(stack, s3, handler, f"{prefix}anim.gif", animation(bad_frame=3))
    stored = item(table, stack.bucket, f"{prefix}anim.gif")
    assert stored["flags"] == ["known_bad"]
    assert stored["frames_analyzed"] == [0, 1, 2, 3, 4]
    [match] = stored["matches"]
    assert (match["bank"], match["label"], int(match["frame"])) == (name, "known", 3)
    # Skipping is per image: the match in frame 3 kept every frame, the first included, from the vendor.
    runs = {p["name"]: p for p in stored["providers"]}
    assert runs["imagga"]["status"] == "skipped" and int(runs["imagga"]["calls"]) == 0
    assert stored["status"] == "partial"


def test_the_command_line_creates_lists_imports_matches_removes_and_compacts(stack, store, tmp_path, capsys):
    name = f"t-{uuid.uuid4().hex[:8]}"
    assert cli_run(stack, "create", name, "--distance", "20").exit_code == 0
    photo = pdq_hash(bridge())
    listing = tmp_path / "list.csv"
    listing.write_text(
        "collab,signal_type,signal_str,category,tags\n"
        f"Sample Data,pdq,{photo.hex},ADULT,tag1 tag2\n"
        "Sample Data,video_md5,d41d8cd98f00b204e9800998ecf8427e,ADULT,\n"
        "Sample Data,pdq,not-a-hash,ADULT,\n"
    )
    imported = cli_run(stack, "import", name, str(listing))
    assert imported.exit_code == 0, imported.output
    assert "Imported 1 hash(es)" in imported.output and "1 row(s) of other signal types" in imported.output
    assert "line 4" in imported.stderr

    listed = cli_run(stack, "list")
    assert f"{name}  flag none  distance 20  1 in its snapshot" in listed.output
    matched = cli_run(stack, "match", str(PDQ / "bridge-5-flipx.jpg"))
    assert f"{name}: " in matched.output and "(Sample Data: ADULT tag1 tag2)" in matched.output
    source = f"bank-src-{uuid.uuid4().hex[:8]}"  # not the uploads bucket: nothing is analyzed
    boto3.client("s3").create_bucket(Bucket=source)
    boto3.client("s3").put_object(Bucket=source, Key="q/wee.jpg", Body=(PDQ / "wee.jpg").read_bytes())
    added = cli_run(stack, "add", name, f"s3://{source}/q/wee.jpg")
    assert added.exit_code == 0 and f"from s3://{source}/q/wee.jpg to {name}" in added.output
    assert f"{name}: 0 bits (s3://{source}/q/wee.jpg)" in cli_run(stack, "match", str(PDQ / "wee.jpg")).output
    store.remove(name, pdq_hash(Image.open(PDQ / "wee.jpg")).value)
    removed = cli_run(stack, "remove", name, to_hex(photo.value))
    assert removed.exit_code == 0 and "Removed" in removed.output
    assert "No bank entry" in cli_run(stack, "match", str(PDQ / "bridge-5-flipx.jpg")).output
    compacted = cli_run(stack, "compact", name)
    assert f"{name}: new snapshot with 0 entries" in compacted.output
    assert run(["--stack-name", stack.name, "bank", "create", name]) == 2
    assert f"a bank named '{name}' exists already" in capsys.readouterr().err


def test_a_snapshot_too_big_for_the_heap_is_mapped_from_disk_one_file_per_bank(store, banks, tmp_path):
    name = banks("known_bad")
    photo = pdq_hash(bridge())
    store.compact(name, [Entry(photo.value, "mapped")])
    now = [0.0]
    matcher = BankMatcher(store, clock=lambda: now[0], map_dir=tmp_path, map_above_bytes=0)
    assert [m.label for m in matcher.match([photo]).matches] == ["mapped"]
    first = list((tmp_path / name).iterdir())
    assert len(first) == 1 and first[0].stat().st_size == store.require(name).snapshot.size

    store.compact(name, [Entry(pdq_hash(Image.open(PDQ / "q0122.jpg")).value, "second")])
    now[0] += 31
    assert [m.label for m in matcher.match([photo]).matches] == ["mapped"]  # through the new file
    [second] = (tmp_path / name).iterdir()
    assert second != first[0] and second.name == store.require(name).snapshot.key.rsplit("/", 1)[-1]
