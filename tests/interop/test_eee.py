"""`evalstream export --format eee` judged by every_eval_ever itself (its 0.3 package from PyPI,
Python >= 3.12: scripts/ci/eee.sh): its validator API with the datastore's semantic checks, its
command line, and ``jsonschema`` against its bundled JSON schemas, on every record of a real run
of both details layouts. The same validators must reject records with a planted fault, so a
pass here means something."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from evalstream.cli.main import main
from evalstream.interop.eee import SCHEMA_VERSION

from _eee import TASKS, saved_eee_run, saved_odd_run

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.eee

if os.environ.get("EVALSTREAM_EEE_GROUP"):  # scripts/ci/eee.sh: a missing package fails, no skip
    import every_eval_ever.validator  # noqa: F401
eee_validator = pytest.importorskip("every_eval_ever.validator")
from every_eval_ever.eval_types import EvaluationLog
from every_eval_ever.schema import get_schema_version, schema_json
from jsonschema import Draft7Validator

DOCS = 150


@pytest.fixture(scope="module", params=["flat", "lighteval"])
def out(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The export folder of a real run (3 tasks, stderr, 150 samples each)."""
    root = tmp_path_factory.mktemp(f"eee-{request.param}")
    saved_eee_run(root / "runs", docs=DOCS, layout=request.param)
    argv = ["export", str(root / "runs"), "--latest", "--format", "eee", "-o", str(root / "eee")]
    assert main(argv) == 0
    return root / "eee"


def _files(out: Path, count: int = 2 * len(TASKS)) -> list[Path]:
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(files) == count
    return files


def _validate(out: Path, count: int = 2 * len(TASKS)) -> list[Any]:
    """every_eval_ever's validator on every file, with the checks its PR bot runs (paths,
    companion files, score metadata, model deployment, model identity)."""
    files = _files(out, count)
    present = {str(p.relative_to(out)) for p in files}
    return [
        eee_validator.validate_file(
            path,
            repo_path=str(path.relative_to(out)),
            available_files=present,
            read_repo_file=lambda rel: (out / rel).read_text(encoding="utf-8"),
            run_semantic_checks=True,
        )
        for path in files
    ]


def _schema_errors(out: Path, count: int = 2 * len(TASKS)) -> list[str]:
    """``jsonschema`` (draft 7, the schemas' own) on every aggregate and every instance line."""
    aggregate = Draft7Validator(schema_json("eval.schema.json"))
    instance = Draft7Validator(schema_json("instance_level_eval.schema.json"))
    errors = []
    for path in _files(out, count):
        if path.suffix == ".json":
            records = [json.loads(path.read_text())]
            validator = aggregate
        else:
            records = [json.loads(line) for line in path.read_text().splitlines()]
            validator = instance
        for n, record in enumerate(records):
            errors += [
                f"{path.name}:{n}: {e.json_path}: {e.message}"
                for e in validator.iter_errors(record)
            ]
    return errors


def test_every_file_passes_the_validator_api_clean(out: Path):
    """Valid, and not even a warning: merge-ready as every_eval_ever's PR bot judges it."""
    reports = _validate(out)
    assert [
        (r.file_path.name, r.errors, r.warnings) for r in reports if not r.valid or r.warnings
    ] == []
    lines = sum(r.line_count for r in reports if r.file_type == "instance")
    assert lines == DOCS * 4  # acc and margin, em, word_perplexity


def test_every_record_matches_the_json_schemas(out: Path):
    """No jsonschema error on any aggregate or any of the instance lines."""
    assert _schema_errors(out) == []


def test_their_command_line_passes(out: Path):
    """``python -m every_eval_ever validate`` (the entry point its README gives) exits 0: no
    error, no warning, on the export folder laid out as a datastore checkout."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "every_eval_ever",
            "validate",
            "--format",
            "json",
            f"{out}/data/*/*/*/*.json*",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    reports = json.loads(done.stdout)
    assert len(reports) == 2 * len(TASKS)
    assert all(r["valid"] and not r["warnings"] for r in reports)


def test_the_schema_version_is_theirs():
    """The records say the schema version of the package that validates them."""
    assert get_schema_version() == SCHEMA_VERSION


def test_model_info_satisfies_the_model_and_the_schema_where_they_disagree(out: Path):
    """Without ``model_info.additional_details`` a record passes the pydantic model (which fills
    both keys with "unknown") but not the JSON schema, which requires them: the export writes
    both, so it passes both."""
    path = next(p for p in _files(out) if p.suffix == ".json")
    record = json.loads(path.read_text())
    assert set(record["model_info"]["additional_details"]) >= {
        "deployment_type",
        "model_availability",
    }
    del record["model_info"]["additional_details"]
    filled = EvaluationLog.model_validate(record)
    assert filled.model_info.additional_details == {
        "deployment_type": "unknown",
        "model_availability": "unknown",
    }
    errors = list(Draft7Validator(schema_json("eval.schema.json")).iter_errors(record))
    assert [e.message for e in errors] == ["'additional_details' is a required property"]


def _planted(out: Path, tmp_path: Path, kind: str, fault: Any) -> Path:
    """A copy of the export with ``fault`` applied to the first record of ``kind``."""
    copy = tmp_path / "planted"
    shutil.copytree(out, copy)
    path = next(p for p in _files(copy) if p.suffix == kind)
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    fault(first)
    lines[0] = json.dumps(first)
    path.write_text("\n".join(lines) + "\n")
    return copy


@pytest.mark.parametrize(
    ("kind", "fault"),
    [
        (".json", lambda r: r.pop("evaluation_id")),  # a required field missing
        (".json", lambda r: r["evaluation_results"][0]["score_details"].update(score="high")),
        (".jsonl", lambda r: r.pop("answer_attribution")),
        (".jsonl", lambda r: r["evaluation"].update(score="high")),  # a wrong type
    ],
    ids=[
        "aggregate-missing-id",
        "aggregate-score-text",
        "sample-missing-field",
        "sample-score-text",
    ],
)
def test_a_planted_fault_fails_both_validators(out: Path, tmp_path: Path, kind: str, fault: Any):
    """The checks above can fail: one broken record makes the validator and the schema object."""
    copy = _planted(out, tmp_path, kind, fault)
    assert any(not r.valid for r in _validate(copy))
    assert _schema_errors(copy)


@pytest.mark.parametrize("save_details", [True, False])
def test_nan_results_and_a_bare_model_name_stay_valid(tmp_path: Path, save_details: bool):
    """NaN results left out, no details, a model named without its organisation: still valid
    and on the schemas; the one warning is the validator's, that no developer is named."""
    saved_odd_run(tmp_path / "runs", save_details=save_details)
    argv = [
        "export",
        str(tmp_path / "runs"),
        "--latest",
        "--format",
        "eee",
        "-o",
        str(tmp_path / "eee"),
    ]
    assert main(argv) == 0
    count = 2 if save_details else 1
    reports = _validate(tmp_path / "eee", count)
    assert all(r.valid for r in reports), [r.errors for r in reports]
    warnings = [w["msg"] for r in reports for w in r.warnings]
    assert len(warnings) == 1 and "model_info.developer is required" in warnings[0]
    assert _schema_errors(tmp_path / "eee", count) == []
