"""Reading Strata's answer back from its headers: pure functions, no request needed."""

from __future__ import annotations

from strata.debug.answer import accelerator_verdict, cache_directives, what_answered


def test_a_bypass_word_gives_its_reason_in_the_summary():
    answer = what_answered("bypass: session read in app.views.cart", True, True)

    assert answer["word"] == "bypass"
    assert answer["reason"] == "session read in app.views.cart"
    assert answer["summary"].endswith("stored in no cache: session read in app.views.cart.")


def test_a_reason_with_a_colon_is_kept_whole():
    answer = what_answered("bypass: Cache-Control: private", True, True)

    assert answer["reason"] == "Cache-Control: private"


def test_a_hit_says_the_view_did_not_run():
    assert "the view did not run" in what_answered("page-hit", True, True)["summary"]


def test_no_word_with_the_toolbar_inside_strata_says_to_move_the_toolbar():
    summary = what_answered(None, True, toolbar_first=False)["summary"]

    assert "Put DebugToolbarMiddleware before StrataMiddleware" in summary


def test_no_word_with_the_page_cache_off_says_so():
    assert "the page cache is off" in what_answered(None, False, True)["summary"]


def test_a_shared_lifetime_may_be_stored_with_its_tags():
    verdict = accelerator_verdict(
        {
            "Cache-Control": "public, max-age=0, s-maxage=300, stale-while-revalidate=60",
            "xkey": "newsroom_article.id=5 newsroom_article",
            "Surrogate-Control": 'content="ESI/1.0"',
        }
    )

    assert verdict["may_store"] is True
    assert verdict["why"].startswith("shared for 300 s")
    assert verdict["stale_while_revalidate"] == "60"
    assert verdict["esi"] is True
    assert verdict["tags"] == ["newsroom_article", "newsroom_article.id=5"]


def test_private_no_store_and_no_cache_keep_it_out_of_shared_caches():
    for value in ("private", "no-store", "no-cache, max-age=0", "private, s-maxage=60"):
        verdict = accelerator_verdict({"Cache-Control": value})
        assert verdict["may_store"] is False, value
        assert verdict["why"].startswith("Cache-Control: "), value


def test_a_browser_only_lifetime_is_no_shared_lifetime():
    verdict = accelerator_verdict({"Cache-Control": "max-age=60"})

    assert verdict["may_store"] is False
    assert verdict["why"].startswith("no shared lifetime")


def test_surrogate_key_is_read_when_there_is_no_xkey():
    assert accelerator_verdict({"Surrogate-Key": "b a"})["tags"] == ["a", "b"]


def test_cache_control_directives_are_lower_cased_and_unquoted():
    assert cache_directives('Public, S-MaxAge="300", no-transform') == {
        "public": "",
        "s-maxage": "300",
        "no-transform": "",
    }
