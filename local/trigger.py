"""The Lambda SQS trigger of a live local stack: every queue the function is wired to, polled for good.

The template wires the function to its queues with SQS event sources (``LocalStack.triggers``: the
queue and its ``BatchSize``). As the Lambda service does, this receives batches with long polling,
invokes the handler, deletes what succeeded and leaves the ``batchItemFailures`` on the queue; the
queue's redrive policy moves a message to the dead-letter queue after ``maxReceiveCount`` deliveries.
A failed message comes back after ``retry_delay_seconds`` instead of the queue's visibility timeout
(720 s), so a retry is seen while one watches. An invocation that raises is reported and its batch
retried, as Lambda would; the poller goes on.

The queues are polled in turn from one thread: the handler's invocations never overlap, so its
captured metric output and the printed lines stay in order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import boto3

from local.driver import Handler, Invocation, InvocationFailed, QueueDriver
from local.stack import LocalStack

IDLE_WAIT_SECONDS = 1  # long polling per queue while all are empty: how soon a stop is noticed
RETRY_DELAY_SECONDS = 2


class SqsTrigger:
    def __init__(
        self,
        handler: Handler,
        stack: LocalStack,
        on_invocation: Callable[[Invocation], None] | None = None,
        retry_delay_seconds: int = RETRY_DELAY_SECONDS,
    ) -> None:
        sqs = boto3.client("sqs")
        self.drivers = [
            QueueDriver(
                handler,
                sqs.get_queue_url(QueueName=trigger.queue_name)["QueueUrl"],
                batch_size=trigger.batch_size,
                retry_delay_seconds=retry_delay_seconds,
                on_invocation=on_invocation,
            )
            for trigger in stack.triggers
        ]
        if not self.drivers:
            raise ValueError(f"the function of stack {stack.name} has no SQS event source")

    def describe(self) -> str:
        return ", ".join(f"{d.queue_url.rsplit('/', 1)[-1]} (batches of {d.batch_size})" for d in self.drivers)

    def poll(self, wait_seconds: int = 0) -> int:
        """One receive from each queue (and an invocation for what came); the messages received."""
        received = 0
        for driver in self.drivers:
            try:
                received += driver.poll_once(wait_seconds=wait_seconds)[0]
            except InvocationFailed:
                received += 1  # reported by on_invocation; Lambda retries the batch, and so does the queue
        return received

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; long polling while every queue is empty."""
        wait = 0
        while not stop.is_set():
            wait = 0 if self.poll(wait_seconds=wait) else IDLE_WAIT_SECONDS
