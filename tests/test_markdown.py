"""The plain-text excerpt of a Markdown body (eleva.core.markdown), as note lists show it."""

from __future__ import annotations

import time

import pytest

from eleva.core.markdown import ELLIPSIS, EXCERPT_LENGTH, excerpt, plain_text


@pytest.mark.parametrize(
    ("markdown", "text"),
    [
        ("# Eigenvalues", "Eigenvalues"),
        ("### Closed heading ###\nbody", "Closed heading body"),
        ("Title\n=====\n\nSub\n---\ntext", "Title Sub text"),
        ("#hashtag is not a heading", "#hashtag is not a heading"),
        ("**bold**, *it*, __strong__, _em_ and ~~struck~~", "bold, it, strong, em and struck"),
        ("snake_case_name and 2*3*4", "snake_case_name and 234"),
        ('[the docs](https://example.com/a_b "Title") here', "the docs here"),
        ("see [ref link][1]\n\n[1]: https://example.com", "see ref link"),
        ("before ![a chart](chart.png) after", "before after"),
        ("<https://example.com/x> is a link", "https://example.com/x is a link"),
        ("```python\nprint('hi')\n```\nafter", "print('hi') after"),
        ("~~~\ncode\n~~~", "code"),
        ("use `git status` now", "use git status now"),
        ("- one\n* two\n+ three\n1. four\n2) five", "one two three four five"),
        ("- [ ] todo\n- [x] done", "todo done"),
        ("> quoted\n> > deeper\n>plain", "quoted deeper plain"),
        ("| a | b |\n|---|:-:|\n| 1 | 2 |", "a b 1 2"),
        ("above\n\n***\n\nbelow", "above below"),
        ('<div class="x">in <b>html</b></div>', "in html"),
        ("visible <!-- hidden\nacross lines --> shown", "visible shown"),
        ("Tom &amp; Jerry &lt;3", "Tom & Jerry <3"),
        ("3 < 4 and 5 > 2", "3 < 4 and 5 > 2"),
        (r"\*not emphasis\* and \# not a heading", "*not emphasis* and # not a heading"),
        ("  lots \n\n\n of   \t space  ", "lots of space"),
        ("", ""),
        ("日本語の**ノート**", "日本語のノート"),
        ("🧬 *gènes* 🧪", "🧬 gènes 🧪"),
    ],
)
def test_markup_is_removed(markdown, text):
    assert plain_text(markdown) == text


def test_a_short_body_is_its_whole_plain_text():
    assert excerpt("# Short\n\nA *note*.") == "Short A note."


def test_a_long_body_is_cut_at_a_word_with_an_ellipsis():
    body = "## Heading\n\n" + " ".join(f"word{i}" for i in range(100))
    result = excerpt(body)
    assert len(result) <= EXCERPT_LENGTH and result.endswith(ELLIPSIS)
    assert result.startswith("Heading word0 word1")
    cut = result.removesuffix(ELLIPSIS)
    assert cut.split(" ")[-1] in {f"word{i}" for i in range(100)}  # no half word
    assert plain_text(body).startswith(cut)


def test_text_without_spaces_is_cut_where_it_stands():
    result = excerpt("漢" * 500)
    assert result == "漢" * (EXCERPT_LENGTH - 1) + ELLIPSIS


def test_exactly_200_characters_are_not_cut():
    assert excerpt("a" * EXCERPT_LENGTH) == "a" * EXCERPT_LENGTH
    assert excerpt("a" * (EXCERPT_LENGTH + 1)) == "a" * (EXCERPT_LENGTH - 1) + ELLIPSIS


@pytest.mark.parametrize(
    "hostile",
    [
        "[" * 100_000,
        "![" * 50_000,
        "[a](" * 25_000,
        '<a "' * 25_000,
        "<!--" * 25_000,
        " " * 99_999 + "#",
        "*_" * 50_000,
        "| -" * 33_000,
        "\n" * 100_000,
    ],
)
def test_a_hostile_body_of_100000_characters_is_stripped_in_linear_time(hostile):
    # Quadratic patterns took minutes on these (the first one: 6 minutes); linear ones
    # take well under a second even on a loaded machine.
    started = time.perf_counter()
    result = excerpt(hostile)
    assert time.perf_counter() - started < 2
    assert len(result) <= EXCERPT_LENGTH


@pytest.mark.parametrize(
    "markdown",
    [
        "&lt;img src=x onerror=alert(1)&gt;",
        "&#60;script&#62;alert(1)&#60;/script&#62;",
        "\\<img src=x onerror=alert(1)>",
        "&lt;!-- x --&gt; &lt;svg/onload=alert(1)&gt;",
        "&lt;&lt;b&gt;b&gt;",
    ],
)
def test_escaped_markup_never_comes_back_as_a_tag(markdown):
    """Plain text, by contract: what would read as a tag once unescaped is removed too."""
    import re

    assert not re.search(r"<[A-Za-z/!?]", plain_text(markdown)), plain_text(markdown)
