'use strict';
// @alicloud/pop-core 1.8.0 (RPCClient) against a real `palisade serve`.
//
// Every scenario runs twice: with the client's default GET (all parameters and the V1
// signature in the query string, signed as GET) and with {method: 'POST'} (everything,
// Signature included, in an application/x-www-form-urlencoded body). pop-core ignores the
// HTTP status: it fails a call iff the JSON body has a Code; the tests also check the
// status it recorded (err.entry.response.statusCode).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const RPCClient = require('@alicloud/pop-core');
const h = require('../lib/harness');

const CREATE_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
const REQUEST_ID_RE = /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/;
const PERMISSION_KEYS = [
  'SecurityGroupRuleId', 'Direction', 'IpProtocol', 'PortRange', 'SourcePortRange', 'Policy', 'Priority',
  'NicType', 'SourceCidrIp', 'SourceGroupId', 'SourceGroupOwnerAccount', 'DestCidrIp', 'DestGroupId',
  'DestGroupOwnerAccount', 'Description', 'CreateTime',
];
const FANCY_NAME = 'Grp:ünï_中文.name-1';
const FANCY_DESC = 'desc * ~ + / : & = % ? # ünï 中文 end';
const FANCY_RULE_DESC = "rule * ~ + / : ünï 中文 (ssh) !'";
const UNKNOWN_GROUP = 'sg-doesnotexist0000000';
const UNKNOWN_RULE = 'sgr-doesnotexist000000';
const REGION = h.REGION;

let counter = 0;
function uniq(prefix = 'node') {
  counter += 1;
  return `${prefix}-${counter}-${Math.random().toString(16).slice(2, 10)}`;
}

class PopApi {
  constructor(server, method, keys = {}) {
    this.method = method;
    this.client = new RPCClient({
      accessKeyId: keys.accessKeyId || h.ACCESS_KEY_ID,
      accessKeySecret: keys.accessKeySecret || h.ACCESS_KEY_SECRET,
      endpoint: server.url,
      apiVersion: '2014-05-26',
    });
  }

  opts() {
    return this.method === 'POST' ? { method: 'POST' } : {};
  }

  async call(action, params = {}) {
    const body = await this.client.request(action, params, this.opts());
    assert.ok(body.RequestId, JSON.stringify(body));
    assert.equal(body.Code, undefined, JSON.stringify(body));
    return body;
  }

  async raises(status, code, fn) {
    await assert.rejects(fn, (err) => {
      assert.ok(err.entry && err.entry.response, `not a server error: ${err.stack}`);
      assert.deepEqual([err.entry.response.statusCode, err.code], [status, code],
        `expected ${status} ${code}, got ${err.entry.response.statusCode} ${err.code}: ${err.message}`);
      assert.equal(err.name, `${code}Error`);
      assert.ok(err.data.RequestId, 'error without RequestId');
      return true;
    });
  }
}

function permissions(body) {
  assert.equal(typeof body.Permissions, 'object', JSON.stringify(body));
  assert.ok(Array.isArray(body.Permissions.Permission), JSON.stringify(body));
  return body.Permissions.Permission;
}

function groups(body) {
  assert.equal(typeof body.SecurityGroups, 'object', JSON.stringify(body));
  assert.ok(Array.isArray(body.SecurityGroups.SecurityGroup), JSON.stringify(body));
  return body.SecurityGroups.SecurityGroup;
}

function checkPermissionShape(p) {
  const missing = PERMISSION_KEYS.filter((k) => !(k in p));
  assert.deepEqual(missing, [], `Permission lacks ${missing}: ${JSON.stringify(p)}`);
  assert.ok(p.SecurityGroupRuleId.startsWith('sgr-'), JSON.stringify(p));
  assert.match(p.CreateTime, CREATE_TIME_RE);
  assert.ok(['ingress', 'egress'].includes(p.Direction), JSON.stringify(p));
  assert.equal(p.IpProtocol, p.IpProtocol.toUpperCase());
  assert.ok(['Accept', 'Drop'].includes(p.Policy), JSON.stringify(p));
  assert.ok(['internet', 'intranet'].includes(p.NicType), JSON.stringify(p));
  assert.equal(typeof p.Priority, 'number', `Priority must be a JSON number: ${JSON.stringify(p)}`);
}

function only(perms, match) {
  const found = perms.filter((p) => Object.entries(match).every(([k, v]) => p[k] === v));
  assert.equal(found.length, 1, `expected one rule matching ${JSON.stringify(match)} in ${JSON.stringify(perms)}`);
  return found[0];
}

const ids = (items) => items.map((g) => g.SecurityGroupId).sort();

function scenarios(method) {
  let server;
  let quotaServer;
  let dupIgnoreServer;
  let api;
  let quotaApi;
  let dupIgnoreApi;

  before(async () => {
    server = await h.startServer();
    quotaServer = await h.startServer(['--rule-quota', '5']);
    dupIgnoreServer = await h.startServer(['--duplicate-rule', 'ignore']);
    api = new PopApi(server, method);
    quotaApi = new PopApi(quotaServer, method);
    dupIgnoreApi = new PopApi(dupIgnoreServer, method);
  });
  after(async () => {
    if (server) await server.stop();
    if (quotaServer) await quotaServer.stop();
    if (dupIgnoreServer) await dupIgnoreServer.stop();
  });

  const createVpc = async (cidr = '192.168.0.0/16') => {
    const body = await api.call('CreateVpc', { RegionId: REGION, CidrBlock: cidr });
    assert.ok(body.VpcId.startsWith('vpc-'), JSON.stringify(body));
    return body.VpcId;
  };
  const createGroup = async (opts = {}, a = api) => {
    const params = { RegionId: REGION, SecurityGroupName: opts.name || uniq() };
    if (opts.description !== undefined) params.Description = opts.description;
    if (opts.vpcId) params.VpcId = opts.vpcId;
    const body = await a.call('CreateSecurityGroup', params);
    assert.ok(body.SecurityGroupId.startsWith('sg-'), JSON.stringify(body));
    return body.SecurityGroupId;
  };
  const describeGroup = async (gid, extra = {}, a = api) => {
    const body = await a.call('DescribeSecurityGroupAttribute', { RegionId: REGION, SecurityGroupId: gid, ...extra });
    assert.equal(body.SecurityGroupId, gid);
    permissions(body).forEach(checkPermissionShape);
    return body;
  };
  const rules = async (gid, extra = {}, a = api) => permissions(await describeGroup(gid, extra, a));
  const authorize = (gid, rule, a = api) => a.call('AuthorizeSecurityGroup',
    { RegionId: REGION, SecurityGroupId: gid, ...rule });
  const listGroups = (filters = {}) => api.call('DescribeSecurityGroups', { RegionId: REGION, ...filters });

  it('DescribeRegions (no RegionId sent)', async () => {
    const body = await api.call('DescribeRegions');
    const regionIds = body.Regions.Region.map((r) => r.RegionId);
    for (const r of ['cn-hangzhou', 'cn-beijing', 'cn-shanghai']) assert.ok(regionIds.includes(r), regionIds);
    for (const r of body.Regions.Region) {
      for (const k of ['RegionId', 'LocalName', 'RegionEndpoint', 'Status']) assert.ok(k in r, JSON.stringify(r));
    }
  });

  it('CreateVpc then classic and VPC groups', async () => {
    const vpcId = await createVpc();
    const vpcName = uniq('vpcgrp');
    const vpcGroup = await createGroup({ name: vpcName, description: 'in a vpc', vpcId });
    const classicGroup = await createGroup({ description: 'classic one' });
    let body = await describeGroup(vpcGroup);
    assert.match(body.RequestId, REQUEST_ID_RE);
    assert.equal(body.VpcId, vpcId);
    assert.equal(body.SecurityGroupName, vpcName);
    assert.equal(body.Description, 'in a vpc');
    assert.equal(body.InnerAccessPolicy, 'Accept');
    assert.deepEqual(permissions(body), []);
    body = await describeGroup(classicGroup);
    assert.equal(body.VpcId, '');
    const listed = groups(await listGroups({ VpcId: vpcId }));
    assert.deepEqual(ids(listed), [vpcGroup]);
    assert.equal(listed[0].SecurityGroupType, 'normal');
    assert.match(listed[0].CreationTime, CREATE_TIME_RE);
  });

  it('seed request example 1 (SourceCidrIp, Policy=Allow)', async () => {
    const gid = await createGroup();
    await authorize(gid, { SourceCidrIp: '0.0.0.0/0', IpProtocol: 'tcp', PortRange: '1/65535',
      NicType: 'intranet', Policy: 'Allow' });
    const p = only(await rules(gid, { NicType: 'intranet' }), { SourceCidrIp: '0.0.0.0/0' });
    assert.deepEqual([p.IpProtocol, p.PortRange, p.NicType, p.Policy, p.Priority, p.Direction],
      ['TCP', '1/65535', 'intranet', 'Accept', 1, 'ingress']);
    assert.deepEqual([p.SourceGroupId, p.DestCidrIp, p.Description], ['', '', '']);
  });

  it('seed request example 2 (SourceGroupId + SourceGroupOwnerAccount, Policy=Drop), classic', async () => {
    const target = await createGroup();
    const source = await createGroup();
    await authorize(target, { SourceGroupId: source, SourceGroupOwnerAccount: h.ACCOUNT_NAME, IpProtocol: 'tcp',
      PortRange: '1/65535', NicType: 'intranet', Policy: 'Drop' });
    const p = only(await rules(target, { NicType: 'intranet' }), { SourceGroupId: source });
    assert.deepEqual([p.IpProtocol, p.PortRange, p.Policy, p.NicType, p.SourceCidrIp],
      ['TCP', '1/65535', 'Drop', 'intranet', '']);
    assert.equal(p.SourceGroupOwnerAccount, h.ACCOUNT_ID);
  });

  it('seed request example 2 with VPC groups of the same VPC', async () => {
    const vpcId = await createVpc();
    const target = await createGroup({ vpcId });
    const source = await createGroup({ vpcId });
    await authorize(target, { SourceGroupId: source, SourceGroupOwnerAccount: h.ACCOUNT_NAME, IpProtocol: 'tcp',
      PortRange: '1/65535', NicType: 'intranet', Policy: 'Drop' });
    const p = only(await rules(target), { SourceGroupId: source });
    assert.deepEqual([p.IpProtocol, p.Policy, p.NicType], ['TCP', 'Drop', 'intranet']);
  });

  it('DeleteSecurityGroup refused while referenced (403 DependencyViolation)', async () => {
    const target = await createGroup();
    const source = await createGroup();
    await authorize(target, { SourceGroupId: source, IpProtocol: 'tcp', PortRange: '22/22', NicType: 'intranet' });
    await api.raises(403, 'DependencyViolation',
      () => api.call('DeleteSecurityGroup', { RegionId: REGION, SecurityGroupId: source }));
    await describeGroup(source);
    const rule = only(await rules(target, { NicType: 'intranet' }), { SourceGroupId: source });
    await api.call('RevokeSecurityGroup', { RegionId: REGION, SecurityGroupId: target,
      SecurityGroupRuleId: [rule.SecurityGroupRuleId] });
    await api.call('DeleteSecurityGroup', { RegionId: REGION, SecurityGroupId: source });
    await api.raises(404, 'InvalidSecurityGroupId.NotFound', () => describeGroup(source));
  });

  it('Permissions.N: several rules in one call', async () => {
    const gid = await createGroup();
    await api.call('AuthorizeSecurityGroup', { RegionId: REGION, SecurityGroupId: gid, Permissions: [
      { IpProtocol: 'tcp', PortRange: '22/22', SourceCidrIp: '10.0.0.0/8', Priority: '5', Description: FANCY_RULE_DESC },
      { IpProtocol: 'udp', PortRange: '53/53', SourceCidrIp: '172.16.0.0/12', Policy: 'drop' },
      { IpProtocol: 'icmp', PortRange: '-1/-1', SourceCidrIp: '192.168.1.0/24', Priority: '100' },
    ] });
    const perms = await rules(gid, { NicType: 'internet' });
    assert.equal(perms.length, 3);
    const ssh = only(perms, { SourceCidrIp: '10.0.0.0/8' });
    assert.deepEqual([ssh.IpProtocol, ssh.PortRange, ssh.Priority, ssh.Policy, ssh.NicType],
      ['TCP', '22/22', 5, 'Accept', 'internet']);
    assert.equal(ssh.Description, FANCY_RULE_DESC);
    const dns = only(perms, { SourceCidrIp: '172.16.0.0/12' });
    assert.deepEqual([dns.IpProtocol, dns.Priority, dns.Policy], ['UDP', 1, 'Drop']);
    const ping = only(perms, { SourceCidrIp: '192.168.1.0/24' });
    assert.deepEqual([ping.IpProtocol, ping.PortRange, ping.Priority], ['ICMP', '-1/-1', 100]);
  });

  it('classic group: one NicType per DescribeSecurityGroupAttribute', async () => {
    const gid = await createGroup();
    await authorize(gid, { IpProtocol: 'tcp', PortRange: '80/80', SourceCidrIp: '0.0.0.0/0', NicType: 'internet' });
    await authorize(gid, { IpProtocol: 'tcp', PortRange: '81/81', SourceCidrIp: '10.0.0.0/8', NicType: 'intranet' });
    assert.deepEqual((await rules(gid, { NicType: 'internet' })).map((p) => p.PortRange), ['80/80']);
    assert.deepEqual((await rules(gid, { NicType: 'intranet' })).map((p) => p.PortRange), ['81/81']);
    assert.deepEqual((await rules(gid)).map((p) => p.PortRange), ['80/80']);
  });

  it('egress rules and the Direction filter', async () => {
    const gid = await createGroup({ vpcId: await createVpc() });
    await authorize(gid, { IpProtocol: 'tcp', PortRange: '22/22', SourceCidrIp: '10.0.0.0/8' });
    await api.call('AuthorizeSecurityGroupEgress', { RegionId: REGION, SecurityGroupId: gid, IpProtocol: 'tcp',
      PortRange: '443/443', DestCidrIp: '10.1.0.0/16', Policy: 'accept', Priority: '3', Description: 'to the proxy' });
    const egress = await rules(gid, { Direction: 'egress' });
    assert.equal(egress.length, 1);
    const e = egress[0];
    assert.deepEqual([e.Direction, e.IpProtocol, e.PortRange, e.DestCidrIp, e.Priority, e.Policy, e.Description],
      ['egress', 'TCP', '443/443', '10.1.0.0/16', 3, 'Accept', 'to the proxy']);
    assert.deepEqual((await rules(gid, { Direction: 'ingress' })).map((p) => p.Direction), ['ingress']);
    assert.deepEqual((await rules(gid, { Direction: 'all' })).map((p) => p.Direction).sort(), ['egress', 'ingress']);
    await api.call('RevokeSecurityGroupEgress', { RegionId: REGION, SecurityGroupId: gid, IpProtocol: 'tcp',
      PortRange: '443/443', DestCidrIp: '10.1.0.0/16', Policy: 'accept' });
    assert.deepEqual(await rules(gid, { Direction: 'egress' }), []);
  });

  it('DescribeSecurityGroups filters: VpcId, SecurityGroupName, SecurityGroupIds', async () => {
    const vpcA = await createVpc();
    const vpcB = await createVpc('10.0.0.0/8');
    const a1 = await createGroup({ vpcId: vpcA });
    const a2 = await createGroup({ vpcId: vpcA });
    const b1 = await createGroup({ vpcId: vpcB });
    const name = uniq('named');
    const c1 = await createGroup({ name });
    assert.deepEqual(ids(groups(await listGroups({ VpcId: vpcA }))), [a1, a2].sort());
    assert.deepEqual(ids(groups(await listGroups({ VpcId: vpcB }))), [b1]);
    assert.deepEqual(ids(groups(await listGroups({ SecurityGroupName: name }))), [c1]);
    assert.deepEqual(ids(groups(await listGroups({ SecurityGroupIds: JSON.stringify([a2, c1]) }))), [a2, c1].sort());
  });

  it('DescribeSecurityGroups paging with PageNumber/PageSize', async () => {
    const vpcId = await createVpc();
    const created = [];
    for (let i = 0; i < 5; i += 1) created.push(await createGroup({ vpcId }));
    let seen = [];
    for (const [page, expected] of [[1, 2], [2, 2], [3, 1], [4, 0]]) {
      const body = await listGroups({ VpcId: vpcId, PageSize: 2, PageNumber: page });
      assert.equal(groups(body).length, expected, JSON.stringify(body));
      assert.equal(Number(body.TotalCount), 5);
      assert.equal(Number(body.PageNumber), page);
      assert.equal(Number(body.PageSize), 2);
      seen = seen.concat(groups(body).map((g) => g.SecurityGroupId));
    }
    assert.deepEqual(seen.sort(), created.sort());
  });

  it('DescribeSecurityGroups paging with MaxResults/NextToken', async () => {
    const vpcId = await createVpc();
    const created = [];
    for (let i = 0; i < 5; i += 1) created.push(await createGroup({ vpcId }));
    let seen = [];
    let token = '';
    let pages = 0;
    for (;;) {
      const params = { VpcId: vpcId, MaxResults: 2 };
      if (token) params.NextToken = token;
      const body = await listGroups(params);
      pages += 1;
      assert.equal(groups(body).length, pages < 3 ? 2 : 1, JSON.stringify(body));
      seen = seen.concat(groups(body).map((g) => g.SecurityGroupId));
      token = body.NextToken || '';
      if (!token) break;
      assert.ok(pages < 3, `NextToken still set after the last page: ${JSON.stringify(body)}`);
    }
    assert.equal(pages, 3);
    assert.deepEqual(seen.sort(), created.sort());
  });

  it('ModifySecurityGroupAttribute; non-ASCII and reserved characters round-trip', async () => {
    const vpcId = await createVpc();
    const gid = await createGroup({ description: 'before', vpcId });
    await api.call('ModifySecurityGroupAttribute', { RegionId: REGION, SecurityGroupId: gid,
      SecurityGroupName: FANCY_NAME, Description: FANCY_DESC });
    const body = await describeGroup(gid);
    assert.deepEqual([body.SecurityGroupName, body.Description], [FANCY_NAME, FANCY_DESC]);
    const listed = groups(await listGroups({ SecurityGroupName: FANCY_NAME, VpcId: vpcId }));
    assert.deepEqual(listed.map((g) => [g.SecurityGroupId, g.SecurityGroupName, g.Description]),
      [[gid, FANCY_NAME, FANCY_DESC]]);
    const other = await createGroup({ name: FANCY_NAME, description: FANCY_DESC });
    const o = await describeGroup(other);
    assert.deepEqual([o.SecurityGroupName, o.Description], [FANCY_NAME, FANCY_DESC]);
    await authorize(gid, { IpProtocol: 'tcp', PortRange: '22/22', SourceCidrIp: '10.0.0.0/8',
      Description: FANCY_RULE_DESC });
    assert.equal(only(await rules(gid), { PortRange: '22/22' }).Description, FANCY_RULE_DESC);
  });

  it('ModifySecurityGroupPolicy', async () => {
    const gid = await createGroup();
    await api.call('ModifySecurityGroupPolicy', { RegionId: REGION, SecurityGroupId: gid, InnerAccessPolicy: 'Drop' });
    assert.equal((await describeGroup(gid)).InnerAccessPolicy, 'Drop');
    await api.call('ModifySecurityGroupPolicy', { RegionId: REGION, SecurityGroupId: gid, InnerAccessPolicy: 'accept' });
    assert.equal((await describeGroup(gid)).InnerAccessPolicy, 'Accept');
  });

  it('ModifySecurityGroupRule by SecurityGroupRuleId', async () => {
    const gid = await createGroup({ vpcId: await createVpc() });
    await authorize(gid, { IpProtocol: 'tcp', PortRange: '8080/8080', SourceCidrIp: '10.0.0.0/8', Priority: '10',
      Description: 'old' });
    const before = only(await rules(gid), { PortRange: '8080/8080' });
    await api.call('ModifySecurityGroupRule', { RegionId: REGION, SecurityGroupId: gid,
      SecurityGroupRuleId: before.SecurityGroupRuleId, Description: FANCY_RULE_DESC, Priority: '7' });
    const after = only(await rules(gid), { SecurityGroupRuleId: before.SecurityGroupRuleId });
    assert.deepEqual([after.Description, after.Priority], [FANCY_RULE_DESC, 7]);
    for (const k of ['IpProtocol', 'PortRange', 'SourceCidrIp', 'Policy', 'NicType', 'Direction', 'CreateTime']) {
      assert.equal(after[k], before[k], k);
    }
    await api.raises(404, 'InvalidSecurityGroupRuleId.NotFound', () => api.call('ModifySecurityGroupRule',
      { RegionId: REGION, SecurityGroupId: gid, SecurityGroupRuleId: UNKNOWN_RULE, Description: 'x1' }));
  });

  it('RevokeSecurityGroup by fields, then again: 400 InvalidSecurityGroupRule.RuleNotExist', async () => {
    const gid = await createGroup({ vpcId: await createVpc() });
    const rule = { IpProtocol: 'tcp', PortRange: '3306/3306', SourceCidrIp: '10.10.0.0/16', Policy: 'accept' };
    await authorize(gid, rule);
    await authorize(gid, { IpProtocol: 'udp', PortRange: '161/161', SourceCidrIp: '10.10.0.0/16' });
    await api.call('RevokeSecurityGroup', { RegionId: REGION, SecurityGroupId: gid, ...rule });
    assert.deepEqual((await rules(gid)).map((p) => p.IpProtocol), ['UDP']);
    await api.raises(400, 'InvalidSecurityGroupRule.RuleNotExist',
      () => api.call('RevokeSecurityGroup', { RegionId: REGION, SecurityGroupId: gid, ...rule }));
  });

  it('RevokeSecurityGroup with the values read back (TCP, Accept)', async () => {
    const gid = await createGroup({ vpcId: await createVpc() });
    await authorize(gid, { IpProtocol: 'tcp', PortRange: '5432/5432', SourceCidrIp: '10.20.0.0/16', Priority: '4' });
    const p = only(await rules(gid), { PortRange: '5432/5432' });
    await api.call('RevokeSecurityGroup', { RegionId: REGION, SecurityGroupId: gid, IpProtocol: p.IpProtocol,
      PortRange: p.PortRange, SourceCidrIp: p.SourceCidrIp, Policy: p.Policy, NicType: p.NicType,
      Priority: String(p.Priority) });
    assert.deepEqual(await rules(gid), []);
  });

  it('RevokeSecurityGroup by SecurityGroupRuleId.N', async () => {
    const gid = await createGroup({ vpcId: await createVpc() });
    await api.call('AuthorizeSecurityGroup', { RegionId: REGION, SecurityGroupId: gid,
      Permissions: [7001, 7002, 7003].map((port) => ({ IpProtocol: 'tcp', PortRange: `${port}/${port}`,
        SourceCidrIp: '10.0.0.0/8' })) });
    const byPort = Object.fromEntries((await rules(gid)).map((p) => [p.PortRange, p.SecurityGroupRuleId]));
    await api.call('RevokeSecurityGroup', { RegionId: REGION, SecurityGroupId: gid,
      SecurityGroupRuleId: [byPort['7001/7001'], byPort['7003/7003']] });
    assert.deepEqual((await rules(gid)).map((p) => [p.PortRange, p.SecurityGroupRuleId]),
      [['7002/7002', byPort['7002/7002']]]);
    await api.raises(404, 'InvalidSecurityGroupRuleId.NotFound', () => api.call('RevokeSecurityGroup',
      { RegionId: REGION, SecurityGroupId: gid, SecurityGroupRuleId: [UNKNOWN_RULE] }));
  });

  it('DeleteSecurityGroup, then Describe: 404 InvalidSecurityGroupId.NotFound', async () => {
    const gid = await createGroup();
    await authorize(gid, { IpProtocol: 'tcp', PortRange: '22/22', SourceCidrIp: '10.0.0.0/8' });
    await api.call('DeleteSecurityGroup', { RegionId: REGION, SecurityGroupId: gid });
    await api.raises(404, 'InvalidSecurityGroupId.NotFound', () => describeGroup(gid));
    assert.deepEqual(groups(await listGroups({ SecurityGroupIds: JSON.stringify([gid]) })), []);
  });

  it('errors: unknown group, malformed CIDR, bad priorities, duplicate', async () => {
    await api.raises(404, 'InvalidSecurityGroupId.NotFound', () => describeGroup(UNKNOWN_GROUP));
    await api.raises(404, 'InvalidSecurityGroupId.NotFound',
      () => authorize(UNKNOWN_GROUP, { IpProtocol: 'tcp', PortRange: '22/22', SourceCidrIp: '10.0.0.0/8' }));
    const gid = await createGroup();
    await api.raises(400, 'InvalidSourceCidrIp.Malformed',
      () => authorize(gid, { IpProtocol: 'tcp', PortRange: '22/22', SourceCidrIp: '10.0.0.300/8' }));
    await api.raises(400, 'InvalidPriority.Malformed', () => authorize(gid,
      { IpProtocol: 'tcp', PortRange: '22/22', SourceCidrIp: '10.0.0.0/8', Priority: 'abc' }));
    await api.raises(400, 'InvalidPriority.ValueNotSupported', () => authorize(gid,
      { IpProtocol: 'tcp', PortRange: '22/22', SourceCidrIp: '10.0.0.0/8', Priority: '101' }));
    assert.deepEqual(await rules(gid), []);
    await authorize(gid, { IpProtocol: 'tcp', PortRange: '22/22', SourceCidrIp: '10.0.0.0/8' });
    await api.raises(400, 'InvalidPermission.Duplicate',
      () => authorize(gid, { IpProtocol: 'tcp', PortRange: '22/22', SourceCidrIp: '10.0.0.0/8' }));
    assert.equal((await rules(gid)).length, 1);
  });

  it('--duplicate-rule ignore: a duplicate Authorize succeeds and adds nothing', async () => {
    const gid = await createGroup({}, dupIgnoreApi);
    const rule = { IpProtocol: 'tcp', PortRange: '22/22', SourceCidrIp: '10.0.0.0/8', Description: 'first' };
    await authorize(gid, rule, dupIgnoreApi);
    await authorize(gid, { ...rule, IpProtocol: 'TCP', Policy: 'Accept', Description: 'second' }, dupIgnoreApi);
    const perms = await rules(gid, {}, dupIgnoreApi);
    assert.deepEqual(perms.map((p) => p.Description), ['first']);
  });

  it('rule quota (--rule-quota 5): 403 AuthorizationLimitExceed', async () => {
    const gid = await createGroup({}, quotaApi);
    const perm = (port) => ({ IpProtocol: 'tcp', PortRange: `${port}/${port}`, SourceCidrIp: '10.0.0.0/8' });
    await quotaApi.call('AuthorizeSecurityGroup', { RegionId: REGION, SecurityGroupId: gid,
      Permissions: [1, 2, 3, 4].map(perm) });
    await quotaApi.raises(403, 'AuthorizationLimitExceed', () => quotaApi.call('AuthorizeSecurityGroup',
      { RegionId: REGION, SecurityGroupId: gid, Permissions: [5, 6].map(perm) }));
    assert.equal((await rules(gid, {}, quotaApi)).length, 4);
    await authorize(gid, perm(5), quotaApi);
    await quotaApi.raises(403, 'AuthorizationLimitExceed', () => authorize(gid, perm(6), quotaApi));
    assert.equal((await rules(gid, {}, quotaApi)).length, 5);
  });

  it('wrong secret: 400 SignatureDoesNotMatch with the string to sign', async () => {
    const bad = new PopApi(server, method, { accessKeySecret: 'not-the-secret' });
    await assert.rejects(() => bad.call('DescribeSecurityGroups', { RegionId: REGION }), (err) => {
      assert.deepEqual([err.entry.response.statusCode, err.code], [400, 'SignatureDoesNotMatch'], err.message);
      assert.match(err.data.Message, new RegExp(`server string to sign is:${method}&%2F&AccessKeyId%3D`));
      return true;
    });
  });

  it('unknown AccessKeyId: 404 InvalidAccessKeyId.NotFound', async () => {
    const bad = new PopApi(server, method, { accessKeyId: 'NoSuchAccessKeyId' });
    await bad.raises(404, 'InvalidAccessKeyId.NotFound', () => bad.call('DescribeSecurityGroups', { RegionId: REGION }));
  });

  it('expired Timestamp: 400 InvalidTimeStamp.Expired', async () => {
    await api.raises(400, 'InvalidTimeStamp.Expired',
      () => api.call('DescribeSecurityGroups', { RegionId: REGION, Timestamp: '2020-01-01T00:00:00Z' }));
  });
}

describe('pop-core GET (query string)', () => scenarios('GET'));
describe('pop-core POST (form body)', () => scenarios('POST'));
