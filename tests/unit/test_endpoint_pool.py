"""A provider's requests for several images at once: each image has its own allowance of requests in
flight (``<VENDOR>_MAX_CONCURRENCY``), so a batch's images wait for the vendor side by side."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from image_analysis.providers.base import ProviderOutput
from image_analysis.providers.fanout import EndpointPool, fan_out

IMAGES = 4
PARTS = ("tags", "nsfw", "colors")


def test_every_image_has_its_own_allowance_and_never_exceeds_it() -> None:
    pool = EndpointPool("vendor", per_analysis=2, analyses=IMAGES)
    # Every image's first two requests must be in flight together: with one allowance for the container
    # (two requests at a time for all four images) the barrier is never reached and breaks.
    together = threading.Barrier(IMAGES * 2, timeout=5)
    lock = threading.Lock()
    in_flight: dict[int, int] = {}
    most: dict[int, int] = {}
    reached: list[bool] = []

    def analyze(image: int) -> ProviderOutput:
        def call(part: str) -> ProviderOutput:
            with lock:
                in_flight[image] = in_flight.get(image, 0) + 1
                most[image] = max(most.get(image, 0), in_flight[image])
            try:
                if part != "colors":
                    together.wait()
                    reached.append(True)
                return ProviderOutput(raw={part: {"image": image}})
            finally:
                with lock:
                    in_flight[image] -= 1

        return fan_out("vendor", PARTS, call, executor=pool)

    with ThreadPoolExecutor(max_workers=IMAGES) as records:
        outputs = list(records.map(analyze, range(IMAGES)))

    assert len(reached) == IMAGES * 2
    assert most == dict.fromkeys(range(IMAGES), 2)
    assert [sorted(output.raw) for output in outputs] == [sorted(PARTS)] * IMAGES
