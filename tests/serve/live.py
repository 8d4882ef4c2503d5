"""Start ``openimagen serve`` as a real process on a free loopback port (for live-server tests and benchmarks)."""
import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``with LiveServer(["--model", DIR]) as srv: httpx.get(srv.url + "/healthz")``; stops it (SIGTERM) at exit."""

    def __init__(self, args=(), startup_timeout: float = 120.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args, self.startup_timeout = list(args), startup_timeout
        self.proc = None

    def __enter__(self) -> "LiveServer":
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        # the log goes to a file: a pipe nobody reads would fill up and block the server's logging
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "openimagen", "serve", "--port", str(self.port),
                                      *self.args], stdout=self.log, stderr=subprocess.STDOUT, env=env, text=True)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.proc.kill()
        raise RuntimeError("server did not start in time")

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()

    def output(self) -> str:
        """Everything the server has printed so far."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()
