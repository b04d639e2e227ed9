"""``evalstream merge OUTPUT_DIR --run ID``: the subcommand, registered by the CLI in one call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalstream.cli.arguments import seconds
from evalstream.cli.interrupts import run_async

if TYPE_CHECKING:
    import argparse

    from evalstream.run.merge import MergeResult


def add_merge_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``merge`` to the CLI's subcommands."""
    merge = sub.add_parser(
        "merge",
        help="merge the shards of a sharded run into one run",
        description="Merge every shard of run ID under OUTPUT_DIR (a folder or an fsspec URL "
        "such as s3://bucket/evals) into one run: results over the union of the samples, "
        "details per task, the usual outputs. Merging the same shards again does nothing.",
    )
    merge.add_argument("output_dir", metavar="OUTPUT_DIR", help="the folder the shards wrote to")
    merge.add_argument("--run", required=True, metavar="ID", help="the run id the shards share")
    merge.add_argument(
        "--wait", type=seconds, default=0, metavar="SECONDS", help="wait for unfinished shards"
    )
    merge.add_argument(
        "--partial",
        action="store_true",
        help="merge what unfinished or dead shards uploaded (the results say partial)",
    )
    merge.add_argument("--model-name", default=None, help="if no shard logged the model")
    merge.add_argument("--tensorboard", action="store_true", help="also write TensorBoard events")
    merge.set_defaults(func=_merge)


def _merge(args: argparse.Namespace) -> int:
    from evalstream.run.merge import merge

    outcome = run_async(
        lambda: merge(
            args.output_dir,
            args.run,
            partial=args.partial,
            wait=args.wait,
            model_name=args.model_name,
            push_to_tensorboard=args.tensorboard,
        ),
        kept=lambda: (
            "the shards are untouched (a merge writes its run last); run the same merge again"
        ),
    )
    print(describe(outcome))
    return 0 if outcome.result.ok else 1


def describe(outcome: MergeResult) -> str:
    """What a merge did, in a few lines."""
    result = outcome.result
    verb = "already merged" if outcome.already_merged else "merged"
    lines = [
        (
            f"{verb} {outcome.shards} shards of run {outcome.run}: "
            f"{sum(result.samples.values())} samples into {result.results_path}"
        )
    ]
    if outcome.duplicates:
        counts = ", ".join(f"{task}: {n}" for task, n in outcome.duplicates.items())
        lines.append(f"duplicated samples counted once: {counts}")
    if outcome.partial:
        lines.append(
            f"partial: unfinished shards {outcome.incomplete_shards}, "
            f"missing shards {outcome.missing_shards}"
        )
    lines.extend(f"{o.name} failed: {o.error}" for o in result.outputs if not o.ok)
    return "\n".join(lines)
