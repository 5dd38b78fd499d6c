"""A batch's records share requests: their stored items are read with one BatchGetItem, their fresh vendor
answers cached with one BatchWriteItem, each with what DynamoDB leaves unprocessed handled."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from image_analysis.cache import ContentCache
from image_analysis.handler import handle
from image_analysis.models import Label
from image_analysis.orchestration import Orchestrator, SharedAnswers
from image_analysis.pipeline import Outcome
from image_analysis.providers.base import Provider, ProviderOutput
from image_analysis.store import ResultStore
from tests.unit.test_handler import Context, Logger, Runtime, settings, sqs_batch
from tests.unit.test_orchestration import request as orchestration_request


class BatchClient:
    """DynamoDB's batch calls as a stand-in: items by key, and keys to leave unprocessed once."""

    def __init__(self, items=(), unprocessed_once=()):
        self.items = {(i["pk"]["S"], i["sk"]["S"]): i for i in items}
        self.unprocessed_once = set(unprocessed_once)
        self.requests: list[dict] = []
        self.written: list[dict] = []

    def batch_get_item(self, RequestItems):
        self.requests.append(RequestItems)
        ((table, request),) = RequestItems.items()
        keys = [(k["pk"]["S"], k["sk"]["S"]) for k in request["Keys"]]
        assert len(keys) == len(set(keys)), "DynamoDB refuses duplicate keys"
        assert request["ConsistentRead"] is True
        left = [k for k in keys if k in self.unprocessed_once]
        found = [self.items[k] for k in keys if k in self.items and k not in self.unprocessed_once]
        return {
            "Responses": {table: found},
            "UnprocessedKeys": {table: {"Keys": [{"pk": {"S": p}, "sk": {"S": s}} for p, s in left]}} if left else {},
        }

    def batch_write_item(self, RequestItems):
        self.requests.append(RequestItems)
        ((table, writes),) = RequestItems.items()
        assert len(writes) <= 25, "BatchWriteItem takes at most 25 requests"
        left = [w for w in writes if w["PutRequest"]["Item"]["pk"]["S"] in self.unprocessed_once]
        self.unprocessed_once -= {w["PutRequest"]["Item"]["pk"]["S"] for w in left}
        self.written.extend(w["PutRequest"]["Item"] for w in writes if w not in left)
        return {"UnprocessedItems": {table: left}} if left else {}


def stored(pk, sk="null", status="succeeded"):
    return {"pk": {"S": pk}, "sk": {"S": sk}, "status": {"S": status}, "seq": {"S": "01"}}


def test_a_batch_of_keys_is_read_with_one_request_and_absent_items_map_to_none():
    client = BatchClient([stored("b/one"), stored("b/two", status="failed")])
    store = ResultStore("results", client)
    found = store.get_many([("b/one", "null"), ("b/two", "null"), ("b/none", "null"), ("b/one", "null")])
    assert len(client.requests) == 1
    assert found[("b/one", "null")]["status"] == "succeeded"
    assert found[("b/two", "null")]["status"] == "failed"
    assert found[("b/none", "null")] is None


def test_keys_left_unprocessed_are_absent_so_that_their_records_read_them_themselves():
    client = BatchClient([stored("b/one"), stored("b/two")], unprocessed_once={("b/two", "null")})
    found = ResultStore("results", client).get_many([("b/one", "null"), ("b/two", "null")])
    assert ("b/two", "null") not in found  # neither "no item" nor a stale guess
    assert found[("b/one", "null")]["pk"] == "b/one"


def test_more_than_a_hundred_keys_go_in_requests_of_a_hundred():
    client = BatchClient()
    found = ResultStore("results", client).get_many([(f"b/{i}", "null") for i in range(250)])
    assert [len(next(iter(r.values()))["Keys"]) for r in client.requests] == [100, 100, 50]
    assert len(found) == 250 and set(found.values()) == {None}


def answer(name):
    return ProviderOutput(labels=[Label(name=name, confidence=0.5, provider="imagga")], raw={"tags": {"n": name}})


def test_answers_are_cached_in_requests_of_25_and_unprocessed_ones_are_sent_again():
    client = BatchClient(unprocessed_once={"key-3", "key-27"})
    cache = ContentCache("cache", client, ttl_seconds=60)
    stored_count = cache.put_many([(f"key-{i}", answer(f"label {i}"), 2) for i in range(30)])
    assert stored_count == 30
    assert sorted(item["pk"]["S"] for item in client.written) == sorted(f"key-{i}" for i in range(30))
    # 25 + 5, then the two DynamoDB left unprocessed, each in the retry of its own chunk.
    assert [len(next(iter(r.values()))) for r in client.requests] == [25, 1, 5, 1]
    assert {item["calls"]["N"] for item in client.written} == {"2"}


def test_shared_answers_are_stored_once_when_the_last_record_is_done_and_not_before():
    stores: list[list] = []
    ready = threading.Event()

    def store(answers):
        stores.append(answers)
        ready.set()
        return len(answers)

    with ThreadPoolExecutor(1) as pool:
        shared = SharedAnswers(3, store, pool)
        records = [shared.for_record() for _ in range(3)]
        records[0].append(("k0", answer("a"), 1))
        records[0].done()
        records[0].done()  # a second signal from the same record counts once
        records[1].append(("k1", answer("b"), 1))
        records[1].done()
        assert not ready.wait(0.05) and stores == []  # one record still asking
        records[2].done()
        assert shared.wait(timeout=5) == 2
    assert [[key for key, _, _ in answers] for answers in stores] == [["k0", "k1"]]


def test_wait_stores_what_was_collected_even_when_a_record_never_got_to_ask():
    stores: list[list] = []
    with ThreadPoolExecutor(1) as pool:
        shared = SharedAnswers(2, lambda answers: stores.append(answers) or len(answers), pool)
        first = shared.for_record()
        first.append(("k0", answer("a"), 1))
        first.done()
        assert shared.wait(timeout=5) == 1
    assert len(stores) == 1


class BatchPipeline:
    """A stand-in pipeline with the batch reads: records what each record was given."""

    def __init__(self, known):
        self.known = known
        self.read_calls: list[list] = []
        self.given: dict[str, dict] = {}
        self.stored: list[list] = []
        self.pool = ThreadPoolExecutor(1)
        self.lock = threading.Lock()

    def read_results(self, refs):
        self.read_calls.append([ref.key for ref in refs])
        return self.known

    def shared_answers(self, records):
        return SharedAnswers(records, lambda answers: self.stored.append(answers) or len(answers), self.pool)

    def process(
        self, ref, deadline, attempts=1, alert_lease_seconds=None, existing="unread", cache_writes=None, memory=None
    ):
        with self.lock:
            self.given[ref.key] = {"existing": existing}
        if cache_writes is not None:
            cache_writes.append((f"sha-of-{ref.key}", answer(ref.key), 1))
        return Outcome("done", "succeeded")


def test_the_handler_gives_each_record_its_stored_item_and_caches_the_batch_answers_together():
    pipeline = BatchPipeline({("b/a", "null"): {"status": "failed"}, ("b/b", "null"): None})
    response = handle(sqs_batch(["a", "b", "c"]), Context(60), Runtime(settings(), pipeline), Logger())
    assert response == {"batchItemFailures": []}
    assert pipeline.read_calls == [["a", "b", "c"]]
    assert pipeline.given["a"]["existing"] == {"status": "failed"}
    assert pipeline.given["b"]["existing"] is None
    assert pipeline.given["c"]["existing"] == "unread"  # left unprocessed: the record reads it itself
    (answers,) = pipeline.stored
    assert sorted(key for key, _, _ in answers) == ["sha-of-a", "sha-of-b", "sha-of-c"]


def test_a_single_record_reads_and_caches_on_its_own():
    pipeline = BatchPipeline({})
    handle(sqs_batch(["a"]), Context(60), Runtime(settings(), pipeline), Logger())
    assert pipeline.read_calls == [] and pipeline.stored == []
    assert pipeline.given["a"]["existing"] == "unread"


def test_at_most_two_records_prepare_at_once_and_a_turn_is_given_back_once():
    with ThreadPoolExecutor(1) as pool:
        shared = SharedAnswers(3, lambda answers: 0, pool)
        first, second, third = (shared.for_record() for _ in range(3))
        assert first.take_turn(timeout=1) and second.take_turn(timeout=1)
        got_turn = threading.Event()
        had: list[bool] = []
        waiter = threading.Thread(target=lambda: (had.append(third.take_turn(timeout=10)), got_turn.set()))
        waiter.start()
        assert not got_turn.wait(0.1)  # two are preparing: the third waits
        first.end_turn()
        first.end_turn()  # a second end from the same record gives nothing back twice
        # Well before the third's own wait would run out: the turn came from first's end, not a timeout.
        assert got_turn.wait(2)
        waiter.join()
        assert had == [True]
        fourth = shared.for_record()
        assert fourth.take_turn(timeout=0.2) is False  # second and third still hold the two turns
        quiet = threading.Event()
        watcher = threading.Thread(target=lambda: (shared.wait_until_prepared(5), quiet.set()))
        watcher.start()
        assert not quiet.wait(0.1)  # two records still preparing
        second.end_turn()
        third.end_turn()
        assert quiet.wait(5)
        watcher.join()


class SendsThenWaits(Provider):
    """A vendor whose request leaves at once and whose answer comes only when the test says so."""

    name = "a"
    capabilities = frozenset({"labels"})

    def __init__(self):
        self.enabled = self.capabilities
        self.answer = threading.Event()

    @classmethod
    def create(cls, deps):  # pragma: no cover - not used here
        raise NotImplementedError

    def analyze(self, request):
        request.deadline.meter.record(100)
        self.answer.wait(5)
        return answer("sent")


def test_a_records_turn_ends_as_its_vendor_request_leaves_not_when_the_answer_comes():
    vendor = SendsThenWaits()
    planner = Orchestrator({"a": vendor}, settings())
    with ThreadPoolExecutor(1) as pool:
        shared = SharedAnswers(3, lambda answers: 0, pool)
        records = [shared.for_record() for _ in range(3)]
        records[0].take_turn(timeout=1)
        records[1].take_turn(timeout=1)
        image_request = orchestration_request()
        running = threading.Thread(
            target=lambda: planner.run(image_request, planner.prefetch(image_request.image.sha256, records[0]))
        )
        running.start()
        got_turn = threading.Event()
        had: list[bool] = []
        threading.Thread(target=lambda: (had.append(records[2].take_turn(timeout=10)), got_turn.set())).start()
        # The vendor has not answered, yet the next record prepares: its turn came when the request left.
        assert got_turn.wait(2) and had == [True]
        vendor.answer.set()
        running.join(5)
