"""Client-independent compatibility scenarios.

A test module subclasses `CommonScenarios` and provides two fixtures:

* `api`: an adapter for one official client, with
    - `call(action, params) -> dict`: sends `action` through the client's own typed
      request class (parameters given by their wire names) and returns the response
      body as the client hands it over, as a dict. It asserts the call succeeded.
    - `raises(status, code)`: a context manager asserting that the block raised the
      client's own error type, carrying that HTTP status and error code.
* `quota_api`: the same adapter pointed at a server started with `--rule-quota 5`.
* `dup_ignore_api`: the same adapter pointed at a server started with `--duplicate-rule ignore`.

Parameter values are always strings, as the SDK models declare them.
"""

import itertools
import json
import re
import uuid

import pytest

import harness

CREATE_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
REQUEST_ID_RE = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")

# Keys every Permission carries in DescribeSecurityGroupAttribute ("" when unset).
PERMISSION_KEYS = (
    "SecurityGroupRuleId", "Direction", "IpProtocol", "PortRange", "SourcePortRange",
    "Policy", "Priority", "NicType", "SourceCidrIp", "SourceGroupId", "SourceGroupOwnerAccount",
    "DestCidrIp", "DestGroupId", "DestGroupOwnerAccount", "Description", "CreateTime",
)

# Non-ASCII and reserved characters that must round-trip unchanged.
FANCY_NAME = "Grp:ünï_中文.name-1"
FANCY_DESC = "desc * ~ + / : & = % ? # ünï 中文 end"
FANCY_RULE_DESC = "rule * ~ + / : ünï 中文 (ssh)"

UNKNOWN_GROUP = "sg-doesnotexist0000000"
UNKNOWN_RULE = "sgr-doesnotexist000000"

_counter = itertools.count(1)


def uniq(prefix="compat"):
    """A fresh, valid security-group name (starts with a letter)."""
    return "%s-%d-%s" % (prefix, next(_counter), uuid.uuid4().hex[:8])


def permissions(body):
    """Permissions.Permission[] of a DescribeSecurityGroupAttribute body, shape-checked."""
    assert isinstance(body.get("Permissions"), dict), body
    perms = body["Permissions"].get("Permission")
    assert isinstance(perms, list), body
    return perms


def groups(body):
    """SecurityGroups.SecurityGroup[] of a DescribeSecurityGroups body, shape-checked."""
    assert isinstance(body.get("SecurityGroups"), dict), body
    items = body["SecurityGroups"].get("SecurityGroup")
    assert isinstance(items, list), body
    return items


def check_permission_shape(p):
    missing = [k for k in PERMISSION_KEYS if k not in p]
    assert not missing, "Permission lacks %s: %r" % (missing, p)
    assert p["SecurityGroupRuleId"].startswith("sgr-"), p
    assert CREATE_TIME_RE.match(p["CreateTime"]), p
    assert p["Direction"] in ("ingress", "egress"), p
    assert p["IpProtocol"] == p["IpProtocol"].upper(), "IpProtocol must read back upper-case: %r" % p
    assert p["Policy"] in ("Accept", "Drop"), p
    assert p["NicType"] in ("internet", "intranet"), p
    # Typed String in the SDK models, but the published samples (and footmark/ansible
    # idempotency) have a JSON number.
    assert isinstance(p["Priority"], int) and not isinstance(p["Priority"], bool), \
        "Priority must be a JSON number: %r" % p


def only(perms, **match):
    """The single permission whose fields equal `match`."""
    found = [p for p in perms if all(p.get(k) == v for k, v in match.items())]
    assert len(found) == 1, "expected exactly one rule matching %r in %r" % (match, perms)
    return found[0]


class CommonScenarios(object):
    """Scenarios every full SDK must pass. Subclasses provide `api`, `quota_api`, `dup_ignore_api`."""

    # -- small helpers -----------------------------------------------------

    region = harness.REGION

    def create_vpc(self, api, cidr="192.168.0.0/16"):
        body = api.call("CreateVpc", {"RegionId": self.region, "CidrBlock": cidr})
        assert body["VpcId"].startswith("vpc-"), body
        return body["VpcId"]

    def create_group(self, api, name=None, description=None, vpc_id=None):
        params = {"RegionId": self.region, "SecurityGroupName": name or uniq()}
        if description is not None:
            params["Description"] = description
        if vpc_id is not None:
            params["VpcId"] = vpc_id
        body = api.call("CreateSecurityGroup", params)
        assert body["SecurityGroupId"].startswith("sg-"), body
        return body["SecurityGroupId"]

    def describe(self, api, group_id, **extra):
        params = {"RegionId": self.region, "SecurityGroupId": group_id}
        params.update(extra)
        body = api.call("DescribeSecurityGroupAttribute", params)
        assert body["SecurityGroupId"] == group_id, body
        for p in permissions(body):
            check_permission_shape(p)
        return body

    def rules(self, api, group_id, **extra):
        return permissions(self.describe(api, group_id, **extra))

    def authorize(self, api, group_id, **rule):
        params = {"RegionId": self.region, "SecurityGroupId": group_id}
        params.update(rule)
        return api.call("AuthorizeSecurityGroup", params)

    def list_groups(self, api, **filters):
        params = {"RegionId": self.region}
        params.update(filters)
        return api.call("DescribeSecurityGroups", params)

    # -- regions, VPCs, groups ------------------------------------------------

    def test_describe_regions(self, api):
        body = api.call("DescribeRegions", {})
        regions = body["Regions"]["Region"]
        assert isinstance(regions, list)
        ids = {r["RegionId"] for r in regions}
        assert {"cn-hangzhou", "cn-beijing", "cn-shanghai"} <= ids, body
        for r in regions:
            for key in ("RegionId", "LocalName", "RegionEndpoint", "Status"):
                assert key in r, r

    def test_create_vpc_then_classic_and_vpc_groups(self, api):
        vpc_id = self.create_vpc(api)
        vpc_name, classic_name = uniq("vpcgrp"), uniq("classic")
        vpc_group = self.create_group(api, name=vpc_name, description="in a vpc", vpc_id=vpc_id)
        classic_group = self.create_group(api, name=classic_name, description="classic one")
        assert vpc_group != classic_group

        body = self.describe(api, vpc_group)
        assert REQUEST_ID_RE.match(body["RequestId"]), body
        assert body["VpcId"] == vpc_id
        assert body["SecurityGroupName"] == vpc_name
        assert body["Description"] == "in a vpc"
        assert body["InnerAccessPolicy"] == "Accept"
        assert body["RegionId"] == self.region
        assert permissions(body) == []

        body = self.describe(api, classic_group)
        assert body["VpcId"] == ""
        assert body["SecurityGroupName"] == classic_name
        assert body["Description"] == "classic one"
        assert permissions(body) == []

        listed = groups(self.list_groups(api, VpcId=vpc_id))
        assert [g["SecurityGroupId"] for g in listed] == [vpc_group]
        g = listed[0]
        assert g["SecurityGroupName"] == vpc_name
        assert g["Description"] == "in a vpc"
        assert g["VpcId"] == vpc_id
        assert g["SecurityGroupType"] == "normal"
        assert CREATE_TIME_RE.match(g["CreationTime"]), g

    # -- the seed's two request examples --------------------------------------

    def test_seed_example_1_cidr_source(self, api):
        gid = self.create_group(api)
        body = self.authorize(api, gid, SourceCidrIp="0.0.0.0/0", IpProtocol="tcp", PortRange="1/65535",
                              NicType="intranet", Policy="Allow")
        assert set(body) >= {"RequestId"}
        perms = self.rules(api, gid, NicType="intranet")
        p = only(perms, SourceCidrIp="0.0.0.0/0")
        assert p["IpProtocol"] == "TCP"
        assert p["PortRange"] == "1/65535"
        assert p["NicType"] == "intranet"
        assert p["Policy"] == "Accept"
        assert p["Priority"] == 1
        assert p["Direction"] == "ingress"
        assert p["SourceGroupId"] == ""
        assert p["DestCidrIp"] == ""
        assert p["Description"] == ""

    def test_seed_example_2_group_source_classic(self, api):
        target, source = self.create_group(api), self.create_group(api)
        self.authorize(api, target, SourceGroupId=source, SourceGroupOwnerAccount=harness.ACCOUNT_NAME,
                       IpProtocol="tcp", PortRange="1/65535", NicType="intranet", Policy="Drop")
        p = only(self.rules(api, target, NicType="intranet"), SourceGroupId=source)
        assert p["IpProtocol"] == "TCP"
        assert p["PortRange"] == "1/65535"
        assert p["Policy"] == "Drop"
        assert p["NicType"] == "intranet"
        assert p["SourceCidrIp"] == ""
        # Read back as the owner's account id (D21 sample; what Terraform reads).
        assert p["SourceGroupOwnerAccount"] == harness.ACCOUNT_ID

    def test_seed_example_2_group_source_same_vpc(self, api):
        vpc_id = self.create_vpc(api)
        target = self.create_group(api, vpc_id=vpc_id)
        source = self.create_group(api, vpc_id=vpc_id)
        self.authorize(api, target, SourceGroupId=source, SourceGroupOwnerAccount=harness.ACCOUNT_NAME,
                       IpProtocol="tcp", PortRange="1/65535", NicType="intranet", Policy="Drop")
        p = only(self.rules(api, target), SourceGroupId=source)
        assert (p["IpProtocol"], p["PortRange"], p["Policy"], p["NicType"]) == ("TCP", "1/65535", "Drop", "intranet")

    def test_delete_refused_while_referenced(self, api):
        target, source = self.create_group(api), self.create_group(api)
        self.authorize(api, target, SourceGroupId=source, IpProtocol="tcp", PortRange="22/22",
                       NicType="intranet", Policy="accept")
        with api.raises(403, "DependencyViolation"):
            api.call("DeleteSecurityGroup", {"RegionId": self.region, "SecurityGroupId": source})
        # still there
        self.describe(api, source)
        rule = only(self.rules(api, target, NicType="intranet"), SourceGroupId=source)
        api.call("RevokeSecurityGroup", {"RegionId": self.region, "SecurityGroupId": target,
                                         "SecurityGroupRuleId": [rule["SecurityGroupRuleId"]]})
        api.call("DeleteSecurityGroup", {"RegionId": self.region, "SecurityGroupId": source})
        with api.raises(404, "InvalidSecurityGroupId.NotFound"):
            self.describe(api, source)

    # -- rule forms -------------------------------------------------------------

    def test_permissions_array_several_rules_in_one_call(self, api):
        gid = self.create_group(api)
        api.call("AuthorizeSecurityGroup", {
            "RegionId": self.region, "SecurityGroupId": gid,
            "Permissions": [
                {"IpProtocol": "tcp", "PortRange": "22/22", "SourceCidrIp": "10.0.0.0/8", "Priority": "5",
                 "Description": FANCY_RULE_DESC},
                {"IpProtocol": "udp", "PortRange": "53/53", "SourceCidrIp": "172.16.0.0/12", "Policy": "drop"},
                {"IpProtocol": "icmp", "PortRange": "-1/-1", "SourceCidrIp": "192.168.1.0/24",
                 "Policy": "accept", "Priority": "100"},
            ]})
        perms = self.rules(api, gid, NicType="internet")
        assert len(perms) == 3, perms
        ssh = only(perms, SourceCidrIp="10.0.0.0/8")
        assert (ssh["IpProtocol"], ssh["PortRange"], ssh["Priority"], ssh["Policy"]) == ("TCP", "22/22", 5, "Accept")
        assert ssh["Description"] == FANCY_RULE_DESC
        assert ssh["NicType"] == "internet"  # classic default
        dns = only(perms, SourceCidrIp="172.16.0.0/12")
        assert (dns["IpProtocol"], dns["PortRange"], dns["Priority"], dns["Policy"]) == ("UDP", "53/53", 1, "Drop")
        ping = only(perms, SourceCidrIp="192.168.1.0/24")
        assert (ping["IpProtocol"], ping["PortRange"], ping["Priority"]) == ("ICMP", "-1/-1", 100)
        assert len({p["SecurityGroupRuleId"] for p in perms}) == 3

    def test_classic_group_reads_one_nic_type_per_call(self, api):
        gid = self.create_group(api)
        self.authorize(api, gid, IpProtocol="tcp", PortRange="80/80", SourceCidrIp="0.0.0.0/0", NicType="internet")
        self.authorize(api, gid, IpProtocol="tcp", PortRange="81/81", SourceCidrIp="10.0.0.0/8", NicType="intranet")
        assert [p["PortRange"] for p in self.rules(api, gid, NicType="internet")] == ["80/80"]
        assert [p["PortRange"] for p in self.rules(api, gid, NicType="intranet")] == ["81/81"]
        assert [p["PortRange"] for p in self.rules(api, gid)] == ["80/80"]  # default NicType=internet

    def test_vpc_group_defaults_to_intranet(self, api):
        gid = self.create_group(api, vpc_id=self.create_vpc(api))
        self.authorize(api, gid, IpProtocol="tcp", PortRange="443/443", SourceCidrIp="10.0.0.0/8")
        p = only(self.rules(api, gid), PortRange="443/443")
        assert p["NicType"] == "intranet"
        # NicType=internet silently becomes intranet for a VPC group.
        assert [q["PortRange"] for q in self.rules(api, gid, NicType="internet")] == ["443/443"]

    def test_egress_rules_and_direction_filter(self, api):
        gid = self.create_group(api, vpc_id=self.create_vpc(api))
        self.authorize(api, gid, IpProtocol="tcp", PortRange="22/22", SourceCidrIp="10.0.0.0/8")
        api.call("AuthorizeSecurityGroupEgress", {
            "RegionId": self.region, "SecurityGroupId": gid, "IpProtocol": "tcp", "PortRange": "443/443",
            "DestCidrIp": "10.1.0.0/16", "Policy": "accept", "Priority": "3", "Description": "to the proxy"})
        egress = self.rules(api, gid, Direction="egress")
        assert len(egress) == 1, egress
        e = egress[0]
        assert (e["Direction"], e["IpProtocol"], e["PortRange"], e["DestCidrIp"], e["Priority"], e["Policy"]) == \
            ("egress", "TCP", "443/443", "10.1.0.0/16", 3, "Accept")
        assert e["Description"] == "to the proxy"
        assert e["SourceCidrIp"] == ""
        ingress = self.rules(api, gid, Direction="ingress")
        assert [p["Direction"] for p in ingress] == ["ingress"]
        assert ingress[0]["SourceCidrIp"] == "10.0.0.0/8"
        both = self.rules(api, gid, Direction="all")
        assert sorted(p["Direction"] for p in both) == ["egress", "ingress"]
        assert sorted(p["Direction"] for p in self.rules(api, gid)) == ["egress", "ingress"]

        api.call("RevokeSecurityGroupEgress", {
            "RegionId": self.region, "SecurityGroupId": gid, "IpProtocol": "tcp", "PortRange": "443/443",
            "DestCidrIp": "10.1.0.0/16", "Policy": "accept"})
        assert self.rules(api, gid, Direction="egress") == []
        assert len(self.rules(api, gid, Direction="ingress")) == 1

    # -- DescribeSecurityGroups -------------------------------------------------

    def test_describe_security_groups_filters(self, api):
        vpc_a, vpc_b = self.create_vpc(api), self.create_vpc(api, "10.0.0.0/8")
        a1 = self.create_group(api, vpc_id=vpc_a)
        a2 = self.create_group(api, vpc_id=vpc_a)
        b1 = self.create_group(api, vpc_id=vpc_b)
        name = uniq("named")
        c1 = self.create_group(api, name=name)

        assert sorted(g["SecurityGroupId"] for g in groups(self.list_groups(api, VpcId=vpc_a))) == sorted([a1, a2])
        assert [g["SecurityGroupId"] for g in groups(self.list_groups(api, VpcId=vpc_b))] == [b1]
        named = groups(self.list_groups(api, SecurityGroupName=name))
        assert [g["SecurityGroupId"] for g in named] == [c1]
        assert named[0]["VpcId"] == ""
        picked = groups(self.list_groups(api, SecurityGroupIds=json.dumps([a2, c1])))
        assert sorted(g["SecurityGroupId"] for g in picked) == sorted([a2, c1])
        body = self.list_groups(api, SecurityGroupIds=json.dumps([a1, b1]), VpcId=vpc_b)
        assert [g["SecurityGroupId"] for g in groups(body)] == [b1]
        assert body["RegionId"] == self.region

    def test_describe_security_groups_page_number_paging(self, api):
        vpc_id = self.create_vpc(api)
        created = [self.create_group(api, vpc_id=vpc_id) for _ in range(5)]
        seen = []
        for page, expected in ((1, 2), (2, 2), (3, 1), (4, 0)):
            body = self.list_groups(api, VpcId=vpc_id, PageSize="2", PageNumber=str(page))
            items = groups(body)
            assert len(items) == expected, body
            assert int(body["TotalCount"]) == 5, body
            assert int(body["PageNumber"]) == page, body
            assert int(body["PageSize"]) == 2, body
            seen += [g["SecurityGroupId"] for g in items]
        assert sorted(seen) == sorted(created)

    def test_describe_security_groups_next_token_paging(self, api):
        vpc_id = self.create_vpc(api)
        created = [self.create_group(api, vpc_id=vpc_id) for _ in range(5)]
        seen, token, pages = [], None, 0
        while True:
            params = {"VpcId": vpc_id, "MaxResults": "2"}
            if token:
                params["NextToken"] = token
            body = self.list_groups(api, **params)
            items = groups(body)
            pages += 1
            assert len(items) == (2 if pages < 3 else 1), body
            seen += [g["SecurityGroupId"] for g in items]
            token = body.get("NextToken") or ""
            if not token:
                break
            assert pages < 3, "NextToken still set after the last page: %r" % body
        assert pages == 3
        assert sorted(seen) == sorted(created)

    # -- modify -------------------------------------------------------------------

    def test_modify_security_group_attribute(self, api):
        gid = self.create_group(api, description="before")
        api.call("ModifySecurityGroupAttribute", {"RegionId": self.region, "SecurityGroupId": gid,
                                                  "SecurityGroupName": FANCY_NAME, "Description": FANCY_DESC})
        body = self.describe(api, gid)
        assert body["SecurityGroupName"] == FANCY_NAME
        assert body["Description"] == FANCY_DESC
        listed = groups(self.list_groups(api, SecurityGroupIds=json.dumps([gid])))
        assert [(g["SecurityGroupName"], g["Description"]) for g in listed] == [(FANCY_NAME, FANCY_DESC)]
        # only the description: the name stays
        api.call("ModifySecurityGroupAttribute", {"RegionId": self.region, "SecurityGroupId": gid,
                                                  "Description": "after"})
        body = self.describe(api, gid)
        assert (body["SecurityGroupName"], body["Description"]) == (FANCY_NAME, "after")

    def test_non_ascii_and_reserved_characters_round_trip(self, api):
        vpc_id = self.create_vpc(api)
        gid = self.create_group(api, name=FANCY_NAME, description=FANCY_DESC, vpc_id=vpc_id)
        body = self.describe(api, gid)
        assert body["SecurityGroupName"] == FANCY_NAME
        assert body["Description"] == FANCY_DESC
        listed = groups(self.list_groups(api, SecurityGroupName=FANCY_NAME, VpcId=vpc_id))
        assert [(g["SecurityGroupId"], g["SecurityGroupName"], g["Description"]) for g in listed] == \
            [(gid, FANCY_NAME, FANCY_DESC)]
        self.authorize(api, gid, IpProtocol="tcp", PortRange="22/22", SourceCidrIp="10.0.0.0/8",
                       Description=FANCY_RULE_DESC)
        assert only(self.rules(api, gid), PortRange="22/22")["Description"] == FANCY_RULE_DESC

    def test_modify_security_group_policy(self, api):
        gid = self.create_group(api)
        assert self.describe(api, gid)["InnerAccessPolicy"] == "Accept"
        api.call("ModifySecurityGroupPolicy", {"RegionId": self.region, "SecurityGroupId": gid,
                                               "InnerAccessPolicy": "Drop"})
        assert self.describe(api, gid)["InnerAccessPolicy"] == "Drop"
        api.call("ModifySecurityGroupPolicy", {"RegionId": self.region, "SecurityGroupId": gid,
                                               "InnerAccessPolicy": "accept"})
        assert self.describe(api, gid)["InnerAccessPolicy"] == "Accept"

    def test_modify_security_group_rule_by_id(self, api):
        gid = self.create_group(api, vpc_id=self.create_vpc(api))
        self.authorize(api, gid, IpProtocol="tcp", PortRange="8080/8080", SourceCidrIp="10.0.0.0/8",
                       Priority="10", Description="old")
        before = only(self.rules(api, gid), PortRange="8080/8080")
        api.call("ModifySecurityGroupRule", {"RegionId": self.region, "SecurityGroupId": gid,
                                             "SecurityGroupRuleId": before["SecurityGroupRuleId"],
                                             "Description": FANCY_RULE_DESC, "Priority": "7"})
        after = only(self.rules(api, gid), SecurityGroupRuleId=before["SecurityGroupRuleId"])
        assert after["Description"] == FANCY_RULE_DESC
        assert after["Priority"] == 7
        for key in ("IpProtocol", "PortRange", "SourceCidrIp", "Policy", "NicType", "Direction", "CreateTime"):
            assert after[key] == before[key], key
        with api.raises(404, "InvalidSecurityGroupRuleId.NotFound"):
            api.call("ModifySecurityGroupRule", {"RegionId": self.region, "SecurityGroupId": gid,
                                                 "SecurityGroupRuleId": UNKNOWN_RULE, "Description": "x1"})

    # -- revoke and delete ------------------------------------------------------

    def test_revoke_by_fields(self, api):
        gid = self.create_group(api, vpc_id=self.create_vpc(api))
        rule = {"IpProtocol": "tcp", "PortRange": "3306/3306", "SourceCidrIp": "10.10.0.0/16", "Policy": "accept"}
        self.authorize(api, gid, **rule)
        self.authorize(api, gid, IpProtocol="udp", PortRange="161/161", SourceCidrIp="10.10.0.0/16")
        api.call("RevokeSecurityGroup", dict(rule, RegionId=self.region, SecurityGroupId=gid))
        assert [p["IpProtocol"] for p in self.rules(api, gid)] == ["UDP"]
        with api.raises(400, "InvalidSecurityGroupRule.RuleNotExist"):
            api.call("RevokeSecurityGroup", dict(rule, RegionId=self.region, SecurityGroupId=gid))

    def test_revoke_with_the_values_read_back(self, api):
        """What footmark/ansible do: send back `TCP`, `Accept`, the number priority."""
        gid = self.create_group(api, vpc_id=self.create_vpc(api))
        self.authorize(api, gid, IpProtocol="tcp", PortRange="5432/5432", SourceCidrIp="10.20.0.0/16",
                       Policy="accept", Priority="4")
        p = only(self.rules(api, gid), PortRange="5432/5432")
        api.call("RevokeSecurityGroup", {"RegionId": self.region, "SecurityGroupId": gid,
                                         "IpProtocol": p["IpProtocol"], "PortRange": p["PortRange"],
                                         "SourceCidrIp": p["SourceCidrIp"], "Policy": p["Policy"],
                                         "NicType": p["NicType"], "Priority": str(p["Priority"])})
        assert self.rules(api, gid) == []

    def test_revoke_by_security_group_rule_ids(self, api):
        gid = self.create_group(api, vpc_id=self.create_vpc(api))
        api.call("AuthorizeSecurityGroup", {
            "RegionId": self.region, "SecurityGroupId": gid,
            "Permissions": [{"IpProtocol": "tcp", "PortRange": "%d/%d" % (port, port), "SourceCidrIp": "10.0.0.0/8"}
                            for port in (7001, 7002, 7003)]})
        perms = self.rules(api, gid)
        by_port = {p["PortRange"]: p["SecurityGroupRuleId"] for p in perms}
        api.call("RevokeSecurityGroup", {"RegionId": self.region, "SecurityGroupId": gid,
                                         "SecurityGroupRuleId": [by_port["7001/7001"], by_port["7003/7003"]]})
        left = self.rules(api, gid)
        assert [(p["PortRange"], p["SecurityGroupRuleId"]) for p in left] == [("7002/7002", by_port["7002/7002"])]
        with api.raises(404, "InvalidSecurityGroupRuleId.NotFound"):
            api.call("RevokeSecurityGroup", {"RegionId": self.region, "SecurityGroupId": gid,
                                             "SecurityGroupRuleId": [UNKNOWN_RULE]})
        assert len(self.rules(api, gid)) == 1

    def test_delete_then_describe_is_not_found(self, api):
        gid = self.create_group(api)
        self.authorize(api, gid, IpProtocol="tcp", PortRange="22/22", SourceCidrIp="10.0.0.0/8")
        body = api.call("DeleteSecurityGroup", {"RegionId": self.region, "SecurityGroupId": gid})
        assert REQUEST_ID_RE.match(body["RequestId"]), body
        with api.raises(404, "InvalidSecurityGroupId.NotFound"):
            self.describe(api, gid)
        assert groups(self.list_groups(api, SecurityGroupIds=json.dumps([gid]))) == []
        with api.raises(404, "InvalidSecurityGroupId.NotFound"):
            api.call("DeleteSecurityGroup", {"RegionId": self.region, "SecurityGroupId": gid})

    # -- errors -----------------------------------------------------------------

    def test_unknown_group_is_404(self, api):
        with api.raises(404, "InvalidSecurityGroupId.NotFound"):
            self.describe(api, UNKNOWN_GROUP)
        with api.raises(404, "InvalidSecurityGroupId.NotFound"):
            self.authorize(api, UNKNOWN_GROUP, IpProtocol="tcp", PortRange="22/22", SourceCidrIp="10.0.0.0/8")
        with api.raises(404, "InvalidSecurityGroupId.NotFound"):
            api.call("ModifySecurityGroupAttribute", {"RegionId": self.region, "SecurityGroupId": UNKNOWN_GROUP,
                                                      "Description": "nothing here"})

    def test_malformed_source_cidr(self, api):
        gid = self.create_group(api)
        with api.raises(400, "InvalidSourceCidrIp.Malformed"):
            self.authorize(api, gid, IpProtocol="tcp", PortRange="22/22", SourceCidrIp="10.0.0.300/8")
        assert self.rules(api, gid) == []

    def test_malformed_priority(self, api):
        gid = self.create_group(api)
        with api.raises(400, "InvalidPriority.Malformed"):
            self.authorize(api, gid, IpProtocol="tcp", PortRange="22/22", SourceCidrIp="10.0.0.0/8", Priority="abc")
        with api.raises(400, "InvalidPriority.ValueNotSupported"):
            self.authorize(api, gid, IpProtocol="tcp", PortRange="22/22", SourceCidrIp="10.0.0.0/8", Priority="101")
        assert self.rules(api, gid) == []

    def test_duplicate_rule_is_refused(self, api):
        gid = self.create_group(api)
        rule = {"IpProtocol": "tcp", "PortRange": "22/22", "SourceCidrIp": "10.0.0.0/8"}
        self.authorize(api, gid, **rule)
        with api.raises(400, "InvalidPermission.Duplicate"):
            self.authorize(api, gid, **rule)
        assert len(self.rules(api, gid)) == 1

    def test_duplicate_rule_ignored_when_configured(self, dup_ignore_api):
        """`--duplicate-rule ignore`: the current real service's behaviour, success and no new rule."""
        api = dup_ignore_api
        gid = self.create_group(api)
        rule = {"IpProtocol": "tcp", "PortRange": "22/22", "SourceCidrIp": "10.0.0.0/8", "Description": "first"}
        self.authorize(api, gid, **rule)
        body = self.authorize(api, gid, **dict(rule, IpProtocol="TCP", Policy="Accept", Description="second"))
        assert REQUEST_ID_RE.match(body["RequestId"]), body
        (p,) = self.rules(api, gid)
        assert p["Description"] == "first"

    def test_rule_quota(self, quota_api):
        api = quota_api
        gid = self.create_group(api)
        api.call("AuthorizeSecurityGroup", {
            "RegionId": self.region, "SecurityGroupId": gid,
            "Permissions": [{"IpProtocol": "tcp", "PortRange": "%d/%d" % (p, p), "SourceCidrIp": "10.0.0.0/8"}
                            for p in (1, 2, 3, 4)]})
        # two more in one call would make 6 > 5: refused as a whole
        with api.raises(403, "AuthorizationLimitExceed"):
            api.call("AuthorizeSecurityGroup", {
                "RegionId": self.region, "SecurityGroupId": gid,
                "Permissions": [{"IpProtocol": "tcp", "PortRange": "%d/%d" % (p, p), "SourceCidrIp": "10.0.0.0/8"}
                                for p in (5, 6)]})
        assert len(self.rules(api, gid)) == 4
        self.authorize(api, gid, IpProtocol="tcp", PortRange="5/5", SourceCidrIp="10.0.0.0/8")
        with api.raises(403, "AuthorizationLimitExceed"):
            self.authorize(api, gid, IpProtocol="tcp", PortRange="6/6", SourceCidrIp="10.0.0.0/8")
        with api.raises(403, "AuthorizationLimitExceed"):
            api.call("AuthorizeSecurityGroupEgress", {"RegionId": self.region, "SecurityGroupId": gid,
                                                      "IpProtocol": "tcp", "PortRange": "6/6",
                                                      "DestCidrIp": "10.0.0.0/8"})
        assert len(self.rules(api, gid)) == 5
        assert len(self.rules(api, gid, Direction="all")) == 5
