"""pytest settings for checking the chapters with ``pytest --nbval book``."""


def pytest_collection_modifyitems(items: list) -> None:
    """Give nbval more patience for a cell's trailing output messages.

    nbval waits a fixed 5 s for each output message after a cell has finished. A long training cell
    leaves a burst of progress-bar messages behind it, and on a busy 2-core machine delivering them can
    take longer than that, which nbval reports as a failed cell although the cell ran fine.
    """
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = 60
