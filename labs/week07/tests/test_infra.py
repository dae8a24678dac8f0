"""Visible component tests of week 7, task 5: the CloudFormation template ``labs/infra/artifacts.yaml``."""

import pytest
from conftest import ROLES, as_list, privilege_problems, resource, role_statements, summary

PUBLIC_ACCESS = (
    "BlockPublicAcls",
    "BlockPublicPolicy",
    "IgnorePublicAcls",
    "RestrictPublicBuckets",
)


@pytest.mark.points(1)
@pytest.mark.task(5)
def test_the_bucket_encrypts_and_versions_every_object(template):
    props = resource(template, "ArtifactBucket", "AWS::S3::Bucket")
    rules = (props.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration") or []
    algorithms = [(r.get("ServerSideEncryptionByDefault") or {}).get("SSEAlgorithm") for r in rules]
    assert set(algorithms) & {"AES256", "aws:kms"}, (
        "ArtifactBucket has no default encryption: BucketEncryption needs a rule whose "
        f"ServerSideEncryptionByDefault has an SSEAlgorithm (found {algorithms or 'no rule'})"
    )
    versioning = (props.get("VersioningConfiguration") or {}).get("Status")
    assert versioning == "Enabled", (
        f"ArtifactBucket's VersioningConfiguration Status is {versioning!r}, expected 'Enabled': "
        "an overwritten or deleted model must be recoverable"
    )


@pytest.mark.points(1)
@pytest.mark.task(5)
def test_the_bucket_blocks_every_kind_of_public_access(template):
    props = resource(template, "ArtifactBucket", "AWS::S3::Bucket")
    block = props.get("PublicAccessBlockConfiguration") or {}
    missing = [name for name in PUBLIC_ACCESS if block.get(name) is not True]
    assert not missing, (
        f"ArtifactBucket's PublicAccessBlockConfiguration does not set {', '.join(missing)} to "
        "true: all four settings together keep the bucket private"
    )


@pytest.mark.points(1)
@pytest.mark.task(5)
def test_the_serving_role_reads_the_artifacts_and_no_role_is_broader(template):
    reads = [
        s
        for s in role_statements(template, "ServingRole")
        if s.get("Effect") == "Allow" and "s3:GetObject" in as_list(s.get("Action", []))
    ]
    assert reads, "ServingRole has no statement that allows s3:GetObject: it cannot load a model"
    problems = [
        p
        for role in ROLES
        for s in role_statements(template, role)
        for p in privilege_problems(role, s)
    ]
    assert not problems, f"least privilege: {summary(problems)}"
