"""The ZooKeeper ensemble: a leader, two followers, a quorum that survives a
lost member, and a chroot only the deployer identity may use."""

import json
import shlex

from cluster import COORDINATION, SECRETS, four_letter_word, lab_host, zk_mode
from support.waiting import wait_for

testinfra_hosts = ["manager1"]

KAZOO = """
import json, sys
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
creds = json.loads(sys.argv[1]); action = sys.argv[2]
auth = [("digest", creds["user"] + ":" + creds["password"])] if creds else []
zk = KazooClient(hosts=sys.argv[3], auth_data=auth, timeout=10)
zk.start(timeout=20)
try:
    if action == "write":
        path = zk.create("/dockyard/molecule-", b"ok", sequence=True)
        print(zk.get(path)[0].decode())
    else:
        try:
            zk.get_children("/dockyard")
            print("allowed")
        except NoAuthError:
            print("denied")
finally:
    zk.stop()
"""


def kazoo(host, action: str, servers: str, authenticated: bool = True) -> str:
    password = (SECRETS / "zookeeper" / "zookeeper-deployer.password").read_text().strip()
    creds = json.dumps({"user": "deployer", "password": password}) if authenticated else "{}"
    command = f"python3 -c {shlex.quote(KAZOO)} {shlex.quote(creds)} {action} {servers}"
    return host.check_output(command)


def test_one_leader_and_two_followers(host):
    modes = sorted(zk_mode(host, member) for member in COORDINATION)
    assert modes == ["follower", "follower", "leader"]
    assert "zk_server_state\tleader" in "".join(four_letter_word(host, m, "mntr") for m in COORDINATION)


def test_four_letter_words_are_limited_to_health_checks(host):
    assert four_letter_word(host, "agent1", "ruok") == "imok"
    assert "is not in the whitelist" in four_letter_word(host, "agent1", "conf")


def test_chroot_is_for_the_deployer_only(host):
    assert kazoo(host, "read", "agent1:2181", authenticated=False) == "denied"
    assert kazoo(host, "read", "agent1:2181") == "allowed"


def test_losing_one_member_leaves_a_serving_quorum(host):
    leader = next(member for member in COORDINATION if zk_mode(host, member) == "leader")
    survivors = [member for member in COORDINATION if member != leader]
    stopped = lab_host(leader)
    stopped.check_output("systemctl stop zookeeper")
    try:
        # The survivors elect a new leader among themselves and keep serving writes.
        wait_for(
            lambda: sorted(zk_mode(host, m) for m in survivors) == ["follower", "leader"],
            90,
            2,
            f"a leader and a follower among {', '.join(survivors)}",
            detail=lambda: {m: zk_mode(host, m) for m in survivors},
        )
        assert zk_mode(host, leader) == "not serving"
        servers = ",".join(f"{m}:2181" for m in survivors)
        assert kazoo(host, "write", servers) == "ok"
    finally:
        stopped.check_output("systemctl start zookeeper")
    wait_for(
        lambda: zk_mode(host, leader) == "follower",
        90,
        2,
        f"{leader} back as a follower",
        detail=lambda: f"{leader} is {zk_mode(host, leader)}",
    )
    assert sorted(zk_mode(host, m) for m in COORDINATION) == ["follower", "follower", "leader"]
