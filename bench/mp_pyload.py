"""bench/pyload.py with a body that changes per request, for `bash bench/run.sh mp` when wrk is unavailable.

Same arguments and output as bench/pyload.py, plus --unique-start / --unique-step: every "__UNIQUE__" in --body
becomes the next number of start, start + step, start + 2*step ... (one sequence per process; give each process
its own start and the process count as step, so numbers never repeat across processes).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import sys

from bench import pyload

PLACEHOLDER = b"__UNIQUE__"


def main() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--unique-start", type=int, default=0)
    parser.add_argument("--unique-step", type=int, default=1)
    ours, rest = parser.parse_known_args()
    numbers = itertools.count(ours.unique_start, ours.unique_step)   # next() is atomic under the GIL
    original = http.client.HTTPConnection.request

    def request(self, method, url, body=None, headers=None, **kw):
        if body is not None and PLACEHOLDER in body:
            body = body.replace(PLACEHOLDER, str(next(numbers)).encode())
        return original(self, method, url, body=body, headers=headers or {}, **kw)

    http.client.HTTPConnection.request = request
    sys.argv = [sys.argv[0], *rest]
    pyload.main()


if __name__ == "__main__":
    main()
