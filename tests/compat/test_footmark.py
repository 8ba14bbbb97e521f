"""footmark 1.26.0, the library behind the Ansible alicloud modules (ali_security_group).

footmark has no endpoint option: it builds a classic-SDK AcsClient per call and lets the
endpoint resolver choose the host, so the module points the resolver at the test server
with `region_provider.modify_point("Ecs", REGION, "127.0.0.1:PORT")`.

Its requests carry a bogus `on=<Action>` parameter and a `ClientToken=Footmark<Action>-<uuid1>`
on Create/Authorize/Revoke. Rules are compared with what Describe reports *verbatim*
(`SecurityGroup.authorize`/`revoke`), so a rule read back (`TCP`, `Accept`, number
priority) must be accepted again by Revoke.
"""

import json

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.profile import region_provider
from footmark.ecs.connection import ECSConnection
from footmark.ecs.securitygroup import SecurityGroup
from footmark.exception import ECSResponseError

import harness
from adapters import CoreApi
from scenarios import FANCY_DESC, FANCY_NAME, FANCY_RULE_DESC, UNKNOWN_GROUP, uniq

RULE_KEYS = ("ip_protocol", "port_range", "source_cidr_ip", "dest_cidr_ip", "policy", "priority", "nic_type")


@pytest.fixture(scope="module")
def ecs(server):
    region_provider.modify_point("Ecs", harness.REGION, server.endpoint)
    return ECSConnection(acs_access_key_id=harness.ACCESS_KEY_ID,
                         acs_secret_access_key=harness.ACCESS_KEY_SECRET, region=harness.REGION)


@pytest.fixture(scope="module")
def vpc_id(server):
    """footmark's VPC calls use the VPC product API, so the VPC is made with the classic SDK."""
    return CoreApi(server).call("CreateVpc", {"RegionId": harness.REGION, "CidrBlock": "192.168.0.0/16"})["VpcId"]


def read_back(perm):
    """A rule dict made of the values footmark read back, as an Ansible task would hold it."""
    return {k: perm[k] for k in RULE_KEYS if perm.get(k, "") != ""}


def server_error(excinfo):
    err = excinfo.value
    if isinstance(err, ECSResponseError):  # list calls wrap the core ServerException
        err = err.error
    assert isinstance(err, ServerException), repr(err)
    return err.get_http_status(), err.get_error_code()


def test_security_group_lifecycle(ecs, vpc_id):
    name = uniq("footmark")
    group = ecs.create_security_group(security_group_name=name, description="made by footmark", vpc_id=vpc_id)
    assert isinstance(group, SecurityGroup)
    gid = group.id
    assert gid.startswith("sg-")
    assert (group.name, group.description, group.vpc_id) == (name, "made by footmark", vpc_id)
    assert group.inner_access_policy == "Accept"
    assert group.permissions == []

    # authorize (an Ansible task's spelling), then footmark's own idempotency check
    rule = {"ip_protocol": "tcp", "port_range": "22/22", "source_cidr_ip": "10.0.0.0/8", "priority": 1,
            "policy": "accept", "nic_type": "intranet", "description": FANCY_RULE_DESC}
    assert group.authorize(rule, "ingress") is True
    egress = {"ip_protocol": "tcp", "port_range": "443/443", "dest_cidr_ip": "10.1.0.0/16", "policy": "accept",
              "priority": 2}
    assert group.authorize(egress, "egress") is True

    # read back
    group = ecs.describe_security_group_attribute(security_group_id=gid)
    assert group.id == gid
    by_direction = {p["direction"]: p for p in group.permissions}
    assert sorted(by_direction) == ["egress", "ingress"]
    ing = by_direction["ingress"]
    assert (ing["ip_protocol"], ing["port_range"], ing["source_cidr_ip"], ing["policy"], ing["priority"],
            ing["nic_type"]) == ("TCP", "22/22", "10.0.0.0/8", "Accept", 1, "intranet")
    assert ing["description"] == FANCY_RULE_DESC
    assert ing["security_group_rule_id"].startswith("sgr-")
    eg = by_direction["egress"]
    assert (eg["ip_protocol"], eg["port_range"], eg["dest_cidr_ip"], eg["policy"], eg["priority"]) == \
        ("TCP", "443/443", "10.1.0.0/16", "Accept", 2)
    read = group.read()
    assert read["id"] == gid and len(read["permissions"]) == 1 and len(read["permissions_egress"]) == 1

    # the read-back rules are recognised as present: no second Authorize is sent
    assert group.authorize(read_back(ing), "ingress") is False
    assert group.authorize(read_back(eg), "egress") is False

    # rename / re-describe through the object
    assert group.modify(name=FANCY_NAME, description=FANCY_DESC) is True
    group = group.get()
    assert (group.name, group.description) == (FANCY_NAME, FANCY_DESC)

    # revoke with the values read back (TCP, Accept, number priority)
    assert group.revoke(read_back(ing), "ingress") is True
    assert group.revoke(read_back(eg), "egress") is True
    group = group.get()
    assert group.permissions == []
    assert group.revoke(read_back(ing), "ingress") is False  # nothing left to revoke

    # delete: footmark deletes, then polls Describe until it sees InvalidSecurityGroupId.NotFound
    assert group.delete() is True
    assert ecs.describe_security_group_attribute(security_group_id=gid) is None


def test_classic_group_lifecycle(ecs):
    group = ecs.create_security_group(security_group_name=uniq("fm-classic"), description="classic")
    assert group.vpc_id == ""
    rule = {"ip_protocol": "tcp", "port_range": "1/65535", "source_cidr_ip": "0.0.0.0/0", "policy": "accept",
            "nic_type": "internet"}
    assert group.authorize(rule, "ingress") is True
    group = group.get()
    (perm,) = group.permissions
    assert (perm["ip_protocol"], perm["nic_type"], perm["policy"]) == ("TCP", "internet", "Accept")
    assert group.revoke(read_back(perm), "ingress") is True
    assert group.get().permissions == []
    assert group.delete() is True
    assert ecs.describe_security_group_attribute(security_group_id=group.id) is None


def test_describe_security_groups_filters(ecs, vpc_id):
    name = uniq("fm-list")
    made = ecs.create_security_group(security_group_name=name, description="listed", vpc_id=vpc_id)
    found = ecs.describe_security_groups(vpc_id=vpc_id, security_group_name=name)
    assert [g.id for g in found] == [made.id]
    g = found[0]
    assert isinstance(g, SecurityGroup)
    assert (g.name, g.description, g.vpc_id) == (name, "listed", vpc_id)
    found = ecs.describe_security_groups(security_group_ids=json.dumps([made.id]))
    assert [g.id for g in found] == [made.id]
    assert made.delete() is True
    assert ecs.describe_security_groups(vpc_id=vpc_id, security_group_name=name) == []


def test_describe_regions(ecs):
    regions = ecs.describe_regions()
    ids = {r.id for r in regions}
    assert {"cn-hangzhou", "cn-beijing", "cn-shanghai"} <= ids


def test_unknown_group_reads_as_none(ecs):
    assert ecs.describe_security_group_attribute(security_group_id=UNKNOWN_GROUP) is None


def test_errors_surface_as_server_exceptions(ecs):
    group = ecs.create_security_group(security_group_name=uniq("fm-errors"))
    with pytest.raises(ServerException) as info:
        group.authorize({"ip_protocol": "tcp", "port_range": "22/22", "source_cidr_ip": "10.0.0.300/8"}, "ingress")
    assert server_error(info) == (400, "InvalidSourceCidrIp.Malformed")
    with pytest.raises(ServerException) as info:
        group.authorize({"ip_protocol": "tcp", "port_range": "22/22", "source_cidr_ip": "10.0.0.0/8",
                         "priority": 101}, "ingress")
    assert server_error(info) == (400, "InvalidPriority.ValueNotSupported")
    with pytest.raises(ServerException) as info:
        ecs.authorize_security_group(security_group_id=UNKNOWN_GROUP, ip_protocol="tcp", port_range="22/22",
                                     source_cidr_ip="10.0.0.0/8")
    assert server_error(info) == (404, "InvalidSecurityGroupId.NotFound")
    assert group.delete() is True


def test_wrong_secret(server):
    bad = ECSConnection(acs_access_key_id=harness.ACCESS_KEY_ID, acs_secret_access_key="not-the-secret",
                        region=harness.REGION)
    with pytest.raises(ECSResponseError) as info:
        bad.describe_security_groups()
    assert server_error(info) == (400, "InvalidAccessKeySecret")
