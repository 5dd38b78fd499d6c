"""``image-analysis``: backfill, reprocess, reconcile and query the pipeline from a terminal."""
