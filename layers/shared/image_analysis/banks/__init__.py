"""Hash banks: named sets of PDQ hashes matched against every upload.

- ``model``: what a bank is (distance, flag, snapshot, delta log) and the package's errors;
- ``index``: the snapshot file, a multi-index over the hashes that the function reads or maps;
- ``store``: the registry and delta log (DynamoDB) and the snapshots (S3); compaction;
- ``matcher``: the banks as a running function sees them, refreshed every 30 s, and matching;
- ``screening``: the pipeline's seam (one per image; SKIP_VENDORS_ON_MATCH);
- ``rescan``: a bank's newer entries over stored results (``image-analysis bank rescan``);
- ``api``: what other code calls to add a hash to a bank or take it out (review rejections);
- ``formats``: the hash lists ``bank import`` reads.

Compaction (``store.compact``) runs from the command line (``bank compact``, ``bank import``), never in
the analysis function.
"""
