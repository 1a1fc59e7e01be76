"""The ``{% cached %}`` tag for Django templates.

::

    {% load strata %}
    {% cached article %}
      <h1>{{ article.title }}</h1> {% for c in article.comments.all %}...{% endfor %}
    {% endcached %}
    {% cached timeout=60 %}...{% endcached %}

Arguments are vary values (any template expression: ``article``, ``page_number``,
``"sidebar"``; one that does not resolve counts as ``None``) and an optional
``timeout=<seconds>``. There is no key name and no version number to maintain: the key
is the template, the tag's line, the block's source, the vary values and the active
language; the dependencies are recorded while the block renders
(:mod:`strata.fragments.cache`).

Vary on everything the block shows that can differ between two uses of the same
template and was not read from the database inside the page: the object of a detail
page, a page number, a query parameter. Two articles' pages sharing one entry because
``article`` was left out would show the first one's markup on both.

``{% load strata %}`` offers the tag (``strata.templatetags.strata`` registers
:func:`do_cached`); this module is also a library of its own (``register``), for an
engine that names it in ``libraries``.
"""

from __future__ import annotations

from django import template
from django.template.base import FilterExpression, NodeList, Parser, Token
from django.utils.safestring import SafeString, mark_safe

from .cache import Fragment, render_cached, source_digest

__all__ = ["CachedNode", "do_cached", "register"]

register = template.Library()

_TIMEOUT = "timeout="


class CachedNode(template.Node):
    """A ``{% cached %}`` block: renders through the fragment cache."""

    def __init__(
        self,
        nodelist: NodeList,
        vary: list[FilterExpression],
        timeout: FilterExpression | None,
        fragment: Fragment,
    ):
        self.nodelist = nodelist
        self.vary = vary
        self.timeout = timeout
        self.fragment = fragment

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.fragment.origin} line {self.fragment.line}>"

    def _timeout(self, context) -> int | None:
        if self.timeout is None:
            return None
        value = self.timeout.resolve(context)
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise template.TemplateSyntaxError(
                f'"cached" tag got a non-integer timeout value: {value!r}'
            ) from exc

    def render(self, context) -> SafeString:
        """Render the block, or return its markup from the cache."""
        vary = [expression.resolve(context, ignore_failures=True) for expression in self.vary]
        html = render_cached(
            self.fragment,
            vary,
            lambda: self.nodelist.render(context),
            self._timeout(context),
        )
        return mark_safe(html)


def _origin_name(parser: Parser) -> str:
    origin = getattr(parser, "origin", None)
    if origin is None:
        return "<unknown source>"
    # The loader name is the same on every machine; the path may not be.
    return str(origin.template_name or origin.name)


@register.tag("cached")
def do_cached(parser: Parser, token: Token) -> CachedNode:
    """Compile ``{% cached [vary ...] [timeout=N] %}...{% endcached %}``."""
    bits = token.split_contents()[1:]
    vary: list[FilterExpression] = []
    timeout: FilterExpression | None = None
    for bit in bits:
        if bit.startswith(_TIMEOUT):
            if timeout is not None:
                raise template.TemplateSyntaxError('"cached" tag got timeout= twice')
            if bit == _TIMEOUT:
                raise template.TemplateSyntaxError('"cached" tag got an empty timeout=')
            timeout = parser.compile_filter(bit[len(_TIMEOUT) :])
        else:
            vary.append(parser.compile_filter(bit))

    # The tokens the block consumes are its source: hash them, so that editing the
    # block gives it new keys. The parser pops tokens off the end of its list.
    before = list(parser.tokens) if isinstance(parser.tokens, list) else None
    nodelist = parser.parse(("endcached",))
    body = before[len(parser.tokens) :] if before is not None else []
    parser.delete_first_token()
    digest = source_digest(
        token.contents,
        *(f"{t.token_type.value}:{t.contents}" for t in reversed(body)),
    )
    # A lexer numbers every token; only a token made by hand has no line.
    fragment = Fragment(origin=_origin_name(parser), line=token.lineno or 0, digest=digest)
    return CachedNode(nodelist, vary, timeout, fragment)
