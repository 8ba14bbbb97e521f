"""The classic Python SDK: aliyun-python-sdk-core 2.16.1 + aliyun-python-sdk-ecs 4.24.83.

V1 signature, POST, every parameter in the query string, `SignatureType=` sent empty.
Requests are built with the SDK's own request classes (`aliyunsdkecs.request.v20140526`)
and sent with `AcsClient.do_action_with_exception`; errors surface as
`aliyunsdkcore.acs_exception.exceptions.ServerException`.
"""

import json

import pytest
from aliyunsdkcore.utils import parameter_helper

import harness
from adapters import CoreApi
from scenarios import CommonScenarios, UNKNOWN_GROUP, groups


@pytest.fixture(scope="module")
def api(server):
    return CoreApi(server)


@pytest.fixture(scope="module")
def quota_api(quota_server):
    return CoreApi(quota_server)


@pytest.fixture(scope="module")
def dup_ignore_api(dup_ignore_server):
    return CoreApi(dup_ignore_server)


class TestCoreSdk(CommonScenarios):

    def test_wrong_secret_is_reported_as_invalid_access_key_secret(self, server):
        """The server's SignatureDoesNotMatch message carries the exact string-to-sign, so
        the SDK recognises its own and rewrites the code to InvalidAccessKeySecret."""
        bad = CoreApi(server, access_key_secret="not-the-secret")
        with bad.raises(400, "InvalidAccessKeySecret"):
            bad.call("DescribeSecurityGroups", {"RegionId": harness.REGION})
        with bad.raises(400, "InvalidAccessKeySecret"):
            bad.call("CreateSecurityGroup", {"RegionId": harness.REGION, "SecurityGroupName": "never-made",
                                             "Description": "a*b~c+d/e ünï"})

    def test_unknown_access_key_id(self, server):
        bad = CoreApi(server, access_key_id="NoSuchAccessKeyId")
        with bad.raises(404, "InvalidAccessKeyId.NotFound"):
            bad.call("DescribeSecurityGroups", {"RegionId": harness.REGION})

    def test_expired_timestamp(self, api, monkeypatch):
        # The SDK stamps every request in rpc_signature_composer via parameter_helper.
        monkeypatch.setattr(parameter_helper, "get_iso_8061_date", lambda: "2020-01-01T00:00:00Z")
        with api.raises(400, "InvalidTimeStamp.Expired"):
            api.call("DescribeSecurityGroups", {"RegionId": harness.REGION})
        with api.raises(400, "InvalidTimeStamp.Expired"):
            api.call("DescribeSecurityGroupAttribute", {"RegionId": harness.REGION, "SecurityGroupId": UNKNOWN_GROUP})

    def test_region_id_from_client_when_request_has_none(self, api):
        """The SDK adds RegionId from AcsClient when the request carries none."""
        body = api.call("CreateSecurityGroup", {"SecurityGroupName": "from-client-region"})
        gid = body["SecurityGroupId"]
        attr = api.call("DescribeSecurityGroupAttribute", {"SecurityGroupId": gid})
        assert attr["RegionId"] == harness.REGION

    def test_group_in_another_region_is_not_visible(self, server):
        beijing = CoreApi(server)
        gid = beijing.call("CreateSecurityGroup", {"RegionId": "cn-beijing", "SecurityGroupName": "in-beijing"})[
            "SecurityGroupId"]
        assert beijing.call("DescribeSecurityGroupAttribute", {"RegionId": "cn-beijing",
                                                               "SecurityGroupId": gid})["RegionId"] == "cn-beijing"
        with beijing.raises(404, "InvalidSecurityGroupId.NotFound"):
            beijing.call("DescribeSecurityGroupAttribute", {"RegionId": "cn-shanghai", "SecurityGroupId": gid})

    def test_second_account_from_account_add(self, api, server):
        """`palisade account add` while the server runs: a working key, and accounts see only their own groups."""
        acct = server.add_account("bob@example.com")
        assert acct["AccountName"] == "bob@example.com"
        assert acct["AccountId"] and str(acct["AccountId"]) != harness.ACCOUNT_ID
        bob = CoreApi(server, access_key_id=acct["AccessKeyId"], access_key_secret=acct["AccessKeySecret"])
        mine = api.call("CreateSecurityGroup", {"RegionId": harness.REGION, "SecurityGroupName": "default-acct"})[
            "SecurityGroupId"]
        bobs = bob.call("CreateSecurityGroup", {"RegionId": harness.REGION, "SecurityGroupName": "bobs"})[
            "SecurityGroupId"]
        assert bob.call("DescribeSecurityGroupAttribute", {"RegionId": harness.REGION,
                                                           "SecurityGroupId": bobs})["SecurityGroupName"] == "bobs"
        with bob.raises(404, "InvalidSecurityGroupId.NotFound"):
            bob.call("DescribeSecurityGroupAttribute", {"RegionId": harness.REGION, "SecurityGroupId": mine})
        listed = groups(api.call("DescribeSecurityGroups", {"RegionId": harness.REGION,
                                                            "SecurityGroupIds": json.dumps([mine, bobs])}))
        assert [g["SecurityGroupId"] for g in listed] == [mine]
