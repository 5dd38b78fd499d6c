"""The command line's arguments, tokens, progress file and queue errors, without AWS."""

from __future__ import annotations

import base64
import json

import click
import pytest

from image_analysis_cli import queries
from image_analysis_cli.enqueue import QueueError, QueueSender
from image_analysis_cli.main import IsoDate, cli, run
from image_analysis_cli.resources import CliError
from image_analysis_cli.state import BackfillState

# Table and queue given, so no command below needs the stack's outputs (or AWS) before it fails.
OFFLINE = ["--table", "results", "--queue-url", "https://sqs.us-east-1.amazonaws.com/1/analyze"]


@pytest.fixture(autouse=True)
def no_aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: any call would fail loudly


def one_line_error(capsys, *argv):
    """The exit code and the error line; click's usage lines may come before it, a traceback never."""
    code = run([*OFFLINE, *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("Error: "), captured.err
    return code, last


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["flagged", "--flag", "nsfw", "--next", "garbage"], "is not a token printed by a previous page"),
        (["flagged", "--flag", "nsfw", "--next", "é"], "is not a token printed by a previous page"),
        (["flagged", "--flag", "nsfw", "--since", "yesterday"], "is not a date (YYYY-MM-DD)"),
        (["flagged", "--flag", "nudity"], "'nudity' is not one of"),
        (["reprocess", "--flagged", "nsfw", "--since", "2026-13-01", "--reason", "x"], "is not a date"),
        (["backfill", "photos/"], "is not an s3://bucket[/prefix] URL"),
        (["backfill", "s3://b/p/", "--dry-run", "--price", "imagga"], "is not PROVIDER=USD"),
        (["results", "s3://bucket-only"], "names no key"),
        (["find", "--sha256", "abc"], "must be 64 hexadecimal digits"),
        (["reprocess", "--reason", "x"], "choose objects"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_code_2(capsys, argv, message):
    code, err = one_line_error(capsys, *argv)
    assert code == 2
    assert message in err


def test_a_token_of_another_listing_is_refused():
    token = base64.urlsafe_b64encode(json.dumps({"month": "1999-01"}).encode()).decode()
    with pytest.raises(CliError, match="another --since"):
        queries.flagged_page("results", "nsfw", "2026-01-01", 10, token)
    not_a_state = base64.urlsafe_b64encode(json.dumps(["month"]).encode()).decode()
    with pytest.raises(CliError, match="not a token"):
        queries.flagged_page("results", "nsfw", "2026-01-01", 10, not_a_state)


def test_the_default_window_is_a_few_month_partitions():
    since = queries.default_since()
    months = list(queries._months(since))
    assert 3 <= len(months) <= 4  # 90 days span three or four months; 1970-01-01 spanned 684
    assert months[-1] == since[:7]


def test_dates_become_what_analyzed_at_compares_with():
    date = IsoDate()
    assert date.convert("2026-11-01", None, None) == "2026-11-01"
    assert date.convert("2026-11-01T12:00:00+02:00", None, None) == "2026-11-01T10:00:00.000Z"
    with pytest.raises(click.BadParameter):
        date.convert("01/11/2026", None, None)


def test_a_damaged_progress_file_is_a_clear_error_and_restart_ignores_it(tmp_path, capsys):
    state = tmp_path / "state.json"
    state.write_text("{not json")
    code, err = one_line_error(capsys, "backfill", "s3://b/p/", "--state-file", str(state))
    assert code == 2
    assert "is not a backfill progress file" in err and "--restart" in err
    assert BackfillState(state, fresh=True).enqueued == 0
    assert json.loads(state.read_text()) == {"last_key": "", "enqueued": 0, "done": False}


def test_a_progress_file_that_cannot_be_written_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, err = one_line_error(capsys, "backfill", "s3://b/p/", "--state-file", str(blocker / "state.json"))
    assert code == 2
    assert str(blocker) in err


class RefusingQueue:
    """SendMessageBatch that accepts the first ``accept`` messages and refuses the rest, as SQS reports it."""

    def __init__(self, accept: int) -> None:
        self.accept = accept
        self.received: list[str] = []

    def send_message_batch(self, QueueUrl, Entries):  # boto3's parameter names
        ok, failed = [], []
        for entry in Entries:
            if len(self.received) < self.accept:
                self.received.append(entry["MessageBody"])
                ok.append({"Id": entry["Id"]})
            else:
                failed.append({"Id": entry["Id"], "Code": "KMS.ThrottlingException", "Message": "Rate exceeded"})
        return {"Successful": ok, "Failed": failed}


def test_messages_the_queue_keeps_refusing_are_a_queue_error_with_its_reason():
    queue = RefusingQueue(accept=15)
    sender = QueueSender("https://sqs.us-east-1.amazonaws.com/1/analyze", sqs_client=queue)
    with pytest.raises(QueueError, match=r"refused 5 message\(s\) after 3 tries \(Rate exceeded\); 15 were sent"):
        sender.send(str(i) for i in range(20))
    assert queue.received == [str(i) for i in range(15)]  # the retried five were not sent twice


def test_every_option_and_command_explains_itself():
    assert cli.help and all(p.help for p in cli.params if isinstance(p, click.Option))
    for name, command in cli.commands.items():
        assert command.short_help and command.help, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts}"
