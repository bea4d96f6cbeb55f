# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""error_on_missing_key, with consul-template's meaning: what indexing a map with a key it lacks does.

consul-template's `error_on_missing_key = true` makes such a template fail
(Go's missingkey=error); false, its default, prints "<no value>". Ours
defaults to true, as Jinja2's StrictUndefined, which this engine uses for
everything else too. With false, a missing map key or attribute (`route.x`,
`route['x']`) is empty, false and an empty list, as Go's zero value; an
undefined name stays an error in both, since Go refuses one when it parses.
Whether a Consul key that key() reads exists is another setting,
missing_consul_key.
"""

from __future__ import annotations

import functools


@functools.cache
def empty_missing_keys():
    """The Jinja2 undefined type for error_on_missing_key false (Jinja2 is imported only when a template needs it)."""
    import jinja2

    class EmptyMissingKey(jinja2.StrictUndefined):
        __slots__ = ()

        def _behaviour(self):
            # A failed lookup on an object has the object; an undefined name has none.
            return jinja2.StrictUndefined if self._undefined_obj is jinja2.utils.missing else jinja2.Undefined

        def __str__(self):
            return self._behaviour().__str__(self)

        def __iter__(self):
            return self._behaviour().__iter__(self)

        def __len__(self):
            return self._behaviour().__len__(self)

        def __bool__(self):
            return self._behaviour().__bool__(self)

        def __eq__(self, other):
            return self._behaviour().__eq__(self, other)

        def __ne__(self, other):
            return self._behaviour().__ne__(self, other)

        def __hash__(self):
            return self._behaviour().__hash__(self)

        def __contains__(self, item):
            return item in iter(self)

    return EmptyMissingKey
