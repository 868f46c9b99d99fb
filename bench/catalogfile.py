"""Publishing a large public catalog (docs/lifecycle.md): a YAML file of N images read, imported
into a new SQLite file, exported and written again, each step timed.

    python bench/catalogfile.py [--images 100000]

Prints JSON: the file's size in MB and the seconds of each step.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from vmimages.catalogfile import default_catalog, read_catalog_file, to_document, write_document
from vmimages.store import open_store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=100_000)
    args = parser.parse_args()
    shipped = default_catalog()
    images = [
        replace(shipped.images[n % len(shipped.images)], image_id=f"img-b{n:07d}")
        for n in range(args.images)
    ]
    catalog = replace(shipped, images=images)
    took: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "catalog.yaml"
        with path.open("w", encoding="utf-8") as out:
            write_document(to_document(catalog), out, as_yaml=True)

        started = time.perf_counter()
        read = read_catalog_file(path)
        took["read_s"] = time.perf_counter() - started

        async def store_work() -> None:
            store = open_store(str(Path(folder) / "catalog.db"))
            await store.open()
            started = time.perf_counter()
            await store.import_catalog(read)
            took["import_s"] = time.perf_counter() - started
            started = time.perf_counter()
            exported = await store.export_catalog()
            write_document(to_document(exported), io.StringIO(), as_yaml=True)
            took["export_s"] = time.perf_counter() - started
            await store.close()

        asyncio.run(store_work())
        size_mb = path.stat().st_size / 1e6
    print(json.dumps({"images": args.images, "yaml_mb": round(size_mb, 1),
                      **{k: round(v, 1) for k, v in took.items()}}))  # fmt: skip


if __name__ == "__main__":
    main()
