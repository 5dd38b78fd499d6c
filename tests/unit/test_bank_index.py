"""The bank snapshot's multi-index: exactly the entries within the distance, none missed, none extra."""

from __future__ import annotations

import random

import pytest

from image_analysis.banks.index import HashIndex, build, radii, read_header


def _flip(value: int, bits: int, rng: random.Random) -> int:
    for bit in rng.sample(range(256), bits):
        value ^= 1 << bit
    return value


@pytest.fixture(scope="module")
def planted():
    """3,000 random hashes, and for four queries entries planted at 0..40 bits (spread over segments)."""
    rng = random.Random(42)
    hashes = [rng.getrandbits(256) for _ in range(3000)]
    queries = [rng.getrandbits(256) for _ in range(4)]
    for number, query in enumerate(queries):
        for bits in range(0, 41):
            hashes[rng.randrange(len(hashes))] = _flip(query, bits, rng)
        # all the differing bits in one 32-bit pair of segments: the hardest case for the lookup
        hashes[rng.randrange(len(hashes))] = query ^ (0xFFFFFFFF >> (number + 1))
    labels = [f"entry {n}" if n % 7 == 0 else None for n in range(len(hashes))]
    return hashes, labels, queries, HashIndex.from_bytes(build(hashes, labels, bank="test", seq=9))


def _brute(hashes: list[int], queries: list[int], distance: int) -> dict[int, int]:
    found = {}
    for entry, value in enumerate(hashes):
        nearest = min((value ^ q).bit_count() for q in queries)
        if nearest <= distance:
            found[entry] = nearest
    return found


@pytest.mark.parametrize("distance", [0, 7, 15, 16, 24, 31, 32, 47])
def test_search_finds_exactly_what_a_full_scan_finds(planted, distance: int) -> None:
    hashes, _labels, queries, index = planted
    hits = index.search(queries, distance)
    assert {h.entry: h.distance for h in hits} == _brute(hashes, queries, distance)
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)  # nearest first
    for hit in hits:
        assert (hashes[hit.entry] ^ queries[hit.query]).bit_count() == hit.distance


def test_an_entry_at_31_bits_matches_and_one_at_32_does_not() -> None:
    rng = random.Random(7)
    query = rng.getrandbits(256)
    hashes = [rng.getrandbits(256) for _ in range(500)] + [_flip(query, 31, rng), _flip(query, 32, rng)]
    index = HashIndex.from_bytes(build(hashes))
    assert [(h.entry, h.distance) for h in index.search([query], 31)] == [(500, 31)]


def test_labels_hashes_and_the_header_round_trip(planted, tmp_path) -> None:
    hashes, labels, _queries, index = planted
    assert list(index.hashes()) == hashes
    assert [index.label_of(n) for n in range(len(hashes))] == [label or None for label in labels]
    path = tmp_path / "bank.pdqidx"
    data = build(hashes, labels, bank="test", seq=9)
    path.write_bytes(data)
    mapped = HashIndex.open(path)  # the path of banks too large for the heap
    assert mapped.search(_queries, 31) == index.search(_queries, 31)
    header = read_header(data)
    assert (header["count"], header["bank"], header["seq"], header["id_bytes"]) == (3000, "test", 9, 3)


def test_an_empty_bank_and_a_file_that_is_no_snapshot() -> None:
    assert HashIndex.from_bytes(build([])).search([123], 31) == []
    with pytest.raises(ValueError, match="not a PDQ bank snapshot"):
        HashIndex.from_bytes(b"GIF89a" + bytes(100))


def test_the_lookup_radii_cover_every_split_of_the_distance() -> None:
    # 8 pairs of segments: one pair differs by at most d // 8, one of its segments by half that.
    assert radii(31) == (1, 3)
    assert radii(15) == (0, 1)
    assert radii(47) == (2, 5)
