"""A real inspect_ai evaluation, offline: ``python tests/inspect_child.py LOG_DIR N [EPOCHS]``.

inspect_ai's own ``eval`` runs a small arithmetic task of ``N`` samples on its builtin
``mockllm/model`` with three scorers: ``match()``, ``includes()`` and ``partial``, whose letter
scores (C, P, I) exercise inspect's ``value_to_float``. The mock model answers sample ``i``
(``i + i``) off by one when ``i % 4 == 0``, wrong when ``i % 3 == 0``, else right, and right
in every epoch after the first (which epoch is first is not fixed: the answers are); each output
carries its token usage, else mockllm counts tokens with tiktoken, which downloads its encoding.
Prints the log file written.
"""

from __future__ import annotations

import sys
from typing import Any

from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.model import ModelOutput, ModelUsage, get_model
from inspect_ai.scorer import Score, Target, accuracy, includes, match, scorer, stderr
from inspect_ai.solver import TaskState, generate


def question(i: int) -> str:
    """Sample ``i``'s input, shared with the tests' native run of the same docs."""
    return f"What is {i} + {i}?"


CALLS: dict[int, int] = {}


def answer(messages: list[Any], *_: Any) -> ModelOutput:
    i = int(messages[-1].text.split()[2])
    CALLS[i] = CALLS.get(i, 0) + 1
    said = 2 * i if CALLS[i] > 1 else 2 * i + 1 if i % 4 == 0 else i + 1 if i % 3 == 0 else 2 * i
    output = ModelOutput.from_content(model="mockllm", content=str(said))
    output.usage = ModelUsage(input_tokens=8, output_tokens=1, total_tokens=9)
    return output


@scorer(metrics=[accuracy(), stderr()])
def partial() -> Any:
    """C when right, P when off by one, I otherwise."""

    async def score(state: TaskState, target: Target) -> Score:
        gap = abs(int(state.output.completion) - int(target.text))
        return Score(value="C" if gap == 0 else "P" if gap == 1 else "I")

    return score


def main(log_dir: str, n: int, epochs: int) -> None:
    samples = [Sample(id=i, input=question(i), target=str(2 * i)) for i in range(1, n + 1)]
    task = Task(
        dataset=samples,
        solver=generate(),
        scorer=[match(), includes(), partial()],
        name="arith",
        epochs=epochs,
    )
    model = get_model("mockllm/model", custom_outputs=answer)
    (log,) = eval(task, model=model, log_dir=log_dir, display="none")
    assert log.status == "success", log.error
    sys.stdout.write(f"{log.location}\n")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1)
