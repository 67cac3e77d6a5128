"""How many examples a property test runs, scaled by the loaded Hypothesis profile.

``tests/conftest.py`` registers the profiles: ``dev`` (Hypothesis' default, 100 examples)
and ``ci`` (400, selected by ``ARCHS4X_HYPOTHESIS_PROFILE=ci`` in ``.ci/run``).  A test
that sets its own count writes ``@settings(max_examples=examples(60))``: 60 examples in
development, 240 in CI.
"""

from __future__ import annotations

from hypothesis import settings

#: max_examples of Hypothesis' own default profile: the unit of the scale.
_DEFAULT_EXAMPLES = 100


def examples(n: int) -> int:
    """``n`` scaled by the loaded profile (x1 for ``dev``, x4 for ``ci``), at least 1.

    Examples
    --------
    >>> examples(25) == max(1, 25 * settings.default.max_examples // 100)
    True
    """
    return max(1, n * settings.default.max_examples // _DEFAULT_EXAMPLES)
