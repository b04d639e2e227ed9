"""The tracker's Hub publisher, and lighteval's custom-target calls: push a saved run anywhere.

lighteval's ``push_results_to_hub`` and ``push_details_to_hub`` are broken (they reference
attributes that no longer exist); these work, and each pushes in a single commit through the
tracker's publisher, with its retry policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalstream._errors import ConfigError, RunStateError
from evalstream.sinks.results import encode_results

if TYPE_CHECKING:
    from pathlib import Path

    from evalstream._options import Options
    from evalstream._summary import RunResult
    from evalstream.durability.storage import OutputStore
    from evalstream.sinks.hub import HubPublisher, PushOutcome
    from evalstream.sinks.retry import RetryPolicy


def make_publisher(
    options: Options, token: str | None, retry: RetryPolicy | None
) -> HubPublisher | None:
    """The tracker's Hub publisher, or None when nothing is pushed (no huggingface_hub import)."""
    if not options.needs_publisher:
        return None
    from evalstream.sinks.hub import HubPublisher

    return HubPublisher(
        options.hub_results_org,
        token,
        endpoint=options.hub_endpoint,
        public=options.public,
        retry=retry,
    )


def retry_hint(publisher: HubPublisher | None, workdir: Path, public: bool) -> str:
    """The command that publishes this run later, should its push fail."""
    if publisher is None:
        return ""
    return f"evalstream push {workdir} --org {publisher.org}" + (" --public" if public else "")


class HubCalls:
    """The custom-target pushes of one tracker, over its publisher and its saved run."""

    def __init__(self, publisher: HubPublisher | None, store: OutputStore) -> None:
        self.publisher = publisher
        self.store = store

    def _saved(self, result: RunResult | None) -> tuple[HubPublisher, RunResult]:
        if self.publisher is None:
            raise ConfigError(
                "no Hub publisher: construct the tracker with hub_results_org=... and a token "
                "(hub_token=... or HF_TOKEN) to push to custom targets"
            )
        if result is None or not result.results_path:
            raise RunStateError("save() the run first: these calls push the saved files")
        return self.publisher, result

    async def push_results(
        self, result: RunResult | None, repo_id: str, path_in_repo: str, private: bool | None
    ) -> PushOutcome:
        """The saved results JSON to ``repo_id`` at ``path_in_repo``, in one commit."""
        publisher, saved = self._saved(result)
        data = encode_results(saved.results)  # deterministic: the bytes that were written
        return await publisher.push_results_to_hub(repo_id, path_in_repo, data, private)

    async def push_details(
        self, result: RunResult | None, repo_id: str, path_in_repo: str, private: bool | None
    ) -> PushOutcome:
        """The saved details files, one per task, in one commit."""
        publisher, saved = self._saved(result)
        local_files = saved.output("local")
        rels: dict[str, str] = local_files.detail["details"] if local_files else {}
        local = {t: self.store.local(rel) for t, rel in rels.items()}
        if "{task_name}" in path_in_repo:
            files = dict(local)
        else:
            files = {p.name: p for p in local.values()}
        return await publisher.push_details_to_hub(repo_id, path_in_repo, files, private)

    async def recreate_card(self, repo_id: str) -> PushOutcome:
        """``repo_id``'s dataset card, rebuilt from its files and newest results."""
        if self.publisher is None:
            raise ConfigError("no Hub publisher: pass hub_results_org=... and a token")
        return await self.publisher.recreate_metadata_card(repo_id)
