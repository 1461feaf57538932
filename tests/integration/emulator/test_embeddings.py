"""The real SDK's `embed_content` against the emulator: vectors, batches, quota, faults."""

from __future__ import annotations

import math

import pytest
from google.genai import errors

from gemini_guard.clock import FakeClock
from gemini_guard.diagnosis import Category, diagnose
from gemini_guard.emulator import EmulatorServer, serve
from tests.integration.emulator.conftest import sdk_client

MODEL = "gemini-embedding-001"


def test_each_text_gets_its_own_deterministic_unit_vector(healthy: EmulatorServer) -> None:
    client = sdk_client(healthy)
    try:
        first = client.models.embed_content(model=MODEL, contents=["red apple", "blue sea"])
        again = client.models.embed_content(model=MODEL, contents=["blue sea"])
        small = client.models.embed_content(
            model=MODEL, contents="red apple", config={"output_dimensionality": 64}
        )
    finally:
        client.close()
    assert first.embeddings is not None
    assert again.embeddings is not None
    assert small.embeddings is not None
    apple, sea = (e.values or [] for e in first.embeddings)
    assert len(apple) == 3072
    assert apple != sea
    assert again.embeddings[0].values == sea
    assert math.isclose(math.fsum(v * v for v in apple), 1.0, abs_tol=1e-4)
    assert len(small.embeddings[0].values or []) == 64


def test_a_batch_over_100_items_is_refused_as_the_api_refuses_it(
    healthy: EmulatorServer,
) -> None:
    client = sdk_client(healthy)
    try:
        with pytest.raises(errors.ClientError) as raised:
            client.models.embed_content(model=MODEL, contents=[f"text {i}" for i in range(101)])
    finally:
        client.close()
    assert raised.value.code == 400
    assert "at most 100 requests can be in one batch" in (raised.value.message or "")


def test_a_generation_model_does_not_embed_and_an_embedding_model_does_not_generate(
    healthy: EmulatorServer,
) -> None:
    client = sdk_client(healthy)
    try:
        with pytest.raises(errors.ClientError) as embed:
            client.models.embed_content(model="gemini-2.5-flash", contents="hi")
        with pytest.raises(errors.ClientError) as generate:
            client.models.generate_content(model=MODEL, contents="hi")
    finally:
        client.close()
    assert embed.value.code == 404
    assert "batchEmbedContents" in (embed.value.message or "")
    assert generate.value.code == 404


def test_every_item_of_a_batch_counts_against_rpm(clock: FakeClock) -> None:
    with serve("free-tier", clock=clock) as server:  # 100 RPM for embeddings
        client = sdk_client(server)
        try:
            client.models.embed_content(model=MODEL, contents=[f"a{i}" for i in range(60)])
            with pytest.raises(errors.ClientError) as raised:
                client.models.embed_content(model=MODEL, contents=[f"b{i}" for i in range(41)])
            client.models.embed_content(model=MODEL, contents=[f"c{i}" for i in range(40)])
            clock.advance(61)
            client.models.embed_content(model=MODEL, contents=[f"d{i}" for i in range(100)])
        finally:
            client.close()
    assert raised.value.code == 429
    diagnosis = diagnose(raised.value)
    assert diagnosis.category == Category.RATE_LIMITED
    assert diagnosis.retry_after is not None


def test_faults_strike_embeddings_only_when_the_scenario_names_them(clock: FakeClock) -> None:
    scenario = {
        "name": "embed-storm",
        "quotas": False,
        "faults": [{"kind": "overloaded", "probability": 1.0, "methods": ["embedContent"]}],
    }
    with serve(scenario, clock=clock) as server:
        client = sdk_client(server)
        try:
            with pytest.raises(errors.ServerError) as raised:
                client.models.embed_content(model=MODEL, contents="hi")
            answer = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
        finally:
            client.close()
    assert raised.value.code == 503
    assert answer.text
