"""Limits: every limit positive; a tenant limit of 0 means "the global one", and a namespace
never gets more than the whole store ("ids of one namespace ... default `--max-ids`")."""

from __future__ import annotations

from dataclasses import fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.engine import Limits

GLOBAL = [f.name for f in fields(Limits) if not f.name.startswith("tenant_")]
TENANT = [f.name for f in fields(Limits) if f.name.startswith("tenant_")]


@pytest.mark.parametrize("name", GLOBAL)
@pytest.mark.parametrize("value", [0, -1, -0.5])
def test_every_global_limit_must_be_positive(name: str, value) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be positive, got {value!r}$"):
        Limits(**{name: value})


@pytest.mark.parametrize("name", TENANT)
def test_a_tenant_limit_may_be_zero_but_not_negative(name: str) -> None:
    assert getattr(Limits(**{name: 0}), name) == 0
    assert getattr(Limits(**{name: 1}), name) == 1
    with pytest.raises(ValueError, match=rf"^{name} must be positive, got -1$"):
        Limits(**{name: -1})


@given(st.integers(1, 10**6), st.integers(0, 10**6), st.integers(1, 10**9), st.integers(0, 10**9))
def test_a_namespace_gets_its_own_limit_within_the_global_one(
    max_ids: int, tenant_ids: int, max_memory: int, tenant_memory: int
) -> None:
    limits = Limits(
        max_ids=max_ids,
        tenant_max_ids=tenant_ids,
        max_memory_bytes=max_memory,
        tenant_max_memory_bytes=tenant_memory,
    )
    assert limits.ids_per_tenant == (min(tenant_ids, max_ids) if tenant_ids else max_ids)
    assert limits.memory_per_tenant == (
        min(tenant_memory, max_memory) if tenant_memory else max_memory
    )
