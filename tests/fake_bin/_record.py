"""Shared by the fake executables: append {"prog", "argv"} as one JSON line to $FAKE_BIN_LOG."""

import json
import os
import sys


def record() -> None:
    log = os.environ.get("FAKE_BIN_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"prog": os.path.basename(sys.argv[0]), "argv": sys.argv[1:]}) + "\n")
