"""Fixtures of the cluster-in-a-box suite: a fresh API server stand-in per test, and a client."""

import pytest

from apiserver import ApiServer
from box import Client


@pytest.fixture
def server():
    server = ApiServer().start()
    yield server
    server.stop()


@pytest.fixture
def client(server):
    return Client(server.url)
