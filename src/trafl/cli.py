"""The ``trafl`` command. Each subcommand lives with the layer it drives and exposes
``add_arguments(parser)`` and ``run(args) -> int``; this file only dispatches."""

from __future__ import annotations

import argparse
import importlib
import sys

from trafl import __version__
from trafl.errors import TraflError
from trafl.utils.config import CliArgumentParser
from trafl.utils.logs import configure_cli_logging, quiet_library_output, tame_library_output

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "sft": ("trafl.sft.cli", "Masked-diffusion supervised fine-tuning on a JSONL of prompt/completion pairs."),
    "sample": ("trafl.sampling.cli", "Sample completions from a dLLM with the LLaDA sampler."),
    "train": ("trafl.train.cli", "RL post-training with TraFL, ESPO, JustGRPO or diffu-GRPO."),
    "eval": ("trafl.eval.cli", "pass@k and diversity evaluation of one or more models."),
    "plan": ("trafl.plan.cli", "Predict per-GPU memory and FLOPs of a training config (FITS / DOES NOT FIT)."),
    "demo": ("trafl.demo", "The CPU trajectory-locking study: base vs TraFL vs baselines."),
}

#: What to do after Ctrl-C, per subcommand: every finished checkpoint or generated problem is kept.
RESUME_HINTS: dict[str, str] = {
    "train": "Rerun the same command with --resume to continue from the newest checkpoint in its output_dir.",
    "sft": "Rerun the same command with --resume to continue from the newest checkpoint in its output_dir.",
    "eval": "Rerun the same command (same --out) to resume: finished problems are cached.",
    "demo": "Rerun the same command (same --out) to resume where it stopped.",
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = CliArgumentParser(
        prog="trafl", description="trafl: post-train masked diffusion language models with verifiable rewards."
    )
    parser.add_argument("--version", action="version", version=f"trafl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = None
    if argv:
        wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        # Only import the chosen subcommand's module (imports of torch & co. are slow).
        if wanted is not None and wanted != name:
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if not argv else 2
    configure_cli_logging()  # progress messages of the library (INFO) on stderr
    tame_library_output()  # no per-file bars of transformers between trafl's own lines
    if getattr(args, "quiet", False):  # train, sft, eval: no bars or warnings of the libraries either
        quiet_library_output()
    try:
        return int(args._run(args) or 0)
    except TraflError as exc:
        print(f"trafl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"trafl {args.command}: interrupted. {RESUME_HINTS.get(args.command, '')}".rstrip(), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
