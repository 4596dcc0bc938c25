"""bench/pyload.py with a body that changes per request, for `bash bench/run.sh mp` when wrk is unavailable.

Same arguments and output as bench/pyload.py, plus --unique-start / --unique-step: every "__UNIQUE__" in --body
becomes the next number of start, start + step, start + 2*step ... (one sequence per process; give each process
its own start and the process count as step, so numbers never repeat across processes). With --sign-token, each
request is also signed as WeChat signs a push: a fresh timestamp and that number as its nonce (/wechat/mp binds a
signature to the one push it signed, so a bench cannot reuse one signed query for every body).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import itertools
import sys
import time
from urllib.parse import urlencode, urlsplit

from bench import pyload

PLACEHOLDER = b"__UNIQUE__"


def main() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--unique-start", type=int, default=0)
    parser.add_argument("--unique-step", type=int, default=1)
    parser.add_argument("--sign-token", default="")
    ours, rest = parser.parse_known_args()
    numbers = itertools.count(ours.unique_start, ours.unique_step)   # next() is atomic under the GIL
    original = http.client.HTTPConnection.request

    def request(self, method, url, body=None, headers=None, **kw):
        if body is not None and PLACEHOLDER in body:
            number = str(next(numbers))
            body = body.replace(PLACEHOLDER, number.encode())
            if ours.sign_token:
                url = signed_url(url, ours.sign_token, number)
        return original(self, method, url, body=body, headers=headers or {}, **kw)

    http.client.HTTPConnection.request = request
    sys.argv = [sys.argv[0], *rest]
    pyload.main()


def signed_url(url: str, token: str, nonce: str) -> str:
    timestamp = str(int(time.time()))
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    return f"{urlsplit(url).path}?{urlencode({'signature': signature, 'timestamp': timestamp, 'nonce': nonce})}"


if __name__ == "__main__":
    main()
