#!/usr/bin/env python3
"""Bundle the vendored TAMS 8.2 OpenAPI spec (YAML + external JSON schemas) into the one
JSON document drey serves at /openapi.json: external $refs to schemas/*.json are inlined,
example files are dropped (they are documentation, and large), and drey's own operations
(/media, /metrics) are added. Run after updating spec/tams-8.2: python3 scripts/bundle-openapi.py
"""
import json
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
API = ROOT / "spec" / "tams-8.2" / "api"


SCHEMAS = {}


def inline(node, base):
    """Moves each external schema file into components/schemas once and points refs at it."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            target = (base / ref).resolve()
            if target.suffix == ".json" and "examples" not in target.parts:
                name = target.stem
                if name not in SCHEMAS:
                    SCHEMAS[name] = None  # break cycles
                    with open(target) as f:
                        SCHEMAS[name] = inline(json.load(f), target.parent)
                rest = {k: v for k, v in node.items() if k != "$ref"}
                pointer = {"$ref": f"#/components/schemas/{name}"}
                if rest:
                    return {"allOf": [pointer], **inline(rest, base)}
                return pointer
            return {}
        return {k: inline(v, base) for k, v in node.items()
                if k not in ("example", "examples") or not _is_external(v)}
    if isinstance(node, list):
        return [inline(v, base) for v in node]
    return node


def _is_external(v):
    if isinstance(v, dict) and "$ref" in v:
        return True
    if isinstance(v, dict):
        return any(isinstance(x, dict) and "externalValue" in x for x in v.values())
    return False


def main():
    with open(API / "TimeAddressableMediaStore.yaml") as f:
        doc = yaml.safe_load(f)
    doc = inline(doc, API)
    doc.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
    doc["info"]["x-drey"] = "drey implements the TAMS 8.2 operations listed in docs/api.md"
    doc["servers"] = [{"url": "/", "description": "this drey instance"}]
    doc["paths"]["/media/{objectId}"] = {
        "parameters": [{"name": "objectId", "in": "path", "required": True, "schema": {"type": "string"}}],
        "get": {"summary": "Read an object's bytes (local backends), with Range",
                "operationId": "GET_media", "tags": ["MediaStorage"],
                "responses": {"200": {"description": "the object"}, "206": {"description": "a byte range"},
                              "404": {"description": "no such object"}, "416": {"description": "bad range"}}},
        "put": {"summary": "Upload an allocated object's bytes (the put_url of /flows/{flowId}/storage)",
                "operationId": "PUT_media", "tags": ["MediaStorage"],
                "responses": {"201": {"description": "stored"}, "404": {"description": "id not allocated"},
                              "409": {"description": "object already has bytes"}, "413": {"description": "too large"}}},
    }
    out = ROOT / "spec" / "openapi.json"
    out.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
