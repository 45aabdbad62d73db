import pytest

from batchjobs.errors import JobFailed
from batchjobs.models import Role
from batchjobs.policy import is_allowed, s3_policy


def test_a_read_prefix_allows_get_and_list_under_it_only():
    policy = s3_policy([("b", "in/")], [])
    assert is_allowed(policy, "s3:GetObject", "arn:aws:s3:::b/in/x.json")
    assert not is_allowed(policy, "s3:GetObject", "arn:aws:s3:::b/input-other/x.json")
    assert is_allowed(policy, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "in/sub"})
    assert not is_allowed(policy, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "other"})
    assert not is_allowed(policy, "s3:PutObject", "arn:aws:s3:::b/in/x.json")


def test_an_explicit_deny_wins_over_an_allow():
    policy = s3_policy([("b", "")], [("b", "")])
    policy["Statement"].append({"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::b/secret/*"})
    assert is_allowed(policy, "s3:PutObject", "arn:aws:s3:::b/out/x")
    assert not is_allowed(policy, "s3:PutObject", "arn:aws:s3:::b/secret/x")
    assert not is_allowed(policy, "s3:GetObject", "arn:aws:s3:::b/secret/x")


def test_wildcards_and_case_rules():
    policy = {"Statement": [{"Effect": "Allow", "Action": "S3:Get*", "Resource": "arn:aws:s3:::b/day-??/*"}]}
    assert is_allowed(policy, "s3:GetObject", "arn:aws:s3:::b/day-01/x")
    assert not is_allowed(policy, "s3:GetObject", "arn:aws:s3:::b/day-001/x")
    assert not is_allowed(policy, "s3:GetObject", "arn:aws:s3:::B/day-01/x")


def test_an_unknown_condition_operator_never_grants():
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": "arn:aws:s3:::b",
                "Condition": {"StringEqualsIgnoreCaseSomething": {"s3:prefix": "*"}},
            }
        ]
    }
    assert not is_allowed(policy, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "x"})


def test_regex_characters_in_resources_are_literal():
    policy = s3_policy([("b", "a.b/")], [])
    assert is_allowed(policy, "s3:GetObject", "arn:aws:s3:::b/a.b/x")
    assert not is_allowed(policy, "s3:GetObject", "arn:aws:s3:::b/axb/x")


@pytest.mark.django_db
def test_role_require_names_the_path_and_the_missing_permission():
    role = Role.create_with_prefixes("r", read=["s3://bkt/in/"], write=["s3://bkt/out/"])
    role.require("s3:PutObject", "s3://bkt/out/x.json.out")
    with pytest.raises(JobFailed) as excinfo:
        role.require("s3:PutObject", "s3://bkt/elsewhere/x.json.out")
    assert "s3:PutObject" in str(excinfo.value)
    assert "s3://bkt/elsewhere/x.json.out" in str(excinfo.value)
    assert role.prefixes("s3:GetObject") == ["s3://bkt/in/"]
