"""Forms as a browser posts them, and the purge-fail drill's VCL (compiled by varnishd)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from strata.check.vcl import REFUSAL, refuse_purges
from strata.httpclient import find_form
from tests.helpers import make_run_dir, remove_run_dir

PAGE = """
<form class="login" method="post" action="/accounts/login/">
  <input type="hidden" name="csrfmiddlewaretoken" value="t0k">
  <input type="text" name="username"><input type="password" name="password">
  <button type="submit" name="go">Log in</button>
</form>
<form class="comment-form other" method="post" action="/articles/a/">
  <input type="hidden" name="csrfmiddlewaretoken" value="t1k">
  <textarea name="body">
first line</textarea>
</form>
<form id="article_form" method="post" novalidate>
  <input name="title" value="Old &amp; new">
  <select name="tags" multiple><option value="1" selected>a</option><option value="2">b</option>
  <option value="3" selected>c</option></select>
  <input type="checkbox" name="flag"><input type="checkbox" name="on" checked>
  <input type="submit" name="_save" value="Save">
</form>
"""


def test_forms_are_chosen_by_id_class_or_password_field():
    login = find_form(PAGE, "/accounts/login/", None)
    assert login.action == "/accounts/login/" and login.has_password
    assert ("username", "") in login.fields and ("go", "Log in") not in login.fields
    comment = find_form(PAGE, "/articles/a/", ".comment-form")
    assert comment.fields == [("csrfmiddlewaretoken", "t1k"), ("body", "first line")]
    assert find_form(PAGE, "/x/", "form").action == "/accounts/login/"
    assert find_form(PAGE, "/x/", "#missing") is None


def test_a_form_without_action_posts_to_its_page_with_what_a_browser_sends():
    form = find_form(PAGE, "/admin/article/5/change/?q=1", "#article_form")
    assert form.action == "/admin/article/5/change/?q=1"
    assert form.fields == [("title", "Old & new"), ("tags", "1"), ("tags", "3"), ("on", "on")]
    posted = form.submit({"title": "New"}, {"_save": "Save"})
    assert posted == [
        ("tags", "1"),
        ("tags", "3"),
        ("on", "on"),
        ("title", "New"),
        ("_save", "Save"),
    ]


VCL = """vcl 4.1;

backend default { .host = "127.0.0.1"; .port = "9"; }

sub vcl_recv {
    if (req.method == "PURGE") {
        return (synth(200, "Purged"));
    }
    return (hash);
}
"""


def test_the_purge_refusal_comes_first_in_vcl_recv():
    changed = refuse_purges(VCL)
    recv = changed.index("sub vcl_recv {")
    assert changed.index(REFUSAL) > recv
    assert changed.index(REFUSAL) < changed.index('return (synth(200, "Purged"))')
    without = refuse_purges(
        VCL.replace("sub vcl_recv", "sub vcl_deliver").replace("return (hash);", "")
    )
    assert without.index(REFUSAL) < without.index("sub vcl_deliver")
    with pytest.raises(ValueError):
        refuse_purges("backend x {}")


@pytest.mark.skipif(not shutil.which("varnishd"), reason="varnishd is not installed")
def test_the_changed_vcl_compiles():
    # varnishd -C reads the file as its own user: pytest's 0700 directories are closed to it.
    scratch = make_run_dir()
    try:
        _compile_both(scratch)
    finally:
        remove_run_dir(scratch)


def _compile_both(tmp_path):
    for source in (
        VCL,
        VCL.replace("sub vcl_recv", "sub vcl_deliver").replace("return (hash);", ""),
    ):
        path = tmp_path / "fail.vcl"
        path.write_text(refuse_purges(source))
        result = subprocess.run(
            ["varnishd", "-C", "-n", str(tmp_path / "n"), "-f", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr[-2000:]
