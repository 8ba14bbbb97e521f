"""Thin adapters over the official Python clients, used by the scenario tests.

Each adapter sends an action through the client's own typed request class (parameters
given by their wire names), hands back the reply body as a dict, and checks errors as the
client surfaces them (its own exception type, HTTP status and code).
"""

import contextlib
import importlib
import json
import re

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as TeaClient
from alibabacloud_tea_openapi import exceptions as tea_exceptions
from alibabacloud_tea_openapi.models import Config
from darabonba.runtime import RuntimeOptions

import harness


class CoreApi(object):
    name = "core"

    def __init__(self, server, access_key_id=harness.ACCESS_KEY_ID, access_key_secret=harness.ACCESS_KEY_SECRET):
        self.server = server
        self.client = AcsClient(access_key_id, access_key_secret, harness.REGION)

    def request(self, action, params):
        module = importlib.import_module("aliyunsdkecs.request.v20140526.%sRequest" % action)
        req = getattr(module, "%sRequest" % action)()
        req.set_endpoint(self.server.endpoint)
        req.set_protocol_type("http")
        for key, value in params.items():
            if key == "RegionId" and not hasattr(req, "set_RegionId"):
                # The ECS request classes have no setter: the SDK adds the client's region
                # unless the request already carries one.
                req.add_query_param("RegionId", value)
                continue
            if isinstance(value, list) and hasattr(req, "set_%ss" % key):
                setter = getattr(req, "set_%ss" % key)  # RepeatList, e.g. set_SecurityGroupRuleIds
            else:
                setter = getattr(req, "set_%s" % key)  # AttributeError = not in the SDK's API
            setter(value)
        return req

    def call(self, action, params):
        raw = self.client.do_action_with_exception(self.request(action, params))
        assert isinstance(raw, bytes)
        body = json.loads(raw.decode("utf-8"))
        assert "RequestId" in body and "Code" not in body, body
        return body

    @contextlib.contextmanager
    def raises(self, status, code):
        with pytest.raises(ServerException) as info:
            yield info
        err = info.value
        assert (err.get_http_status(), err.get_error_code()) == (status, code), \
            "expected %s %s, got %s %s: %s" % (status, code, err.get_http_status(), err.get_error_code(),
                                               err.get_error_msg())
        assert err.get_request_id(), "error without RequestId"


INT_FIELDS = {"PageNumber", "PageSize", "MaxResults"}


def snake(action):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


class TeaApi(object):

    def __init__(self, server, mode, access_key_id=harness.ACCESS_KEY_ID,
                 access_key_secret=harness.ACCESS_KEY_SECRET):
        self.mode = mode
        config = Config(access_key_id=access_key_id, access_key_secret=access_key_secret,
                        region_id=harness.REGION, endpoint=server.endpoint, protocol="http")
        if mode == "v1":
            config.signature_algorithm = "v2"
        self.client = TeaClient(config)

    def typed_call(self, action, params):
        """Returns the SDK's typed response object."""
        model = getattr(ecs_models, "%sRequest" % action)
        wire = {k: (int(v) if k in INT_FIELDS else v) for k, v in params.items()}
        req = model().from_map(wire)
        unknown = set(wire) - set(req.to_map())
        assert not unknown, "%s has no field %s" % (model.__name__, unknown)
        resp = getattr(self.client, "%s_with_options" % snake(action))(req, RuntimeOptions())
        assert resp.status_code == 200
        return resp

    def call(self, action, params):
        body = self.typed_call(action, params).body.to_map()
        assert "RequestId" in body and "Code" not in body, body
        return body

    @contextlib.contextmanager
    def raises(self, status, code):
        with pytest.raises(tea_exceptions.AlibabaCloudException) as info:
            yield info
        err = info.value
        assert (err.status_code, err.code) == (status, code), \
            "expected %s %s, got %s %s: %s" % (status, code, err.status_code, err.code, err.message)
        expected_type = tea_exceptions.ClientException if status < 500 else tea_exceptions.ServerException
        assert isinstance(err, expected_type), type(err)
        assert err.request_id and err.request_id != "None", "error without RequestId"
