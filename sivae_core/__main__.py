"""``python -m sivae_core <command> ...``: see :mod:`sivae_core.cli`."""

from sivae_core.cli import main

raise SystemExit(main())
