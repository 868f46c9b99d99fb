"""vmimages: a VM image catalog service that speaks the Zenlayer Cloud API 2.0 (VM)."""

__version__ = "0.1.0"


def build() -> str:
    """Which build runs: "compiled" (the request path compiled with mypyc at install) or
    "pure" (the same modules as plain Python, where there was no C compiler; setup.py)."""
    from vmimages import app

    return "pure" if (app.__file__ or "").endswith(".py") else "compiled"
