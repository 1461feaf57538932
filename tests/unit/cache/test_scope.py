"""Cache scopes: which scope a Guard's calls get, and how scopes are named in a store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from google import genai

from gemini_guard.cache.scope import CacheScope, ScopeKeys, guard_scope, refuses_credential
from gemini_guard.cache.stores.memory import MemoryCacheStore
from gemini_guard.cache.stores.sqlite import SQLiteCacheStore
from gemini_guard.config import load_config
from gemini_guard.diagnosis import Category
from gemini_guard.errors import ConfigError
from gemini_guard.quota.pool import Project, ProjectPool

KEY = "AIzaSyScopeUnitKey-0123456789abcdefghij"


@pytest.fixture
def client() -> Iterator[genai.Client]:
    made = genai.Client(api_key=KEY)  # never sends anything here
    yield made
    made.close()


@pytest.mark.parametrize(
    ("mode", "project", "expected"),
    [
        # A named project: its keys share, gated by this key.
        ("project", "proj-1", CacheScope.project("proj-1", credential=KEY)),
        # Nothing names the project: the key is the scope.
        ("project", "default", CacheScope.key(KEY)),
        ("key", "proj-1", CacheScope.key(KEY)),
        ("shared", "proj-1", CacheScope.shared(credential=KEY)),
        ("shared", "default", CacheScope.shared(credential=KEY)),
    ],
)
def test_a_guards_scope(
    client: genai.Client, mode: str, project: str, expected: CacheScope
) -> None:
    assert guard_scope(mode, client=client, project=project) == expected  # type: ignore[arg-type]


def test_a_client_whose_key_cannot_be_read_needs_a_named_project() -> None:
    unknown = object()
    assert guard_scope("project", client=unknown, project="proj-1") == CacheScope.project("proj-1")
    with pytest.raises(ConfigError, match="Guard\\(project="):
        guard_scope("project", client=unknown, project="default")
    with pytest.raises(ConfigError, match="cannot be read"):
        guard_scope("key", client=unknown, project="proj-1")


def test_a_vertex_client_is_scoped_by_its_project() -> None:
    vertex = genai.Client(vertexai=True, project="vx-proj-1", location="us-central1")
    try:
        # No API key: OAuth credentials are checked by Google, not gated here.
        assert guard_scope("project", client=vertex, project="default") == CacheScope.project(
            "vx-proj-1"
        )
        assert guard_scope("project", client=vertex, project="named") == CacheScope.project("named")
    finally:
        vertex.close()


def test_a_pool_is_one_scope_of_its_projects(client: genai.Client) -> None:
    pool = ProjectPool([Project("b", keys=("kb",)), Project("a", keys=("ka1", "ka2"))])
    try:
        scope = guard_scope("project", client=client, project="*", pool=pool)
        assert scope.kind == "project"
        assert scope.credential is None  # the pool's keys are the operator's own
        same = ProjectPool([Project("a", keys=("other",)), Project("b", keys=("x",))])
        assert guard_scope("project", client=client, project="*", pool=same) == scope
        by_key = guard_scope("key", client=client, project="*", pool=pool)
        assert by_key.kind == "key"
        assert by_key != scope
        same.close()
    finally:
        pool.close()


def test_unknown_modes_and_empty_names_are_clear_errors(client: genai.Client) -> None:
    with pytest.raises(ConfigError, match="not one of: project, key, shared"):
        guard_scope("everyone", client=client, project="p")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="non-empty name"):
        CacheScope.tenant("")
    with pytest.raises(ConfigError, match="non-empty API key"):
        CacheScope.project("p", credential="")
    with pytest.raises(ConfigError, match=r"cache.scope \(got 'all'\).*'project', 'key' or"):
        load_config(
            env={"GEMINI_GUARD_CACHE__URL": "memory://", "GEMINI_GUARD_CACHE__SCOPE": "all"}
        )


def test_the_cache_scope_setting_is_read_from_the_environment() -> None:
    config = load_config(
        env={"GEMINI_GUARD_CACHE__URL": "memory://", "GEMINI_GUARD_CACHE__SCOPE": "shared"}
    )
    assert config.cache is not None
    assert config.cache.scope == "shared"


def test_a_scope_never_shows_its_name_or_credential() -> None:
    scope = CacheScope.tenant("gw-token-secret", credential=KEY)
    assert "gw-token-secret" not in repr(scope)
    assert KEY not in repr(scope)
    assert "tenant" in repr(scope)


def test_stored_names_are_keyed_by_the_stores_secret(tmp_path: Path) -> None:
    first = ScopeKeys(MemoryCacheStore())
    again = ScopeKeys(MemoryCacheStore())
    project = CacheScope.project("proj-1")
    assert first.scope_id(project) == first.scope_id(CacheScope.project("proj-1", credential=KEY))
    # Another store, another secret: names cannot be joined across stores.
    assert again.scope_id(project) != first.scope_id(project)
    # Kinds never collide: a tenant named like a project is another scope.
    assert first.scope_id(CacheScope.tenant("proj-1")) != first.scope_id(project)
    assert first.scope_id(CacheScope.shared(group="g")) != first.scope_id(CacheScope.shared())
    credential = first.credential_id(KEY)
    assert len(credential) == 64
    assert KEY not in credential
    # Two handles on one SQLite file agree (the secret is in the file).
    path = tmp_path / "cache.db"
    a, b = SQLiteCacheStore(path), SQLiteCacheStore(path)
    try:
        assert ScopeKeys(a).scope_id(project) == ScopeKeys(b).scope_id(project)
        assert ScopeKeys(a).credential_id(KEY) == ScopeKeys(b).credential_id(KEY)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(
    ("category", "refused"),
    [
        (Category.INVALID_API_KEY, True),  # invalid or leaked
        (Category.PERMISSION_DENIED, True),  # suspended, no access
        (Category.RATE_LIMITED, False),
        (Category.BAD_REQUEST, False),
        (Category.OVERLOADED, False),
    ],
)
def test_which_failures_refuse_a_credential(category: Category, refused: bool) -> None:
    assert refuses_credential(category) is refused
