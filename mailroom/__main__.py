"""Run the `mailroom` command as `python -m mailroom`."""

from mailroom.cli import main

raise SystemExit(main())
