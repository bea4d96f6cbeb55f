#!/usr/bin/env bash
# Two environments side by side from one controller (docs/lab.md): builds the
# qa lab (three nodes, every role on each), then the staging lab (one master,
# three agents, coordination on the agents only), shows that both work and that
# their secrets directories share nothing, that rebuilding qa changes nothing
# after staging was built, and that staging still works once qa is deleted.
# Every claim is printed on a line starting with EVIDENCE; any claim that does
# not hold stops the run with a line starting with DEMO FAILED.
#
#   bash lab/environments/demo.sh          the demo; staging-lab stays up
#   bash lab/environments/demo.sh clean    remove both labs and their secrets
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export PATH="$root/.venv/bin:$root/.cache/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$root/.cache/collections" ANSIBLE_NOCOLOR=1

qa=lab/environments/qa
staging=lab/environments/staging

die() {
    echo "DEMO FAILED: $*" >&2
    exit 1
}

evidence() {
    echo "EVIDENCE $*"
}

step() {
    printf '\n=== [%s] %s\n' "$(date +%H:%M:%S)" "$*"
}

# The lab name and the secrets directory an inventory names, as the playbooks compute them.
declare -A lab_of secrets_of
describe() {
    local names
    names="$(ANSIBLE_LOAD_CALLBACK_PLUGINS=1 ANSIBLE_STDOUT_CALLBACK=ansible.posix.json \
        ansible -i "$1" localhost -m ansible.builtin.debug \
        -a '{"msg": "{{ lab_name | default(\"lab\") }} {{ lookup(\"dockyard.platform.environment_dir\") }}"}' |
        jq -r '.plays[0].tasks[0].hosts.localhost.msg')"
    lab_of[$1]="${names%% *}"
    secrets_of[$1]="${names#* }"
    [[ ${lab_of[$1]} =~ ^[a-z0-9-]+$ && ${secrets_of[$1]} == /*/"${lab_of[$1]}" ]] ||
        die "$1 names lab '${lab_of[$1]}' and secrets directory '${secrets_of[$1]}': expected a lab name and a directory named after it"
}

# Runs a command with its output on the screen and in $logs/<name>.log; says how long it took.
declare -A took
logged() {
    local name="$1" start=$SECONDS
    shift
    "$@" 2>&1 | tee "$logs/$name.log" || die "$name failed: its log is $logs/$name.log"
    took[$name]=$((SECONDS - start))
    echo "--- $name: $((took[$name] / 60)) min $((took[$name] % 60)) s"
}

# Every host of a playbook run's recap changed nothing and failed nowhere.
unchanged() {
    local recap
    recap="$(sed -n '/^PLAY RECAP/,$p' "$logs/$1.log" | grep -E '^[^ ]+ +: ok=')" || die "$1 printed no recap"
    if grep -vE ' changed=0 +unreachable=0 +failed=0 ' <<<"$recap"; then
        die "$1 changed or failed on the hosts above"
    fi
    evidence "$1: changed=0 on all $(wc -l <<<"$recap") hosts of the recap ($(awk '{printf "%s%s", sep, $1; sep=", "}' <<<"$recap")), in ${took[$1]} s"
}

# status.yml's quorums and leaders, the routers' reports and the demo app's instances.
healthy() {
    local inventory="$1" name="$2"
    logged "$name" ansible-playbook -i "$inventory" playbooks/status.yml -e "status_json=$logs/$name.json"
    jq -e '.zookeeper.quorum and .zookeeper.leader != null and .consul.quorum and .consul.leader != null
           and .swarm.quorum and .swarm.leader != null and (.routers | length > 0 and all(.reporting))
           and any(.apps[]; .name == "demo" and .desired > 0 and .serving == .desired)' \
        "$logs/$name.json" >/dev/null || die "status.yml on $inventory: not every quorum, leader, router and demo instance is healthy ($logs/$name.json)"
    evidence "$(jq -r '"\(.environment): ZooKeeper quorum, leader \(.zookeeper.leader) of \(.zookeeper.members | length);"
        + " Consul quorum, leader \(.consul.leader) of \(.consul.servers | length) servers;"
        + " Swarm quorum, leader \(.swarm.leader), \(.swarm.managers | length) manager(s) + \(.swarm.workers | length) worker(s);"
        + " routers reporting \(.routers | length)/\(.routers | length);"
        + " demo \(.apps[] | select(.name == "demo") | "\(.serving)/\(.desired)") serving"' "$logs/$name.json")"
}

# Each router of the lab answers for the demo app, by its vhost and by its service port, from the controller.
answers() {
    local inventory="$1" lab="${lab_of[$1]}" routers host address by_vhost by_port
    routers="$(ansible -i "$inventory" routers --list-hosts | awk 'NR > 1 {print $1}')"
    [[ -n $routers ]] || die "$inventory has no router"
    for host in $routers; do
        address="$(docker inspect -f "{{ (index .NetworkSettings.Networks \"dockyard-$lab\").IPAddress }}" "dockyard-$lab-$host")"
        by_vhost="$(curl -fsS --max-time 5 -H 'Host: demo.dockyard.test' "http://$address/")" ||
            die "router $host of $lab ($address) does not answer for demo.dockyard.test"
        by_port="$(curl -fsS --max-time 5 "http://$address:10080/")" ||
            die "router $host of $lab ($address) does not answer on port 10080"
        [[ $by_vhost == "demo served by "* && $by_port == "demo served by "* ]] ||
            die "router $host of $lab answered '$by_vhost' and '$by_port', not the demo app"
        evidence "$lab router $host ($address): vhost demo.dockyard.test -> '$by_vhost'; port 10080 -> '$by_port'"
    done
}

# What the lab left on the engine: its containers, volumes and network.
leftovers() {
    local lab="${lab_of[$1]}"
    docker ps -aq --filter "label=org.dockyard.lab=$lab"
    docker volume ls -q --filter "label=org.dockyard.lab=$lab"
    docker network ls -q --filter "label=org.dockyard.lab=$lab"
}

# Removes the lab of an inventory and its secrets directory: the environment is gone.
delete() {
    local inventory="$1"
    logged "down-${lab_of[$inventory]}" ansible-playbook -i "$inventory" lab/down.yml
    rm -rf -- "${secrets_of[$inventory]}"
}

command -v ansible-playbook >/dev/null || die "ansible-playbook is not in $root/.venv: run make venv first"
describe "$qa"
describe "$staging"
logs="$(mktemp -d /tmp/dockyard-two-labs.XXXXXX)"
echo "Logs of every step: $logs"

if [[ ${1:-} == clean ]]; then
    delete "$qa"
    delete "$staging"
    exit 0
fi
[[ $# -eq 0 ]] || die "usage: bash lab/environments/demo.sh [clean]"

for inventory in "$qa" "$staging"; do
    if [[ -n "$(leftovers "$inventory")" || -e ${secrets_of[$inventory]} ]]; then
        die "${lab_of[$inventory]} is left from an earlier run (containers, volumes, network or ${secrets_of[$inventory]}): bash lab/environments/demo.sh clean"
    fi
done

bash lab/ensure-engine.sh
bash lab/base-image/build.sh

for inventory in "$qa" "$staging"; do
    lab="${lab_of[$inventory]}"
    step "Build $lab from nothing but its inventory $inventory"
    logged "up-$lab" ansible-playbook -i "$inventory" lab/up.yml
    logged "site-$lab" ansible-playbook -i "$inventory" playbooks/site.yml
    evidence "$lab built: $(docker ps -q --filter "label=org.dockyard.lab=$lab" | wc -l) containers, site.yml cold run in ${took[site-$lab]} s"
done

for inventory in "$qa" "$staging"; do
    lab="${lab_of[$inventory]}"
    step "$lab works: a demo app on it, status.yml, every router answers"
    logged "demo-app-$lab" ansible-playbook -i "$inventory" lab/demo-app.yml
    healthy "$inventory" "status-$lab"
    answers "$inventory"
done

step "The two secrets directories share nothing"
qa_secrets="$(realpath "${secrets_of[$qa]}")"
staging_secrets="$(realpath "${secrets_of[$staging]}")"
[[ $qa_secrets/ != "$staging_secrets"/* && $staging_secrets/ != "$qa_secrets"/* ]] ||
    die "one secrets directory is inside the other: $qa_secrets, $staging_secrets"
for directory in "$qa_secrets" "$staging_secrets"; do
    [[ -z "$(find "$directory" -type l)" ]] || die "$directory holds symbolic links: $(find "$directory" -type l)"
    [[ -z "$(find "$directory" \( -type d ! -perm 0700 \) -o \( -type f ! -perm 0600 \))" ]] ||
        die "$directory is not private (directories 0700, files 0600): $(find "$directory" \( -type d ! -perm 0700 \) -o \( -type f ! -perm 0600 \))"
    (cd "$directory" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$logs/$(basename "$directory").sha256"
done
common="$(join -j1 <(cut -d' ' -f1 "$logs/qa-lab.sha256" | sort) <(cut -d' ' -f1 "$logs/staging-lab.sha256" | sort))"
[[ -z $common ]] || die "files with the same content in both secrets directories: $common"
same_paths="$(join -j1 <(awk '{print $2}' "$logs/qa-lab.sha256" | sort) <(awk '{print $2}' "$logs/staging-lab.sha256" | sort) | wc -l)"
evidence "secrets: $qa_secrets ($(wc -l <"$logs/qa-lab.sha256") files) and $staging_secrets ($(wc -l <"$logs/staging-lab.sha256") files), neither inside the other, no symbolic link, directories 0700 and files 0600"
evidence "secrets: 0 files with the same content in both; $same_paths paths exist in both, each with different content"
for certificate in consul/consul-dc1/ca.pem pki/ca.crt; do
    evidence "$certificate: qa-lab $(openssl x509 -noout -fingerprint -sha256 -in "$qa_secrets/$certificate" | cut -d= -f2 | cut -c1-23)..." \
        "staging-lab $(openssl x509 -noout -fingerprint -sha256 -in "$staging_secrets/$certificate" | cut -d= -f2 | cut -c1-23)..."
done

step "site.yml on qa-lab again, after staging-lab was built: nothing to change"
logged "site-rerun-qa-lab" ansible-playbook -i "$qa" playbooks/site.yml
unchanged site-rerun-qa-lab

step "Delete qa-lab: its containers, volumes, network and secrets directory"
delete "$qa"
[[ -z "$(leftovers "$qa")" && ! -e $qa_secrets ]] || die "qa-lab is not gone: $(leftovers "$qa") $qa_secrets"
evidence "qa-lab deleted: no container, volume or network labelled org.dockyard.lab=qa-lab, no $qa_secrets"

step "staging-lab still works"
healthy "$staging" status-staging-lab-after
answers "$staging"
logged "site-rerun-staging-lab" ansible-playbook -i "$staging" playbooks/site.yml
unchanged site-rerun-staging-lab

step "Done in $((SECONDS / 60)) min $((SECONDS % 60)) s"
evidence "whole demo: $SECONDS s; staging-lab is still up: bash lab/environments/demo.sh clean removes it"
