"""The role check's parts: what a call needs, how a statement matches, how the template's role resolves."""

from __future__ import annotations

from local.permissions import Need, RolePolicy, Statement, needs_for

REGION, ACCOUNT = "us-east-1", "123456789012"


def test_a_versioned_read_needs_the_version_action():
    assert needs_for("s3", "GetObject", {"Bucket": "b", "Key": "k/x.png"}, REGION, ACCOUNT) == [
        Need("s3:GetObject", "arn:aws:s3:::b/k/x.png")
    ]
    assert needs_for("s3", "GetObject", {"Bucket": "b", "Key": "x", "VersionId": "v1"}, REGION, ACCOUNT) == [
        Need("s3:GetObjectVersion", "arn:aws:s3:::b/x")
    ]
    assert needs_for("s3", "PutObjectTagging", {"Bucket": "b", "Key": "x", "VersionId": "v"}, REGION, ACCOUNT) == [
        Need("s3:PutObjectVersionTagging", "arn:aws:s3:::b/x")
    ]
    assert needs_for("s3", "HeadObject", {"Bucket": "b", "Key": "x"}, REGION, ACCOUNT)[0].action == "s3:GetObject"


def test_batch_and_transaction_calls_need_each_table():
    batch = needs_for("dynamodb", "BatchGetItem", {"RequestItems": {"results": {}, "cache": {}}}, REGION, ACCOUNT)
    assert batch == [
        Need("dynamodb:BatchGetItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/results"),
        Need("dynamodb:BatchGetItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/cache"),
    ]
    items = [{"Put": {"TableName": "a"}}, {"ConditionCheck": {"TableName": "b"}}]
    needs = needs_for("dynamodb", "TransactWriteItems", {"TransactItems": items}, REGION, ACCOUNT)
    assert [n.action for n in needs] == ["dynamodb:PutItem", "dynamodb:ConditionCheckItem"]
    query = needs_for("dynamodb", "Query", {"TableName": "t", "IndexName": "by-flag"}, REGION, ACCOUNT)
    assert query[0].resource.endswith("table/t/index/by-flag")


def test_rekognition_reads_an_s3_object_with_the_callers_permissions():
    params = {"Image": {"S3Object": {"Bucket": "b", "Name": "big.jpg", "Version": "v"}}}
    assert needs_for("rekognition", "DetectLabels", params, REGION, ACCOUNT) == [
        Need("rekognition:DetectLabels", "*"),
        Need("s3:GetObjectVersion", "arn:aws:s3:::b/big.jpg"),
    ]


def test_statements_match_actions_without_case_and_resources_with_wildcards():
    statement = Statement("S", ("s3:GetObject", "dynamodb:*Item"), ("arn:aws:s3:::b/uploads/*", "arn:aws:dynamodb:*"))
    assert statement.allows(Need("s3:getobject", "arn:aws:s3:::b/uploads/a/b.png"))
    assert not statement.allows(Need("s3:GetObject", "arn:aws:s3:::b/raw/x"))
    assert not statement.allows(Need("s3:GetObject", "arn:aws:s3:::bb/uploads/x")), "a bucket is not a prefix match"
    assert statement.allows(Need("dynamodb:PutItem", "arn:aws:dynamodb:us-east-1:1:table/t"))
    assert not statement.allows(Need("dynamodb:Query", "arn:aws:dynamodb:us-east-1:1:table/t"))
    assert not Statement("C", ("s3:*",), ("*",), conditional=True).allows(Need("s3:GetObject", "x"))


TEMPLATE = {
    "Parameters": {"Existing": {"Type": "String", "Default": ""}, "Readers": {"Type": "CommaDelimitedList"}},
    "Conditions": {"Create": {"Fn::Equals": [{"Ref": "Existing"}, ""]}},
    "Resources": {
        "Bucket": {"Type": "AWS::S3::Bucket"},
        "Table": {"Type": "AWS::DynamoDB::Table"},
        "Queue": {"Type": "AWS::SQS::Queue"},
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Policies": [
                    {
                        "PolicyName": "p",
                        "PolicyDocument": {
                            "Statement": [
                                {
                                    "Sid": "Read",
                                    "Effect": "Allow",
                                    "Action": "s3:GetObject",
                                    "Resource": {
                                        "Fn::If": [
                                            "Create",
                                            {"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/*"},
                                            {"Fn::Sub": "arn:aws:s3:::${Existing}/in/*"},
                                        ]
                                    },
                                },
                                {"Fn::If": ["Create", {"Ref": "AWS::NoValue"}, {"Sid": "Never", "Effect": "Allow"}]},
                                {
                                    "Sid": "Write",
                                    "Effect": "Allow",
                                    "Action": ["dynamodb:PutItem", "sqs:SendMessage"],
                                    "Resource": [{"Fn::GetAtt": ["Table", "Arn"]}, {"Fn::GetAtt": "Queue.Arn"}],
                                },
                            ]
                        },
                    }
                ]
            },
        },
    },
}
PHYSICAL = {"Bucket": "bkt", "Table": "tbl", "Queue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/q1", "Role": "r"}


def resolve(parameters: dict[str, str]) -> RolePolicy:
    return RolePolicy.from_template(
        TEMPLATE, PHYSICAL, parameters, stack_name="s", region=REGION, account=ACCOUNT, role_logical_id="Role"
    )


def test_the_role_resolves_with_the_stacks_names_and_conditions():
    policy = resolve({})
    assert [s.sid for s in policy.statements] == ["Read", "Write"], "NoValue drops the statement"
    assert policy.statements[0].resources == ("arn:aws:s3:::bkt/*",)
    assert policy.statements[1].resources == (
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/tbl",
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:q1",
    )
    assert policy.role_arn == f"arn:aws:iam::{ACCOUNT}:role/r"
    attached = resolve({"Existing": "theirs"})
    assert attached.statements[0].resources == ("arn:aws:s3:::theirs/in/*",)
    assert attached.allows(Need("s3:GetObject", "arn:aws:s3:::theirs/in/a.png"))
    assert not attached.allows(Need("s3:GetObject", "arn:aws:s3:::theirs/out/a.png"))


def test_a_policy_survives_the_state_file():
    policy = resolve({})
    again = RolePolicy.from_json(policy.to_json())
    assert again.statements == policy.statements and again.role_arn == policy.role_arn
