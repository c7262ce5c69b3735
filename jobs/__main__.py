"""``python -m jobs`` is the same as the ``webitel-creatio-sync`` command."""

from jobs.cli import main

raise SystemExit(main())
