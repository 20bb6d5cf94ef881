"""``python -m progdel.sandbox``: serve the sandbox cluster in the foreground.

``progdel sandbox up --detach`` starts this module as its background process.
"""

from __future__ import annotations

import sys

from progdel.sandbox.daemon import serve_main

if __name__ == "__main__":
    sys.exit(serve_main(sys.argv[1:]))
