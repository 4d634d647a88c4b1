"""`python -m vajra` is the `vajra` command."""

from vajra.cli import main

raise SystemExit(main())
