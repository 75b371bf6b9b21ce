"""``python -m ecgedge.bench --worker JSON``: one benchmark worker (internal; ``ecgedge bench`` starts it)."""

import sys

from ecgedge.bench.worker import worker_main

if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
