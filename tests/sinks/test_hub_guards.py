"""Hub pushes: model names the Hub refuses fail at log_model_info, and no log line shows the
token, even with the root logger at DEBUG and a server echoing it back."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
import pytest

from evalstream import ConfigError, Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec
from evalstream.sinks.retry import RetryPolicy
from evalstream.testing import LoopbackHub

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.usefixtures("hf_env")

ORG = "evals-org"
FAST = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.02, jitter=0.0)
TASK = TaskSpec(name="lb|t|0")


def _tracker(out: Path, hub: LoopbackHub) -> EvaluationTracker:
    return EvaluationTracker(
        out,
        push_to_hub=True,
        hub_results_org=ORG,
        hub_token=hub.token,
        hub_endpoint=hub.endpoint,
        hub_retry=FAST,
    )


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("org/a#b", "characters"),
        ("org/a?b", "characters"),
        ("org/a b", "characters"),
        ("org/a|b", "characters"),
        ("org/modèle", "characters"),
        ("org/" + "x" * 90, "characters long"),
    ],
)
async def test_hub_invalid_model_names_fail_at_log_model_info(
    tmp_path: Path, name: str, why: str
) -> None:
    """With push_to_hub=True, a name whose details repo the Hub would refuse fails at once,
    saying why; the same name is fine without pushing."""
    with LoopbackHub() as hub, anyio.fail_after(30):
        async with _tracker(tmp_path / "hub", hub) as tracker:
            with pytest.raises(ConfigError, match=why):
                await tracker.log_model_info(ModelInfo(model_name=name))
        assert hub.requests == ()
    async with EvaluationTracker(tmp_path / "local") as tracker:
        await tracker.log_model_info(ModelInfo(model_name=name))


async def test_no_log_line_shows_the_token_even_when_echoed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Root logger at DEBUG, the Hub echoes the Authorization header in a response: the
    header is logged by the HTTP library, redacted; the push still succeeds."""
    caplog.set_level(logging.DEBUG)
    with LoopbackHub() as hub:
        hub.inject("*", ".*", status=503, times=2, headers={"X-Echo": f"Bearer {hub.token}"})
        with anyio.fail_after(60):
            async with _tracker(tmp_path, hub) as tracker:
                await tracker.log_model_info(ModelInfo(model_name="org/m"))
                await tracker.log_tasks([TASK])
                for i in range(5):
                    await tracker.log_sample(
                        TASK.name, Doc(query=str(i)), [ModelResponse(result=[1.0])], {"acc": 1.0}
                    )
                result = await tracker.save()
        token = hub.token
    hub_outcome = result.output("hub")
    assert hub_outcome is not None and hub_outcome.ok, hub_outcome
    messages = [r.getMessage() for r in caplog.records]
    assert any("X-Echo" in m and "[redacted]" in m for m in messages), "the echo was not logged"
    assert not any(token in m for m in messages)
    assert not any(token[3:] in m for m in messages)  # not even without its prefix
