# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make a ZooKeeper path exist with an ACL that lets only one digest identity in.

Reads {"user": ..., "password": ...} on stdin (never on the command line),
prints {"changed": bool, "path": ...} on stdout, and a one-line reason on
stderr with exit status 1 when the path cannot be protected.
"""

import argparse
import json
import sys

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError, NodeExistsError
from kazoo.security import make_digest_acl


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", required=True, help="ZooKeeper connection string")
    parser.add_argument("--path", required=True, help="absolute path to protect, e.g. /dockyard")
    parser.add_argument("--timeout", type=float, default=15.0)
    args = parser.parse_args()
    credentials = json.load(sys.stdin)
    user, password = credentials["user"], credentials["password"]
    wanted = [make_digest_acl(user, password, all=True)]

    client = KazooClient(hosts=args.hosts, timeout=args.timeout, auth_data=[("digest", f"{user}:{password}")])
    try:
        client.start(timeout=args.timeout)
        changed = False
        parent = args.path.rsplit("/", 1)[0]
        if parent:
            client.ensure_path(parent)
        try:
            client.create(args.path, b"", acl=wanted)
            changed = True
        except NodeExistsError:
            current, _stat = client.get_acls(args.path)
            if sorted(map(str, current)) != sorted(map(str, wanted)):
                client.set_acls(args.path, wanted)
                changed = True
        # Prove the identity can use the path it now owns.
        client.get_children(args.path)
    except NoAuthError:
        print(f"{args.path} exists and the deployer identity {user!r} may not change its ACL", file=sys.stderr)
        return 1
    except Exception as error:  # a timeout, a refused connection, a server error: report, do not trace
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        client.stop()
        client.close()
    print(json.dumps({"changed": changed, "path": args.path}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
