"""``python -m supervisor``: what `pmctl up` execs; see supervisor.main."""

from supervisor.main import main

raise SystemExit(main())
