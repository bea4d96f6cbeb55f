import threading

from ansible_collections.dockyard.platform.plugins.module_utils.daemon.consul import ConsulError
from ansible_collections.dockyard.platform.plugins.module_utils.renderer import watch
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.config import WatchSettings


def test_index_rules():
    assert watch.next_index(0, 42) == 42
    assert watch.next_index(42, 50) == 50
    assert watch.next_index(42, 41) == 0  # went backwards
    assert watch.next_index(42, 0) == 0  # not above 0


class FakeDependency:
    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []
        self.done = threading.Event()

    def fetch(self, client, index=0, wait=None):
        self.calls.append(index)
        if not self.answers:
            self.done.set()
            threading.Event().wait(10)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_view_delivers_changes_only_and_resets_index():
    dependency = FakeDependency([("a", 10), ("a", 10), ("b", 12), ("b", 5), ConsulError("down"), ("c", 20), ("c", 21)])
    delivered = []
    settings = WatchSettings(block_wait=60, min_interval=0, backoff=0.01, max_backoff=0.01)
    view = watch.View(dependency, None, settings, lambda dep, data: delivered.append(data))
    view.start()
    assert dependency.done.wait(5)
    view.stop()
    assert delivered == ["a", "b", "c"]
    # 0 first; same index again; 10 -> 12; 12 then backwards to 5 -> 0; error -> 0; then 20.
    assert dependency.calls == [0, 10, 10, 12, 0, 0, 20, 21]
