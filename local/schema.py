"""Write or check the published JSON Schemas (docs/schema/) generated from the contract's models."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import msgspec

from image_analysis.models import SCHEMA_VERSION, Alert, AnalysisResult

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "docs" / "schema"


def model_schema(model: type) -> dict:
    """The model's JSON Schema with the model itself at the top (its nested models under ``$defs``)."""
    generated = _without_empty_required(msgspec.json.schema(model))
    defs = generated["$defs"]
    top = defs.pop(model.__name__)
    return {**top, "$defs": defs} if defs else top


def _without_empty_required(node: object) -> object:
    """msgspec writes ``"required": []`` for a model whose fields all have defaults; draft-04 validators
    refuse an empty list there, and it says nothing."""
    if isinstance(node, dict):
        return {k: _without_empty_required(v) for k, v in node.items() if not (k == "required" and v == [])}
    if isinstance(node, list):
        return [_without_empty_required(v) for v in node]
    return node


def schemas() -> dict[str, str]:
    result = model_schema(AnalysisResult)
    result["$id"] = "https://github.com/image-analysis/image-analysis/docs/schema/result.schema.json"
    result["description"] = (
        f"One item of the results table (schema_version {SCHEMA_VERSION}). Stored with three more attributes: "
        "pk = '<bucket>/<key>', sk = version id or 'null', seq = the S3 sequencer padded to 32 characters."
    )
    alert = model_schema(Alert)
    alert["$id"] = "https://github.com/image-analysis/image-analysis/docs/schema/alert.schema.json"
    return {
        "result.schema.json": json.dumps(result, indent=2, sort_keys=True) + "\n",
        "alert.schema.json": json.dumps(alert, indent=2, sort_keys=True) + "\n",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for name, text in schemas().items():
        path = SCHEMA_DIR / name
        if args.write:
            SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        elif not path.exists() or path.read_text() != text:
            stale.append(str(path))
    if stale:
        print(f"out of date (run `make schema`): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
