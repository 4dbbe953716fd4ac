"""The experiments of the papers: their settings and budgets (one schedule rule, :mod:`.schedules`), the
runners that produce the book's tables, and the command-line commands that run them. Import the module you
need (``sivae_core.experiments.toy2d``, ``...images``, ``...ood``, ...)."""
