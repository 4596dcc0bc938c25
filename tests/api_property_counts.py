"""Status counts of the property-based API run (tests/test_api_properties.py), printed by tests/conftest.py."""

from collections import Counter

COUNTS: dict[str, Counter] = {}
