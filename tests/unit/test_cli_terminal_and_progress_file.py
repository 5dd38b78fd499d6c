"""What the command line prints and saves: keys never drive the terminal, progress files are private and whole."""

from __future__ import annotations

import json
import os
import stat

import pytest

from image_analysis_cli import queries
from image_analysis_cli import state as state_module
from image_analysis_cli.main import run
from image_analysis_cli.state import BackfillState
from image_analysis_cli.terminal import safe_json, shown

# A key that clears the screen and sets the window title, one that overwrites its own line, one whose
# displayed order is reversed (U+202E), one with a C1 CSI (U+009B) and one with a line separator.
HOSTILE = [
    "photos/\x1b[2J\x1b]0;pwned\x07cat.jpg",
    "photos/real.jpg\rphotos/fake.jpg",
    "photos/\u202egpj.exe",
    "photos/\x9b31mred.jpg",
    "photos/a\u2028b.jpg",
    "photos/tab\there.jpg\n",
]


def _no_control(text: str) -> bool:
    return not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u202e\u2028" for c in text)


@pytest.mark.parametrize("key", HOSTILE)
def test_a_key_with_control_characters_is_printed_escaped(key):
    printed = shown(key)
    assert _no_control(printed)
    # Still readable, and the escaped form says what was there.
    assert printed.startswith("photos/")
    assert printed.encode("ascii", "ignore").decode().count("\\") >= 1


def test_the_escapes_are_the_familiar_ones_and_a_backslash_cannot_fake_them():
    assert shown("a\x1bb\nc\u202ed") == "a\\x1bb\\nc\\u202ed"
    # A key that holds a backslash and "n" literally prints differently from one with a newline.
    assert shown("x\\n\n") == "x\\\\n\\n"
    assert shown("x\\n") == "x\\n"  # nothing to escape: printed as it is


@pytest.mark.parametrize("key", ["photos/cat.jpg", "fotos/Ünïcödé 猫 🐈.jpg", "a+b=c&d.jpg", "dir\\win.jpg"])
def test_ordinary_keys_are_printed_as_they_are(key):
    assert shown(key) == key


@pytest.mark.parametrize("key", HOSTILE)
def test_json_output_is_the_same_value_without_raw_control_characters(key):
    document = {"key": key, "labels": [{"name": "Ünïcödé"}]}
    text = safe_json(document, indent=2)
    assert _no_control(text.replace("\n", "").replace("  ", ""))
    assert json.loads(text) == document
    assert "Ünïcödé" in text  # no blanket ASCII escaping


def test_an_error_line_quoting_a_key_is_escaped_and_stays_one_line(capsys, monkeypatch):
    monkeypatch.setattr(queries, "result", lambda *_args: None)  # the table has no result for it
    code = run(["--table", "t", "--queue-url", "q", "results", "s3://photos/\x1b[2J\nsecond line"])
    err = capsys.readouterr().err
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line == "Error: no result for s3://photos/\\x1b[2J\\nsecond line"


# -- the progress file ---------------------------------------------------------------------------------


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_progress_file_is_private_and_nothing_else_is_left_beside_it(tmp_path):
    path = tmp_path / "state" / "backfill.json"
    saved = BackfillState(path)
    saved.advance("photos/0009.jpg", 10)
    assert json.loads(path.read_text()) == {"last_key": "photos/0009.jpg", "enqueued": 10, "done": False}
    assert _mode(path) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["backfill.json"]


def test_the_new_file_is_written_whole_in_the_same_folder_before_it_replaces_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "backfill.json"
    saved = BackfillState(path)
    seen = []
    real_replace = os.replace

    def replace(source, target):
        # What is about to become the progress file: complete, private, beside its target.
        with open(source) as written:
            seen.append((os.path.dirname(source), _mode(source), json.load(written)))
        real_replace(source, target)

    monkeypatch.setattr(state_module.os, "replace", replace)
    saved.advance("k", 1)
    assert seen == [(str(tmp_path), 0o600, {"last_key": "k", "enqueued": 1, "done": False})]


def test_an_interrupted_save_keeps_the_previous_progress(tmp_path, monkeypatch):
    path = tmp_path / "backfill.json"
    saved = BackfillState(path)
    saved.advance("photos/0009.jpg", 10)

    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(state_module.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        saved.advance("photos/0019.jpg", 10)
    assert json.loads(path.read_text())["last_key"] == "photos/0009.jpg"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backfill.json"]  # the half-done copy is gone


def test_a_link_planted_under_a_predictable_name_is_never_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    path = tmp_path / "backfill.json"
    for planted in ("backfill.tmp", "backfill.json.tmp", ".backfill.json.tmp"):
        (tmp_path / planted).symlink_to(victim)
    BackfillState(path).advance("k", 1)
    assert victim.read_text() == "keep me"
    assert json.loads(path.read_text())["last_key"] == "k"
