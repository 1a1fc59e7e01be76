"""Finding the objects a check writes: the scenario's ``[objects]`` steps, run once.

The first step GETs a page and takes the first ``count`` distinct matches of its
pattern (each match's named groups are one object's variables); every later step GETs a
page of each object and adds the named groups of its first match. A step with ``user``
runs logged in as that role.
"""

from __future__ import annotations

import http.client

from ..httpclient import Session
from .scenario import Scenario, render

__all__ = ["find_objects", "DiscoveryError"]


class DiscoveryError(Exception):
    """The scenario's objects could not be found on the site; the message says where."""


def _get(session: Session, path: str) -> str:
    try:
        answer = session.get(path)
    except (OSError, http.client.HTTPException) as error:
        raise DiscoveryError(f"finding objects: GET {path} failed: {error}") from None
    if answer.status != 200:
        raise DiscoveryError(f"finding objects: GET {path} answered {answer.status}")
    return answer.text


def find_objects(
    scenario: Scenario, anonymous: Session, sessions: dict[str, Session]
) -> list[dict[str, str]]:
    """The objects' variables, ``scenario.count`` of them (fewer only if the site has fewer)."""
    if scenario.objects:
        return [dict(o) for o in scenario.objects]
    first, *rest = scenario.find
    session = sessions[first.user] if first.user else anonymous
    objects: list[dict[str, str]] = []
    for match in first.pattern.finditer(_get(session, first.path)):
        found = {k: v for k, v in match.groupdict().items() if v is not None}
        if found and found not in objects:
            objects.append(found)
        if len(objects) == scenario.count:
            break
    if not objects:
        raise DiscoveryError(
            f"finding objects: {first.pattern.pattern!r} matches nothing on {first.path}"
        )
    for step in rest:
        session = sessions[step.user] if step.user else anonymous
        for variables in objects:
            path = render(step.path, variables)
            step_match = step.pattern.search(_get(session, path))
            if step_match is None:
                raise DiscoveryError(
                    f"finding objects: {step.pattern.pattern!r} matches nothing on {path}"
                )
            variables.update({k: v for k, v in step_match.groupdict().items() if v is not None})
    missing = [v for v in scenario.variables if any(v not in o for o in objects)]
    if missing:
        raise DiscoveryError(f"finding objects: no value found for {{{missing[0]}}}")
    return objects
