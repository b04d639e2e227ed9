#!/usr/bin/env bash
# The -m s3 group: sharded runs (and SQL over a saved run) on a real S3 API. Installs
# moto[server] (the S3 server, started on 127.0.0.1 by the test fixture and stopped after it),
# s3fs (the client evalstream uses through fsspec) and ray (examples/ray_sharded_eval.py on a
# local Ray cluster the test starts and shuts down) into the project venv, then runs the group.
# Nothing is started globally.
set -euo pipefail
EXTRAS="dev" source "$(dirname "$0")/../_venv.sh"
.venv/bin/python -m pip install --quiet "moto[server]>=5" "s3fs>=2024.2" "ray>=2.40"
exec .venv/bin/pytest -q -m s3 -p no:cacheprovider tests/shards/test_s3.py tests/shards/test_ray.py
