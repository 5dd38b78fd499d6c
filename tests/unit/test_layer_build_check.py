"""A layer built for one CPU and run on the other stops with a message that says so."""

import json

import pytest

from image_analysis import check_build_architecture


def test_a_source_tree_without_build_info_is_accepted(tmp_path):
    check_build_architecture(tmp_path / "build.json", machine="x86_64")


def test_the_matching_cpu_is_accepted(tmp_path):
    build = tmp_path / "build.json"
    build.write_text(json.dumps({"architecture": "arm64", "machine": "aarch64"}))
    check_build_architecture(build, machine="aarch64")


def test_the_other_cpu_is_refused_naming_both_and_the_fix(tmp_path):
    build = tmp_path / "build.json"
    build.write_text(json.dumps({"architecture": "arm64", "machine": "aarch64"}))
    with pytest.raises(RuntimeError, match=r"built for arm64 but runs on x86_64.*LAYER_ARCHITECTURE"):
        check_build_architecture(build, machine="x86_64")
