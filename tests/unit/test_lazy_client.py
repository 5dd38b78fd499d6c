"""The alerts client is built only when an alert is published, and only once."""

import threading
import time

from image_analysis.runtime import LazyClient


class _Client:
    def publish(self, **kwargs):
        return {"MessageId": "m-1", **kwargs}


def test_nothing_is_built_until_first_use_and_then_once_across_threads():
    built = []
    start = threading.Barrier(8)

    def create():
        built.append(1)
        time.sleep(0.2)  # as long as building a boto3 client can take: every thread arrives meanwhile
        return _Client()

    client = LazyClient(create)
    assert built == []

    def use():
        start.wait()  # all eight ask at the same moment
        client.publish(TopicArn="t")

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert built == [1]
    assert client.publish(TopicArn="t") == {"MessageId": "m-1", "TopicArn": "t"}
