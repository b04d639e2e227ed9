"""The Hub output: the run's details, results and dataset card in one commit, once local.

Owns the options ``push_to_hub``, ``hub_results_org``, ``public`` (and the token, endpoint and
retry policy, which live in the publisher). It runs after the local output and pushes the very
files it wrote; a failed push is a failed outcome with the command that retries it, the local
files stay.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import msgspec

from evalstream.sinks.outputs import outcome

if TYPE_CHECKING:
    from collections.abc import Mapping

    from evalstream._summary import OutputOutcome
    from evalstream.durability.storage import OutputStore
    from evalstream.sinks.hub import HubPublisher, PushOutcome
    from evalstream.sinks.outputs import OutputContext, SavedRun

NAME = "hub"


class Pushed(msgspec.Struct, frozen=True, kw_only=True):
    """The Hub output's outcome: the repo, the commit made, the attempts, how to retry."""

    repo_id: str
    commit: str | None = None
    attempts: int = 0
    retry: str = ""


class HubOutput:
    """``{org}/details_{model}`` (private unless ``public``): the run's files and its card."""

    name: ClassVar[str] = NAME
    owns: ClassVar[tuple[str, ...]] = ("push_to_hub", "hub_results_org", "public", "hub_endpoint")
    after: ClassVar[tuple[str, ...]] = ("local",)

    def __init__(self, publisher: HubPublisher, store: OutputStore, public: bool, retry: str):
        self.publisher = publisher
        self.store = store
        self.public = public
        self.retry = retry

    def repo_id(self, model_name: str) -> str:
        """The details repo of ``model_name`` in the publisher's organisation."""
        from evalstream.sinks.hub import details_repo_id  # huggingface_hub only when pushing

        return details_repo_id(self.publisher.org, model_name, self.public)

    async def publish(self, run: SavedRun, files: Mapping[str, Path]) -> PushOutcome:
        """``files`` (repo path -> local file) and the run's results and card, in one commit:
        what ``write`` does after a save, and ``evalstream push`` for a run saved earlier."""
        return await self.publisher.publish_run(
            self.repo_id(run.model_name),
            dict(files),
            model_name=run.model_name,
            date_id=run.date_id,
            results_json=run.results_json,
        )

    async def write(self, run: SavedRun, before: Mapping[str, OutputOutcome]) -> OutputOutcome:
        """Push the local output's details files and the results in one commit."""
        repo_id = self.repo_id(run.model_name)
        local = before.get("local")
        if local is None or not local.ok:
            failed = Pushed(repo_id=repo_id, retry=self.retry)
            return outcome(NAME, failed, ok=False, error="local files were not written")
        files = {
            f"{run.date_id}/{Path(rel).name}": self.store.local(rel)
            for rel in local.detail["details"].values()
        }
        push = await self.publish(run, files)
        pushed = Pushed(
            repo_id=repo_id, commit=push.commit_oid, attempts=push.attempts, retry=self.retry
        )
        return outcome(
            NAME,
            pushed,
            ok=push.ok,
            error=push.error,
            paths=[f"{repo_id}/{p}" for p in push.files] if push.ok else [],
        )


def build(context: OutputContext) -> HubOutput | None:
    """With ``push_to_hub`` (the publisher then exists: the tracker made it at construction)."""
    if not context.options.push_to_hub or context.publisher is None:
        return None
    return HubOutput(context.publisher, context.store, context.options.public, context.retry_hint)
