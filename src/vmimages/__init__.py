"""vmimages: a VM image catalog service that speaks the Zenlayer Cloud API 2.0 (VM)."""

__version__ = "0.1.0"


def build() -> str:
    """Which build runs: "compiled" (the request path compiled with mypyc at install) or
    "pure" (the same modules as plain Python, where there was no C compiler; setup.py)."""
    from vmimages import app

    return "pure" if (app.__file__ or "").endswith(".py") else "compiled"


def stale_modules(package: str | None = None) -> list[str]:
    """Sources changed since they were compiled (`pip install -e .` compiles in place): the
    compiled build runs them as they were until installed again. Empty for the pure build.
    `package`: the folder to look in, this package's unless told."""
    from pathlib import Path

    stale = []
    # A compiled module is imported before the .py beside it.
    for built in Path(package or Path(__file__).parent).rglob("*.so"):
        source = built.parent / (built.name.split(".")[0] + ".py")
        if source.exists() and source.stat().st_mtime > built.stat().st_mtime:
            stale.append(str(source))
    return sorted(stale)
