"""Merging the feed's partial updates."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from f1daemon.feed.state import merge

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)


def test_objects_merge_key_by_key_and_carry_what_is_omitted() -> None:
    state = {
        "Lines": {"44": {"Position": "1", "Sectors": [{"Value": ""}, {"Value": ""}, {"Value": ""}]}}
    }
    merge(state, {"Lines": {"44": {"Sectors": {"1": {"Value": "30.1"}}}, "16": {"Position": "2"}}})
    assert state == {
        "Lines": {
            "44": {"Position": "1", "Sectors": [{"Value": ""}, {"Value": "30.1"}, {"Value": ""}]},
            "16": {"Position": "2"},
        }
    }


def test_an_index_past_the_end_appends() -> None:
    assert merge([{"Compound": "SOFT"}], {"1": {"Compound": "HARD"}}) == [
        {"Compound": "SOFT"},
        {"Compound": "HARD"},
    ]


def test_a_full_list_replaces_the_list() -> None:
    assert merge({"Stints": [1, 2, 3]}, {"Stints": [4]}) == {"Stints": [4]}


@given(values, values)
def test_merge_never_raises_and_a_scalar_or_list_patch_wins(state: Any, patch: Any) -> None:
    result = merge(copy.deepcopy(state), copy.deepcopy(patch))
    if not isinstance(patch, dict):
        assert result == patch


@given(
    st.dictionaries(st.text(max_size=3), values, max_size=4),
    st.dictionaries(st.text(max_size=3), scalars, max_size=4),
)
def test_merging_scalars_into_an_object_sets_exactly_those_keys(
    state: dict[str, Any], patch: dict[str, Any]
) -> None:
    result = merge(copy.deepcopy(state), patch)
    for key, value in patch.items():
        if key != "_kf":
            assert result[key] == value
    for key in state.keys() - patch.keys():
        assert result[key] == state[key]
