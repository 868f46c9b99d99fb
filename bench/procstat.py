"""What a process and its children have used so far, read from /proc."""

from __future__ import annotations

import os
from pathlib import Path


def descendants(pid: int) -> list[int]:
    """The process and all its children, grandchildren... (serve --workers makes children)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += descendants(int(child))
    return found


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds a process and its children have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    user = system = 0.0
    for each in descendants(pid):
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        user += int(fields[11]) / ticks
        system += int(fields[12]) / ticks
    return user, system
