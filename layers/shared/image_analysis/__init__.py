"""Image analysis pipeline: S3 upload -> providers -> one normalized result -> alert when flagged."""

__version__ = "0.1.0"
