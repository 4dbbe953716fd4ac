"""One command line for the whole book: ``python -m sivae_core <command> [flags]``.

Every command lives in the module of its concept and exposes two functions::

    def add_arguments(parser: argparse.ArgumentParser) -> None   # the command's own flags
    def run(args: argparse.Namespace) -> int                      # exit status

The flags all commands share are declared here once: ``--device`` (default: CUDA when available), ``--threads``
(torch CPU threads), ``--seed`` and ``--out``. A command that can run without an output folder sets
``OUT_REQUIRED = False`` in its module. The documented module forms (``python -m sivae_core.images ...``) call
:func:`run_command` with the same flags.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

import torch

__all__ = ["COMMANDS", "build_parser", "main", "run_command", "device_of"]

#: command -> (module that implements it, one-line help). Modules are imported only when their command runs,
#: so ``--help`` stays fast and a command's heavy dependencies load only for that command.
COMMANDS: dict[str, tuple[str, str]] = {
    "toy2d": ("sivae_core.experiments.toy2d", "one 2D run (Daniel & Tamar 2021, Table 2 settings)"),
    "table2": ("sivae_core.experiments.table2", "Table 2 of Daniel & Tamar (2021) as vectorized ensembles"),
    "as-table": ("sivae_core.experiments.as_table", "the 2D tables of AS-IntroVAE (Lu et al. 2022, Tables 1 and 4)"),
    "dpvae-2d": ("sivae_core.experiments.dpvae_2d", "regularized VAEs with and without a decoupled prior in 2D"),
    "dpvae-images": ("sivae_core.experiments.dpvae_images", "Table 1 of dpVAE (Bhalodia et al. 2020) on MNIST"),
    "images": ("sivae_core.experiments.images_eval", "train and evaluate an image model (VAE, S-IntroVAE, AS-IntroVAE)"),
    "ood": ("sivae_core.experiments.ood", "out-of-distribution detection with a trained image model (Table 7)"),
    "feature-net": ("sivae_core.metrics.train_feature_net", "train the offline feature network of the Frechet distances"),
    "suite": ("sivae_core.experiments.suite", "the GPU suite: the book's paper-scale results in minutes of one GPU"),
    "translation": ("sivae_core.translation", "Cars3D content transfer: Soft-IntroVAE, beta-VAE, autoencoder"),
    "style-prepare": ("sivae_core.data.faces", "face images -> one memory-mapped array per resolution (style model)"),
    "style": ("sivae_core.experiments.style", "style-based Soft-IntroVAE grown progressively (1 process or torchrun)"),
    "style-factors": ("sivae_core.experiments.style_factors",
                      "why the GPU style run did not learn faces: its settings one at a time, on a CPU"),
}


def device_of(args: argparse.Namespace) -> torch.device:
    """The device a command runs on (``--device``, else CUDA when available, else the CPU)."""
    return torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _shared(out_required: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("shared flags")
    g.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available, else cpu)")
    g.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--out", required=out_required, help="output folder or file of the command")
    return p


def _module(name: str) -> ModuleType:
    if name not in COMMANDS:
        raise SystemExit(f"unknown command {name!r}; choose one of: {', '.join(sorted(COMMANDS))}")
    return importlib.import_module(COMMANDS[name][0])


def _add_command(sub: argparse._SubParsersAction, name: str) -> None:
    module = _module(name)
    parents = [_shared(getattr(module, "OUT_REQUIRED", True))]
    p = sub.add_parser(name, parents=parents, help=COMMANDS[name][1], description=module.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(p)
    p.set_defaults(_run=module.run)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command (or of ``only``, which imports just that command's module)."""
    parser = argparse.ArgumentParser(prog="python -m sivae_core", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name in ([only] if only else sorted(COMMANDS)):
        _add_command(sub, name)
    return parser


def _apply_shared(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(first if first in COMMANDS else None).parse_args(argv)
    _apply_shared(args)
    return int(args._run(args) or 0)


def run_command(name: str, argv: list[str] | None = None) -> int:
    """Run one command with ``argv`` (default: this process's arguments): the module forms' entry point."""
    return main([name, *(sys.argv[1:] if argv is None else argv)])
