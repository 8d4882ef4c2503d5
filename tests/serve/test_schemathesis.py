"""``schemathesis run`` against the live service's /openapi.json, without and with an API key: no server errors,
no response that breaks the schema, no schema-valid request refused, no hang (bounded examples)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipeline.fixtures import tiny_pipeline
from tests.serve.live import LiveServer

SCHEMATHESIS = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    tiny_pipeline().save_pretrained(root / "model")
    (root / "keys.txt").write_text("fuzz-key\n")
    with LiveServer(["--model", str(root / "model"), "--api-keys", str(root / "keys.txt"), "--max-steps", "12",
                     "--max-images", "2", "--timeout", "30"]) as srv:
        yield srv


@pytest.mark.parametrize("headers", [[], ["-H", "Authorization: Bearer fuzz-key"]], ids=["no-key", "key"])
def test_schemathesis_finds_no_server_error_or_schema_violation(server, headers):
    run = subprocess.run([SCHEMATHESIS, "run", server.url + "/openapi.json", "--checks", "all", "--max-examples", "15",
                          "--generation-deterministic", "--request-timeout", "40",
                          # an upload's bytes cannot be described by the schema (an empty "image" file is schema-valid
                          # and rightly a 422): the edits route has its own bad-upload tests (tests/serve/test_edits.py)
                          "--exclude-path", "/v1/images/edits", *headers],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:]
    assert server.proc.poll() is None                  # the service is still up
