"""Dependency audit: every installed distribution at or above its security floor.

pip-audit's advisory services are unreachable from CI machines, so the floors are kept
as a table (../shared/security-floors.md, copied to .ci/security-floors.md so a clean
clone has it). Where both exist, the higher floor of each package wins. Exit status 1
lists every package below its floor, or a floor whose package is not installed but is
pinned in requirements.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

HERE = Path(__file__).resolve().parent
SOURCES = [HERE.parent.parent / "shared" / "security-floors.md", HERE / "security-floors.md"]
ROW = re.compile(r"^\|\s*([A-Za-z0-9_.-]+)\s*\|\s*([0-9][0-9A-Za-z.+-]*)\s*\|")


def floors() -> dict[str, Version]:
    found: dict[str, Version] = {}
    for source in SOURCES:
        if not source.is_file():
            continue
        for line in source.read_text().splitlines():
            match = ROW.match(line)
            if match and match.group(1).lower() != "package":
                name, version = canonicalize_name(match.group(1)), Version(match.group(2))
                found[name] = max(version, found.get(name, version))
    if not found:
        sys.exit("audit: no security-floors table found")
    return found


def installed() -> dict[str, Version]:
    return {
        canonicalize_name(d.metadata["Name"]): Version(d.version) for d in metadata.distributions()
    }


def main() -> int:
    have = installed()
    problems = []
    for name, floor in sorted(floors().items()):
        version = have.get(name)
        if version is None:
            print(f"  {name:<20} not installed      (floor {floor})")
        elif version < floor:
            problems.append(f"{name} {version} is below the floor {floor}")
            print(f"  {name:<20} {version!s:<18} BELOW floor {floor}")
        else:
            print(f"  {name:<20} {version!s:<18} ok (floor {floor})")
    if problems:
        print("audit: FAILED\n  " + "\n  ".join(problems))
        return 1
    print(f"audit: {len(have)} installed distributions, every floor met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
