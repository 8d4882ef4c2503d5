"""Fixtures for the service tests: a tiny random cascade (16 -> 32 px) and a TestClient factory."""
import pytest
from fastapi.testclient import TestClient

from openimagen.serve.app import create_app
from openimagen.serve.config import ServeConfig
from tests.pipeline.fixtures import tiny_pipeline


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


@pytest.fixture
def make_client(pipe):
    """make_client(api_keys=None, policy="default", **ServeConfig values) -> a started TestClient."""
    clients = []

    def make(api_keys=None, policy="default", **config):
        config.setdefault("batch_wait_ms", 2.0)
        app = create_app(pipe, ServeConfig.build(**config), api_keys=api_keys, policy=policy)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)
