"""Page tokens: keyset positions bound to the list and its filter."""

import pytest

from tests.api.support import create_group, interactions_schema

RECIPE = "arn:aws:personalize:::recipe/aws-popularity-count"


def _names(page, key="datasetGroups"):
    return [row["name"] for row in page[key]]


def test_a_group_created_between_two_pages_does_not_show_twice(personalize):
    for n in range(5):
        create_group(personalize, f"g{n}")
    first = personalize.list_dataset_groups(maxResults=2)
    assert _names(first) == ["g4", "g3"]
    create_group(personalize, "newcomer")
    second = personalize.list_dataset_groups(maxResults=2, nextToken=first["nextToken"])
    third = personalize.list_dataset_groups(maxResults=2, nextToken=second["nextToken"])
    assert _names(second) + _names(third) == ["g2", "g1", "g0"]
    assert "nextToken" not in third


def test_a_deleted_group_between_two_pages_skips_nothing(personalize):
    arns = [create_group(personalize, f"g{n}") for n in range(4)]
    first = personalize.list_dataset_groups(maxResults=2)
    personalize.delete_dataset_group(datasetGroupArn=arns[3])
    rest = personalize.list_dataset_groups(maxResults=10, nextToken=first["nextToken"])
    assert _names(first) + _names(rest) == ["g3", "g2", "g1", "g0"]


def test_the_paginator_walks_every_page_once(personalize):
    for n in range(7):
        create_group(personalize, f"g{n}")
    pages = personalize.get_paginator("list_dataset_groups").paginate(PaginationConfig={"PageSize": 3})
    names = [g["name"] for page in pages for g in page["datasetGroups"]]
    assert names == [f"g{n}" for n in range(6, -1, -1)]


def test_a_token_is_bound_to_its_filter(personalize):
    groups = [create_group(personalize, f"g{n}") for n in range(2)]
    for n in range(3):
        personalize.create_solution(name=f"s{n}", datasetGroupArn=groups[0], recipeArn=RECIPE)
    page = personalize.list_solutions(datasetGroupArn=groups[0], maxResults=1)
    with pytest.raises(personalize.exceptions.InvalidNextTokenException):
        personalize.list_solutions(datasetGroupArn=groups[1], maxResults=1, nextToken=page["nextToken"])
    with pytest.raises(personalize.exceptions.InvalidNextTokenException):
        personalize.list_solutions(maxResults=1, nextToken=page["nextToken"])
    following = personalize.list_solutions(datasetGroupArn=groups[0], maxResults=5, nextToken=page["nextToken"])
    assert [s["name"] for s in following["solutions"]] == ["s1", "s0"]


def test_a_token_of_another_list_or_tampered_with_is_invalid(personalize):
    for n in range(3):
        create_group(personalize, f"g{n}")
    personalize.create_schema(name="schema", schema=interactions_schema())
    token = personalize.list_dataset_groups(maxResults=1)["nextToken"]
    with pytest.raises(personalize.exceptions.InvalidNextTokenException):
        personalize.list_schemas(nextToken=token)
    with pytest.raises(personalize.exceptions.InvalidNextTokenException):
        personalize.list_dataset_groups(nextToken=token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1])


def test_recipes_page_through_their_fixed_list(personalize):
    everything = [r["name"] for r in personalize.list_recipes()["recipes"]]
    pages = personalize.get_paginator("list_recipes").paginate(PaginationConfig={"PageSize": 3})
    assert [r["name"] for page in pages for r in page["recipes"]] == everything
    token = personalize.list_recipes(maxResults=1)["nextToken"]
    with pytest.raises(personalize.exceptions.InvalidNextTokenException):
        personalize.list_recipes(recipeProvider="SERVICE", nextToken=token)
