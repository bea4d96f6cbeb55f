"""Must show: ten changes within the quiescence window give one render and one reload."""

import time

from renderer_helpers import consul_settings, wait_for


def test_ten_changes_in_the_window_give_one_render_and_one_reload(consul_agent, renderer, tmp_path):
    consul_agent.put("quiet/value", "0")
    live = tmp_path / "quiet.conf"
    reloads = tmp_path / "reloads"
    daemon = renderer(
        {
            "consul": consul_settings(consul_agent),
            "wait": {"min": 1.5, "max": 10},
            "templates": [
                {
                    "name": "quiet",
                    "contents": "value={{ key('quiet/value') }}\n",
                    "destination": str(live),
                    "command": f"echo reload >> {reloads}",
                }
            ],
        }
    )
    daemon.wait_ready()
    wait_for(reloads.exists, 5, what="the first render's reload")
    renders_before = daemon.template("quiet")["render_count"]
    reloads.write_text("")
    for number in range(1, 11):
        consul_agent.put("quiet/value", str(number))
        time.sleep(0.1)
    wait_for(lambda: live.read_text() == "value=10\n", 10, what="the render after the burst")
    time.sleep(2)  # a second render or reload would show up by now
    assert reloads.read_text() == "reload\n"
    assert daemon.template("quiet")["render_count"] == renders_before + 1


def test_wait_max_bounds_a_never_ending_burst(consul_agent, renderer, tmp_path):
    consul_agent.put("churn/value", "0")
    live = tmp_path / "churn.conf"
    daemon = renderer(
        {
            "consul": consul_settings(consul_agent),
            "wait": {"min": 1, "max": 2},
            "templates": [{"name": "churn", "contents": "{{ key('churn/value') }}", "destination": str(live)}],
        }
    )
    daemon.wait_ready()
    started = time.monotonic()
    number = 0
    # Changes every 0.3 s never leave 1 s of quiet; wait.max still forces a render after 2 s.
    while live.read_text() == "0" and time.monotonic() - started < 6:
        number += 1
        consul_agent.put("churn/value", str(number))
        time.sleep(0.3)
    assert live.read_text() != "0"
    assert time.monotonic() - started < 4
