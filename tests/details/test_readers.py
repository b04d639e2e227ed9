"""Every details file loads with the readers people use and reads back what was logged.

The matrix: sample shapes (``tests/_reader_shapes.py``) x details layouts x readers. pyarrow
runs in the main suite, with a check that every column has a type ``datasets`` maps; Hugging
Face ``datasets``, pandas, polars and DuckDB run in ``-m readers`` (``scripts/ci/readers.sh``:
the oldest ``datasets`` the README names in ``.venv-readers-old``, the current one with polars and
DuckDB in ``.venv-readers``). A reader that venv lacks is skipped there.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import anyio
import pyarrow.parquet as pq
import pytest

from _reader_shapes import (
    LAYOUTS,
    SHAPES,
    datasets_can_type,
    expected_rows,
    pick,
    pixels,
    shapes,
    write_run,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """One run per layout, every shape a task of it: layout -> shape -> details file."""
    root = tmp_path_factory.mktemp("readers")
    return {layout: anyio.run(write_run, root / layout, layout) for layout in LAYOUTS}


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        pytest.skip(f"{name} is not installed here (scripts/ci/readers.sh installs it)")


def read_pyarrow(path: Path, cache: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return rows


def read_datasets(path: Path, cache: Path) -> list[dict[str, Any]]:
    datasets = _module("datasets")
    data = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=cache)
    return [data[i] for i in range(len(data))]  # rows as datasets decodes them (features)


def read_pandas(path: Path, cache: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = _module("pandas").read_parquet(path).to_dict("records")
    return rows


def read_polars(path: Path, cache: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = _module("polars").read_parquet(path).to_dicts()
    return rows


def read_duckdb(path: Path, cache: Path) -> list[dict[str, Any]]:
    relation = _module("duckdb").read_parquet(str(path))
    return [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]


READERS: dict[str, Callable[[Path, Path], list[dict[str, Any]]]] = {
    "pyarrow": read_pyarrow,
    "datasets": read_datasets,
    "pandas": read_pandas,
    "polars": read_polars,
    "duckdb": read_duckdb,
}


def _reader_params() -> list[Any]:
    return [
        pytest.param(name, id=name, marks=() if name == "pyarrow" else pytest.mark.readers)
        for name in READERS
    ]


@pytest.mark.parametrize("reader", _reader_params())
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_file_loads_and_reads_back_what_was_logged(
    runs: dict[str, dict[str, Path]], tmp_path: Path, shape: str, layout: str, reader: str
) -> None:
    """The reader loads the shape's file and every row holds the logged values, in order."""
    rows = READERS[reader](runs[layout][shape], tmp_path / "cache")
    want = expected_rows(shape, layout)
    assert len(rows) == len(want)
    decoded = reader == "datasets"  # the Image feature: datasets gives PIL images
    for got, expected in zip(rows, want, strict=True):
        assert pick(got, expected) == pick(expected, expected, decoded=decoded)


@pytest.mark.readers
@pytest.mark.parametrize("layout", LAYOUTS)
def test_datasets_reads_images_back_as_pil_images(
    runs: dict[str, dict[str, Path]], tmp_path: Path, layout: str
) -> None:
    """A doc's images load as ``PIL.Image`` objects with the logged pixels (the Image feature
    the file's ``huggingface`` metadata declares), in either layout."""
    image_module = _module("PIL.Image")
    rows = read_datasets(runs[layout]["images"], tmp_path / "cache")
    logged = [doc.images for doc, _, _ in shapes()["images"].samples]
    for row, files in zip(rows, logged, strict=True):
        images = row["images"] if layout == "flat" else row["doc"]["images"]
        assert images is None if not files else len(images) == len(files)
        for image, file in zip(images or [], files or [], strict=True):
            assert isinstance(image, image_module.Image)
            assert image.format == "PNG"
            assert pixels(image) == pixels({"bytes": file})


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_every_column_has_a_type_datasets_maps(
    runs: dict[str, dict[str, Path]], shape: str, layout: str
) -> None:
    """No map, union or field-less struct anywhere in a file's schema (datasets has no feature
    for them and refuses the whole file)."""
    schema = pq.read_schema(runs[layout][shape])
    assert [f.name for f in schema if not datasets_can_type(f.type)] == []


@pytest.mark.readers
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_datasets_types_the_images_column_as_images_in_every_file(
    runs: dict[str, dict[str, Path]], shape: str, layout: str
) -> None:
    """The metadata's features match the file's types exactly, or ``datasets`` ignores them: in
    every shape (whatever else ``doc`` holds) the images are an ``Image`` feature."""
    datasets = _module("datasets")
    features = datasets.Features.from_arrow_schema(pq.read_schema(runs[layout][shape]))
    images = features["images"] if layout == "flat" else features["doc"]["images"]
    inner = images[0] if isinstance(images, list) else images.feature
    assert isinstance(inner, datasets.Image)
