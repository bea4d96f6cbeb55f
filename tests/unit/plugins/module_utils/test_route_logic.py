"""Writing a route: the plan refuses what the routers would skip, before anything is written."""

import base64
import json

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils import _route
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.routing import RouteError

RANGE = (10000, 19999)


def listing(**routes):
    """Consul's recurse read of d/routes/: app -> (spec, create index)."""
    return [
        {
            "Key": f"d/routes/{app}",
            "Value": base64.b64encode((spec if isinstance(spec, str) else json.dumps(spec)).encode()).decode(),
            "CreateIndex": created,
            "ModifyIndex": created + 1,
        }
        for app, (spec, created) in routes.items()
    ]


def plan(app, spec, **routes):
    return _route.plan(app, spec, _route.entries(listing(**routes), "d/"), "d/", (80, 443), RANGE)


def test_a_new_route_is_written_with_a_create_only_check_and_set():
    result = plan("shop", {"hosts": ["shop.test"], "service_port": 10080})
    assert result.key == "d/routes/shop" and result.changed
    assert result.before is None and result.modify_index == 0


def test_the_same_route_again_changes_nothing():
    spec = {"hosts": ["shop.test"]}
    result = plan("shop", spec, shop=(spec, 10))
    assert not result.changed and result.modify_index == 11


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"hosts": ["evil\n.example.com"]}, "route shop: hosts[0]"),
        ({"hosts": ["a.test"], "health": {"path": "/h\n"}}, "route shop: health.path"),
        ({"service_port": 8501}, "outside the service port range 10000-19999"),
        ({"service_port": 80}, "one of the router's own ports"),
        ({"hosts": ["a.test"], "helth": {}}, "unknown key(s) helth"),
    ],
)
def test_a_route_the_routers_would_skip_is_refused_naming_the_field(spec, message):
    with pytest.raises(RouteError) as caught:
        plan("shop", spec)
    assert message in str(caught.value)


def test_a_host_or_port_held_by_an_older_route_is_refused_whatever_the_names():
    shop = {"hosts": ["shop.example.com"], "service_port": 10080}
    with pytest.raises(
        RouteError, match=r"route aaa-evil: refused, it claims host shop.example.com \(taken by route shop\)"
    ):
        plan("aaa-evil", {"hosts": ["SHOP.example.com."]}, shop=(shop, 5))
    with pytest.raises(RouteError, match="service_port 10080"):
        plan("other", {"service_port": 10080}, shop=(shop, 5))


def test_an_existing_route_keeps_what_it_claimed_first():
    # shop is older than thief, which a careless writer stored directly: shop may still change.
    result = plan(
        "shop",
        {"hosts": ["shop.example.com", "www.shop.example.com"]},
        shop=({"hosts": ["shop.example.com"]}, 5),
        thief=({"hosts": ["shop.example.com"]}, 9),
    )
    assert result.changed


def test_invalid_stored_routes_claim_nothing_and_removal_needs_no_spec():
    result = plan("shop", {"hosts": ["shop.test"]}, broken=("{not json", 1))
    assert result.changed
    removal = plan("shop", None, shop=({"hosts": ["shop.test"]}, 3))
    assert removal.after is None and removal.changed and removal.modify_index == 4


def test_spec_from_params_leaves_unset_options_to_the_routers():
    params = {"hosts": ["a.test"], "service_port": None, "balance": None, "sticky": None, "canary_weight": None}
    params["health"] = {"path": "/h", "expect_status": None, "interval": None}
    assert _route.spec_from_params(params) == {"hosts": ["a.test"], "health": {"path": "/h"}}
