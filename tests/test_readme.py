"""The README is the operators' reference: its configuration table names every setting."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def settings_read_by_config() -> set[str]:
    """Every environment variable config.py reads, by any of its helpers."""
    source = (ROOT / "config.py").read_text()
    return set(re.findall(r"""(?:environ\.get|_int)\(\s*["']([A-Z0-9_]+)["']""", source))


def configuration_table() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("| `"))


def test_the_configuration_table_lists_every_setting():
    settings = settings_read_by_config()
    assert {"DATABASE_URL", "JOB_LEASE_SECONDS", "HISTORY_VISIBILITY", "INSTANCE_DIR"} <= settings
    table = configuration_table()
    assert [name for name in sorted(settings) if f"`{name}`" not in table] == []


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
