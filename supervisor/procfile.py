"""The Procfile: which workers `pmctl up` runs, parsed strictly (honcho/foreman conventions).

Format: one ``name: command`` per line; ``#`` comments and blank lines are allowed. A malformed
line, a duplicate name, a command with unbalanced quotes or a file without any entry is an error
naming the line, so a typo never silently drops a worker from the pipeline.
"""

from __future__ import annotations

import re
import shlex
import site
import sys
from dataclasses import dataclass
from pathlib import Path

# honcho's pattern, minus leading dashes: names end up in prefixes, status tables and JSON keys.
_LINE_RE = re.compile(r"^(?P<name>[A-Za-z0-9_][A-Za-z0-9_-]*):[ \t]*(?P<command>.*?)\s*$")
# A Procfile's `python` means the interpreter pmctl itself runs on (its venv, its packages).
_PYTHON_NAMES = ("python", "python3")
DATA_SUBDIR = Path("share") / "pause-monitor"  # pyproject.toml installs the Procfile here


class ProcfileError(Exception):
    """A Procfile that cannot be used; ``str()`` has one line per problem, naming its line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


@dataclass(frozen=True)
class ProcessEntry:
    name: str
    command: str
    line: int

    def argv(self) -> list[str]:
        """The command split like a shell would, without running a shell (so the child's pid is
        the worker's pid), with a leading ``python`` replaced by this interpreter."""
        argv = shlex.split(self.command)
        if argv[0] in _PYTHON_NAMES:
            argv[0] = sys.executable
        return argv


def parse(text: str, source: str = "Procfile") -> list[ProcessEntry]:
    """Every entry of a Procfile, in file order; ``ProcfileError`` lists every bad line."""
    entries: list[ProcessEntry] = []
    seen: dict[str, int] = {}
    problems: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE_RE.match(raw)
        if match is None:
            problems.append(f"line {lineno}: expected `name: command`, got {stripped[:60]!r}")
            continue
        name, command = match.group("name"), match.group("command")
        if not command:
            problems.append(f"line {lineno}: {name}: empty command")
            continue
        try:
            if not shlex.split(command):
                raise ValueError("empty command")
        except ValueError as exc:
            problems.append(f"line {lineno}: {name}: cannot split command: {exc}")
            continue
        if name in seen:
            problems.append(f"line {lineno}: duplicate name {name!r} (first defined on line {seen[name]})")
            continue
        seen[name] = lineno
        entries.append(ProcessEntry(name, command, lineno))
    if not entries and not problems:
        problems.append("no processes defined")
    if problems:
        raise ProcfileError(source, problems)
    return entries


def load(path: Path) -> list[ProcessEntry]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProcfileError(str(path), [f"cannot read: {exc}"]) from None
    return parse(text, str(path))


def select(entries: list[ProcessEntry], only: list[str] | None) -> list[ProcessEntry]:
    """The entries named in ``only`` (all when None); an unknown name is an error."""
    if not only:
        return entries
    known = {e.name for e in entries}
    unknown = [n for n in only if n not in known]
    if unknown:
        raise ValueError(
            f"unknown process name(s) {', '.join(unknown)}; the Procfile has {', '.join(sorted(known))}"
        )
    wanted = set(only)
    return [e for e in entries if e.name in wanted]


def candidates(package_dir: Path | None = None, prefix: str | None = None) -> list[Path]:
    """Where the default Procfile may live, in the order they are tried.

    A checkout has it next to this package; an installed package has it as a data file
    under the installation prefix (``pip install``: sys.prefix; ``pip install --user``: the user
    base). The parameters exist for tests.
    """
    package_dir = package_dir or Path(__file__).resolve().parent
    found = [package_dir.parent / "Procfile", Path(prefix or sys.prefix) / DATA_SUBDIR / "Procfile"]
    user_base = site.getuserbase()
    if user_base:
        found.append(Path(user_base) / DATA_SUBDIR / "Procfile")
    return found


def find_default(package_dir: Path | None = None, prefix: str | None = None) -> Path:
    tried = candidates(package_dir, prefix)
    for path in tried:
        if path.is_file():
            return path
    where = ", ".join(str(p) for p in tried)
    raise ProcfileError("Procfile", [f"no Procfile found (tried {where}); pass --procfile"])
