"""Offline analyzers behind the ``builtin`` provider: pure functions of a Pillow image or the file's bytes.

Pixel analyzers (colors, phash, quality) read only the small working copy so they stay in milliseconds;
``provenance`` reads the original file's metadata and never touches the network.
"""
