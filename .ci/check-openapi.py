"""Validates the checked-in OpenAPI document with a third-party validator (OpenAPI 3.1)."""
import json
import sys

from openapi_spec_validator import validate

path = sys.argv[1]
with open(path, encoding="utf-8") as f:
    validate(json.load(f))
print(f"{path}: valid OpenAPI")
