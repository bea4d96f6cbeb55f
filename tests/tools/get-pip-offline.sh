#!/usr/bin/env bash
# ansible-test sanity --requirements first downloads a pip bootstrap script from
# a host that this machine cannot reach. A stand-in in its cache that runs
# ensurepip lets it go on offline; it then installs its requirements from PyPI.
set -euo pipefail

pip_version="$(python - <<'PY'
import re
from ansible_test._internal import python_requirements

source = open(python_requirements.__file__).read()
print(re.search(r"pip='([0-9.]+)'", source).group(1).replace(".", "_"))
PY
)"
stand_in="$HOME/.ansible/test/cache/get_pip_${pip_version}.py"
mkdir -p "$(dirname "$stand_in")"
printf 'import ensurepip\n\nensurepip.bootstrap(upgrade=True)\n' >"$stand_in"
