"""The build: the request path's modules (pyproject.toml, [tool.vmimages] compiled) compiled
with mypyc where a C compiler and Python's headers are at hand, else the same modules as plain
Python, which behave the same (docs/decisions.md, "Compiled where it can be"). VMIMAGES_PURE=1
installs the pure-Python build on any machine (in a checkout already compiled in place by
`pip install -e .`, remove the compiled modules first: `git clean -fX src`). Everything else
is in pyproject.toml."""

from __future__ import annotations

import os
import sys
import tomllib
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext


def say(message: str) -> None:
    print(f"vmimages: {message}", file=sys.stderr)


def compiled_modules() -> list[str]:
    with open("pyproject.toml", "rb") as f:
        modules: list[str] = tomllib.load(f)["tool"]["vmimages"]["compiled"]
    return [f"src/{module}" for module in modules]


def extensions() -> list[Any]:
    if os.environ.get("VMIMAGES_PURE") == "1":
        say("VMIMAGES_PURE=1: the pure-Python build")
        return []
    try:
        from mypyc.build import mypycify

        # The build's own environment has mypy but not the runtime's packages: their types
        # are unknown here (Any), which the compiled code handles as objects.
        return list(mypycify(["--config-file=", "--ignore-missing-imports", *compiled_modules()]))
    except (Exception, SystemExit) as exc:  # mypy exits on an error it reports
        say(f"the request path cannot be compiled here ({exc}): the pure-Python build")
        return []


class BuildOrFallBack(build_ext):
    """Compile, or leave the modules as Python when this machine cannot (no C compiler, no
    Python headers): the same behaviour, slower (docs/decisions.md)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            say(f"the request path was not compiled ({exc}): the pure-Python build")


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildOrFallBack})
