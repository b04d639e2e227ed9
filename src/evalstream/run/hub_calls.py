"""lighteval's custom-target Hub calls on the tracker: push a saved run's files anywhere.

lighteval's ``push_results_to_hub`` and ``push_details_to_hub`` are broken (they reference
attributes that no longer exist); these work, and each pushes in a single commit through the
tracker's publisher, with its retry policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalstream._errors import ConfigError, RunStateError
from evalstream.sinks.results import encode_results

if TYPE_CHECKING:
    from evalstream._summary import RunResult
    from evalstream.durability.storage import OutputStore
    from evalstream.sinks.hub import HubPublisher, PushOutcome
    from evalstream.sinks.retry import RetryPolicy


def make_publisher(
    needed: bool,
    org: str,
    token: str | None,
    *,
    endpoint: str | None,
    public: bool,
    retry: RetryPolicy | None,
) -> HubPublisher | None:
    """The tracker's Hub publisher, or None when nothing is pushed (no huggingface_hub import)."""
    if not needed:
        return None
    from evalstream.sinks.hub import HubPublisher

    return HubPublisher(org, token, endpoint=endpoint, public=public, retry=retry)


class HubTargets:
    """Mixin for EvaluationTracker: needs ``publisher`` and ``result``."""

    publisher: HubPublisher | None
    store: OutputStore

    @property
    def result(self) -> RunResult | None:
        raise NotImplementedError

    def _saved(self) -> tuple[HubPublisher, RunResult]:
        if self.publisher is None:
            raise ConfigError(
                "no Hub publisher: construct the tracker with hub_results_org=... and a token "
                "(hub_token=... or HF_TOKEN) to push to custom targets"
            )
        if self.result is None or not self.result.results_path:
            raise RunStateError("save() the run first: these calls push the saved files")
        return self.publisher, self.result

    async def push_results_to_hub(
        self, repo_id: str, path_in_repo: str, private: bool | None = None
    ) -> PushOutcome:
        """Push the saved results JSON to ``repo_id`` at ``path_in_repo``, in one commit."""
        publisher, result = self._saved()
        data = encode_results(result.results)  # deterministic: the bytes that were written
        return await publisher.push_results_to_hub(repo_id, path_in_repo, data, private)

    async def push_details_to_hub(
        self, repo_id: str, path_in_repo: str, private: bool | None = None
    ) -> PushOutcome:
        """Push the saved details files, one per task, in one commit.

        ``{task_name}`` in ``path_in_repo`` is replaced by each task's name; otherwise
        ``path_in_repo`` is a folder holding the files under their own names.
        """
        publisher, result = self._saved()
        local = {t: self.store.local(rel) for t, rel in result.outputs[0].detail["details"].items()}
        if "{task_name}" in path_in_repo:
            files = dict(local)
        else:
            files = {p.name: p for p in local.values()}
        return await publisher.push_details_to_hub(repo_id, path_in_repo, files, private)

    async def recreate_metadata_card(self, repo_id: str) -> PushOutcome:
        """Rebuild ``repo_id``'s dataset card from its files and newest results."""
        if self.publisher is None:
            raise ConfigError("no Hub publisher: pass hub_results_org=... and a token")
        return await self.publisher.recreate_metadata_card(repo_id)
