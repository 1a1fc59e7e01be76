"""The ``{% cached %}`` tag for Jinja2 templates, with the semantics of the Django one.

::

    # TEMPLATES = [{"BACKEND": "django.template.backends.jinja2.Jinja2",
    #               "OPTIONS": {"extensions": ["strata.fragments.jinja2.FragmentCacheExtension"]}}]

    {% cached article %}<h1>{{ article.title }}</h1>{% endcached %}
    {% cached article, page, timeout=60 %}...{% endcached %}

Arguments are vary values (any expression, separated by commas) and an optional
``timeout=<seconds>``. The key is the template's name, the tag's line, the block's
source, the vary values and the active Django language; the dependencies are recorded
while the block renders (:mod:`strata.fragments.cache`). An undefined vary value counts
as ``None``. Synchronous environments only: the block's body is rendered by calling it.
"""

from __future__ import annotations

from collections.abc import Callable

from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.runtime import Undefined

from .cache import Fragment, render_cached, source_digest

__all__ = ["FragmentCacheExtension"]


class FragmentCacheExtension(Extension):
    """Adds ``{% cached [vary, ...] [timeout=N] %}...{% endcached %}``."""

    tags = {"cached"}

    def parse(self, parser: Parser) -> nodes.Node:
        """Compile the tag into a call of :meth:`_render` with the body as ``caller``."""
        lineno = next(parser.stream).lineno
        vary: list[nodes.Expr] = []
        timeout: nodes.Expr | None = None
        while parser.stream.current.type != "block_end":
            if vary or timeout is not None:
                parser.stream.expect("comma")
            if parser.stream.current.test("name:timeout") and parser.stream.look().test("assign"):
                if timeout is not None:
                    parser.fail("'cached' tag got timeout= twice", lineno)
                next(parser.stream)
                next(parser.stream)
                timeout = parser.parse_expression()
            else:
                vary.append(parser.parse_expression())
        body = parser.parse_statements(("name:endcached",), drop_needle=True)

        # Node reprs spell out every field (names, constants, template text) and no line
        # numbers: a hash of them changes exactly when the block's source does.
        digest = source_digest(repr(vary), repr(timeout), repr(body))
        origin = parser.name or parser.filename or "<string>"
        args: list[nodes.Expr] = [
            nodes.Const(origin),
            nodes.Const(lineno),
            nodes.Const(digest),
            nodes.List(vary),
            timeout if timeout is not None else nodes.Const(None),
        ]
        call = self.call_method("_render", args, lineno=lineno)
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _render(
        self,
        origin: str,
        line: int,
        digest: str,
        vary: list,
        timeout: object,
        caller: Callable[[], str],
    ) -> str:
        fragment = Fragment(origin=origin, line=line, digest=digest)
        values = [None if isinstance(value, Undefined) else value for value in vary]
        seconds = None
        if timeout is not None and not isinstance(timeout, Undefined):
            try:
                # The template's expression may give anything: int() judges it, and its
                # TypeError becomes the error below.
                seconds = int(timeout)  # type: ignore[call-overload]
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"'cached' tag got a non-integer timeout value: {timeout!r}"
                ) from exc
        return render_cached(fragment, values, lambda: str(caller()), seconds)
