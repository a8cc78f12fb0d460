"""`ast.parse` that is safe to call from many threads at once (every tool call runs on a worker thread).

CPython 3.11 keeps the AST constructor's recursion counter in state shared by all threads; two parses
that interleave (a garbage collection can switch threads mid-parse) fail at random with
"SystemError: AST constructor recursion depth mismatch" (python/cpython gh-106905, fixed in 3.12).
Seen here with 16 clients validating at once through one HTTP server.
"""

import ast
import sys
import threading

_serial = threading.Lock() if sys.version_info < (3, 12) else None


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    if _serial is None:
        return ast.parse(source, filename=filename)
    with _serial:
        return ast.parse(source, filename=filename)
