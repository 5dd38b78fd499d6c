"""Human review of flagged results: a queue, decisions, appeals, an audit log and the delivery gate.

    pipeline ──(intake: review.status=pending, queue item)──► review queue table
    moderator ──(CLI or HTTP API: decide)──► one DynamoDB transaction:
        result item's review (conditional on the status it was taken from)
        + queue item + audit record (append-only, with an outbox flag)
    ──► publish ``image.reviewed`` on the decisions topic, then clear the outbox flag
        (a crash in between: the scheduled sweep publishes what is still flagged)
    decisions topic ──► effects queue ──► review function (its own role): tags, gate, delete, hooks
    moderators' console (``console``): the review function serves its page and the same routes under
        /console/api (Cognito sign-in); the intake writes its thumbnails (``thumbnails``)

Errors (``errors.py``)::

    ReviewError                 one line, shown as it is (CLI exit 2)
    ├── ReviewNotFound          no review for that object version (HTTP 404)
    ├── InvalidDecision         a bad argument: unknown decision, a reason missing (HTTP 400)
    └── DecisionRefused         the review is not in a status the decision can be taken from, or was
                                decided meanwhile; carries the current status, by whom and when (HTTP 409)

Everything here is imported only when review or the delivery gate is on, except ``intake.carried``,
which keeps an earlier decision on a result written again for the same bytes.
"""
