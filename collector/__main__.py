"""``python -m collector``: see collector.main."""

from collector.main import main

raise SystemExit(main())
