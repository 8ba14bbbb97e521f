"""The generated Python SDK: alibabacloud-ecs20140526 7.11.8 + alibabacloud-tea-openapi 0.4.6.

Runs every scenario twice:
* `v3`: the SDK default, ACS3-HMAC-SHA256 in the Authorization header, Action/Version only
  as x-acs-* headers, spaces sent as `+`;
* `v1`: `signature_algorithm="v2"`, the legacy HMAC-SHA1 query signature with `Format=json`.

Requests are the SDK's typed models (`alibabacloud_ecs20140526.models.<Action>Request`,
built with `from_map` from wire names) sent with `Client.<action>_with_options`; errors
surface as `alibabacloud_tea_openapi.exceptions.ClientException` (4xx) /
`ServerException` (5xx).
"""

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_tea_openapi.utils import Utils

import harness
from adapters import TeaApi
from scenarios import CommonScenarios, UNKNOWN_GROUP, permissions


@pytest.fixture(scope="module", params=["v3", "v1"])
def mode(request):
    return request.param


@pytest.fixture(scope="module")
def api(server, mode):
    return TeaApi(server, mode)


@pytest.fixture(scope="module")
def quota_api(quota_server, mode):
    return TeaApi(quota_server, mode)


@pytest.fixture(scope="module")
def dup_ignore_api(dup_ignore_server, mode):
    return TeaApi(dup_ignore_server, mode)


class TestTeaSdk(CommonScenarios):

    def test_typed_models_parse_the_reply(self, api):
        vpc = api.call("CreateVpc", {"RegionId": harness.REGION, "CidrBlock": "192.168.0.0/16"})["VpcId"]
        gid = api.typed_call("CreateSecurityGroup", {"RegionId": harness.REGION, "VpcId": vpc,
                                                     "SecurityGroupName": "typed-models"}).body.security_group_id
        api.call("AuthorizeSecurityGroup", {"RegionId": harness.REGION, "SecurityGroupId": gid,
                                            "Permissions": [{"IpProtocol": "tcp", "PortRange": "22/22",
                                                             "SourceCidrIp": "10.0.0.0/8", "Priority": "2"}]})
        body = api.typed_call("DescribeSecurityGroupAttribute", {"RegionId": harness.REGION,
                                                                 "SecurityGroupId": gid}).body
        assert isinstance(body, ecs_models.DescribeSecurityGroupAttributeResponseBody)
        assert (body.security_group_id, body.vpc_id, body.inner_access_policy) == (gid, vpc, "Accept")
        (perm,) = body.permissions.permission
        assert (perm.ip_protocol, perm.port_range, perm.source_cidr_ip, perm.policy, perm.nic_type) == \
            ("TCP", "22/22", "10.0.0.0/8", "Accept", "intranet")
        assert str(perm.priority) == "2"
        assert perm.security_group_rule_id.startswith("sgr-")
        listed = api.typed_call("DescribeSecurityGroups", {"RegionId": harness.REGION, "VpcId": vpc}).body
        assert [g.security_group_id for g in listed.security_groups.security_group] == [gid]
        regions = api.typed_call("DescribeRegions", {}).body
        assert "cn-hangzhou" in [r.region_id for r in regions.regions.region]

    def test_wrong_secret(self, server, mode):
        bad = TeaApi(server, mode, access_key_secret="not-the-secret")
        with bad.raises(400, "SignatureDoesNotMatch"):
            bad.call("DescribeSecurityGroups", {"RegionId": harness.REGION})
        with bad.raises(400, "SignatureDoesNotMatch"):
            bad.call("CreateSecurityGroup", {"RegionId": harness.REGION, "SecurityGroupName": "never-made",
                                             "Description": "a*b~c+d/e ünï"})

    def test_unknown_access_key_id(self, server, mode):
        bad = TeaApi(server, mode, access_key_id="NoSuchAccessKeyId")
        with bad.raises(404, "InvalidAccessKeyId.NotFound"):
            bad.call("DescribeSecurityGroups", {"RegionId": harness.REGION})

    def test_expired_timestamp(self, api, monkeypatch):
        # Timestamp (v1) and x-acs-date (v3) both come from Utils.get_timestamp.
        monkeypatch.setattr(Utils, "get_timestamp", staticmethod(lambda: "2020-01-01T00:00:00Z"))
        with api.raises(400, "InvalidTimeStamp.Expired"):
            api.call("DescribeSecurityGroups", {"RegionId": harness.REGION})
        with api.raises(400, "InvalidTimeStamp.Expired"):
            api.call("DescribeSecurityGroupAttribute", {"RegionId": harness.REGION, "SecurityGroupId": UNKNOWN_GROUP})

    def test_space_sent_as_plus_round_trips(self, api):
        """tea puts `+` for a space on the wire and `%2B` for a literal plus."""
        gid = api.call("CreateSecurityGroup", {"RegionId": harness.REGION, "SecurityGroupName": "plus-and-space",
                                               "Description": "a b+c  d"})["SecurityGroupId"]
        body = api.call("DescribeSecurityGroupAttribute", {"RegionId": harness.REGION, "SecurityGroupId": gid})
        assert body["Description"] == "a b+c  d"
        assert permissions(body) == []
