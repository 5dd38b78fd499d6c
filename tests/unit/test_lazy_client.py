"""The alerts client is built only when an alert is published, and only once."""

import threading

from image_analysis.runtime import LazyClient


class _Client:
    def publish(self, **kwargs):
        return {"MessageId": "m-1", **kwargs}


def test_nothing_is_built_until_first_use_and_then_once_across_threads():
    built = []

    def create():
        built.append(1)
        return _Client()

    client = LazyClient(create)
    assert built == []
    threads = [threading.Thread(target=lambda: client.publish(TopicArn="t")) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert built == [1]
    assert client.publish(TopicArn="t") == {"MessageId": "m-1", "TopicArn": "t"}
