"""The results file's published schema: every kind of results file validates against it with
a real JSON Schema validator, the CLI prints it, and the validation catches a file off it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import jsonschema
import pytest

from evalstream import recover
from evalstream.sinks.schema import SCHEMA_VERSION, json_schema

from _runs import killed_run, saved_run


def validator() -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(json_schema())
    return jsonschema.Draft202012Validator(json_schema())


def test_saved_and_recovered_results_validate(tmp_path: Path) -> None:
    saved = saved_run(tmp_path / "a", skill=0.6)
    data = json.loads(Path(saved.results_path).read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    validator().validate(data)
    dead = killed_run(tmp_path / "b", samples=40)
    recovered = anyio.run(lambda: recover(dead))
    data = json.loads(Path(recovered.results_path).read_text())
    assert data["evalstream"]["partial"] is True
    validator().validate(data)


def test_a_file_off_the_schema_is_caught(tmp_path: Path) -> None:
    data = json.loads(Path(saved_run(tmp_path, skill=0.6).results_path).read_text())
    for damage in (
        lambda d: d["versions"].update({"t": "one"}),
        lambda d: d.pop("summary_general"),
        lambda d: d["config_general"].update({"start_time": "noon"}),
        lambda d: d["results"]["all"].update({"acc": "high"}),
    ):
        broken = json.loads(json.dumps(data))
        damage(broken)
        with pytest.raises(jsonschema.ValidationError):
            validator().validate(broken)


def test_cli_prints_the_schema() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "evalstream.cli.main", "schema"],
        capture_output=True,
        text=True,
        check=True,
    )
    printed = json.loads(done.stdout)
    assert printed == json.loads(json.dumps(json_schema()))
    assert printed["$schema"].endswith("2020-12/schema")
