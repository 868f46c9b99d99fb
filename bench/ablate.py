"""`vmimages serve` with one of the service's speed choices turned off, for bench/run to measure
what the choice is worth beside the service as shipped, in the same run.

    python bench/ablate.py look-per-request serve --port 8080 --database D ...

look-per-request: every request looks at the change log, instead of one look serving every
request that the event loop runs in the same turn (store/memory.py, ONE_LOOK_PER_TURN).
two-writes: an answer's head and body written apart, as uvicorn writes them, instead of in one
write per turn of the event loop (transport.py, ONE_WRITE_PER_TURN).
change-log-statements: on PostgreSQL, a write's counter step, change log entry and history in
a statement each, as on SQLite, instead of one statement (store/query.py, SqlFlavor.mark_changed).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from vmimages import transport
from vmimages.cli import main
from vmimages.store import memory, postgres
from vmimages.store.query import POSTGRES

CHOICES: dict[str, tuple[object, str, object]] = {
    "look-per-request": (memory, "ONE_LOOK_PER_TURN", False),
    "two-writes": (transport, "ONE_WRITE_PER_TURN", False),
    "change-log-statements": (
        postgres.PostgresDatabase,
        "flavor",
        replace(POSTGRES, mark_changed=None),
    ),
}

if __name__ == "__main__":
    module, name, value = CHOICES[sys.argv[1]]
    setattr(module, name, value)
    main(sys.argv[2:])
