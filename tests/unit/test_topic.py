"""TopicTrie (warrenmq/broker/topic.py): topic matching exactly as RabbitMQ does it.

The table below was recorded from RabbitMQ 3.10.8 (a topic exchange, one queue per binding
key, every routing key published once).  RabbitMQ splits keys at every "." (so "a." is the
words "a" and "", and "" has no words); "*" matches exactly one word, empty or not; "#"
matches zero or more words.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warrenmq.broker.topic import TopicTrie, split_words

KEYS = ["", "a", "b", "c", "a.b", "a.b.c", "a.c", "a..c", "a..b", ".", "a.", ".a", "..",
        "a.b.b.c", "x.a.b", "a.x.y.c", "b.a", "a.b.a.b"]  # fmt: skip
NON_EMPTY = [k for k in KEYS if k]

# binding key -> the routing keys of KEYS that RabbitMQ 3.10.8 routed to it
RABBITMQ: dict[str, list[str]] = {
    "": [""],
    "#": KEYS,
    "#.#": KEYS,
    "*": ["a", "b", "c"],
    "a": ["a"],
    "a.b": ["a.b"],
    "a.*": ["a.b", "a.c", "a."],
    "a.#": ["a", "a.b", "a.b.c", "a.c", "a..c", "a..b", "a.", "a.b.b.c", "a.x.y.c", "a.b.a.b"],
    "#.b": ["b", "a.b", "a..b", "x.a.b", "a.b.a.b"],
    "*.b": ["a.b"],
    "a.*.c": ["a.b.c", "a..c"],
    "a.#.c": ["a.b.c", "a.c", "a..c", "a.b.b.c", "a.x.y.c"],
    "a.#.#.c": ["a.b.c", "a.c", "a..c", "a.b.b.c", "a.x.y.c"],
    "*.*": ["a.b", "a.c", ".", "a.", ".a", "b.a"],
    "*.*.*": ["a.b.c", "a..c", "a..b", "..", "x.a.b"],
    "a..b": ["a..b"],
    ".": ["."],
    "a.": ["a."],
    ".a": [".a"],
    "*.": [".", "a."],
    "#.": [".", "a.", ".."],
    "#.*": NON_EMPTY,
    "*.#": NON_EMPTY,
    "#.a.#": ["a", "a.b", "a.b.c", "a.c", "a..c", "a..b", "a.", ".a", "a.b.b.c", "x.a.b", "a.x.y.c", "b.a", "a.b.a.b"],
    "a.*.#": ["a.b", "a.b.c", "a.c", "a..c", "a..b", "a.", "a.b.b.c", "a.x.y.c", "a.b.a.b"],
    "#.c": ["c", "a.b.c", "a.c", "a..c", "a.b.b.c", "a.x.y.c"],
    "a.b.#": ["a.b", "a.b.c", "a.b.b.c", "a.b.a.b"],
    "a.#.b": ["a.b", "a..b", "a.b.a.b"],
    "b.#": ["b", "b.a"],
}

CASES = [(pattern, key, key in matched) for pattern, matched in RABBITMQ.items() for key in KEYS]


def reference_match(pattern: str, key: str) -> bool:
    """RabbitMQ's semantics, written as plainly as possible (exponential, for tests only)."""
    p, k = split_words(pattern), split_words(key)

    def match(i: int, j: int) -> bool:
        if i == len(p):
            return j == len(k)
        if p[i] == "#":
            return any(match(i + 1, jj) for jj in range(j, len(k) + 1))
        return j < len(k) and p[i] in ("*", k[j]) and match(i + 1, j + 1)

    return match(0, 0)


def test_split_words() -> None:
    assert split_words("") == []
    assert split_words("a") == ["a"]
    assert split_words("a.") == ["a", ""]
    assert split_words(".") == ["", ""]
    assert split_words("a..b") == ["a", "", "b"]


@pytest.mark.parametrize("pattern, key, expected", CASES, ids=[f"{p!r}~{k!r}" for p, k, _ in CASES])
def test_single_binding_matches_like_rabbitmq(pattern: str, key: str, expected: bool) -> None:
    trie: TopicTrie[str] = TopicTrie()
    trie.add(pattern, "q")
    assert trie.match(key) == (["q"] if expected else [])


def test_reference_matcher_agrees_with_rabbitmq() -> None:
    """The property tests below compare against reference_match; it must itself be right."""
    assert [(p, k) for p, k, expected in CASES if reference_match(p, k) != expected] == []


def test_all_bindings_in_one_trie() -> None:
    trie: TopicTrie[str] = TopicTrie()
    for pattern in RABBITMQ:
        trie.add(pattern, pattern)
    for key in KEYS:
        expected = {pattern for pattern, matched in RABBITMQ.items() if key in matched}
        got = trie.match(key)
        assert len(got) == len(set(got)), got
        assert set(got) == expected, key


def test_a_value_matched_several_ways_is_returned_once() -> None:
    """A queue bound with several patterns that match the same key gets the message once."""
    trie: TopicTrie[str] = TopicTrie()
    for pattern in ("#", "a.#", "*.b", "a.b", "#.#.#"):
        trie.add(pattern, "q")
    trie.add("a.*", "other")
    assert sorted(trie.match("a.b")) == ["other", "q"]
    assert trie.match("x.y.z") == ["q"]


def test_remove() -> None:
    trie: TopicTrie[str] = TopicTrie()
    trie.add("a.*", "q1")
    trie.add("a.*", "q2")
    trie.add("a.b.#", "q1")
    assert sorted(trie.match("a.b")) == ["q1", "q2"]
    assert trie.remove("a.*", "q1") is True
    assert sorted(trie.match("a.b")) == ["q1", "q2"]  # still bound by a.b.#
    assert trie.remove("a.b.#", "q1") is True
    assert trie.match("a.b") == ["q2"]
    assert trie.remove("a.b.#", "q1") is False  # not bound any more
    assert trie.remove("x.y", "q2") is False  # never bound
    assert trie.remove("a.*", "q2") is True
    assert trie.match("a.b") == []


def test_cache_sees_changes() -> None:
    """Results are cached per routing key; adding or removing a binding must show at once."""
    trie: TopicTrie[str] = TopicTrie()
    assert trie.match("a.b") == []
    trie.add("a.*", "q")
    assert trie.match("a.b") == ["q"]
    trie.remove("a.*", "q")
    assert trie.match("a.b") == []


def test_many_hashes_stay_fast() -> None:
    """Patterns of many '#' against long keys must not explode combinatorially."""
    trie: TopicTrie[str] = TopicTrie()
    trie.add(".".join(["#"] * 12) + ".z", "q")
    key = ".".join(["w"] * 40)
    started = time.monotonic()
    assert trie.match(key) == []
    assert trie.match(key + ".z") == ["q"]
    assert time.monotonic() - started < 1.0


WORDS = st.sampled_from(["a", "b", ""])
PATTERN_WORDS = st.sampled_from(["a", "b", "", "*", "#"])


@settings(max_examples=300, deadline=None)
@given(
    patterns=st.lists(st.lists(PATTERN_WORDS, max_size=5).map(".".join), max_size=6),
    key=st.lists(WORDS, max_size=6).map(".".join),
)
def test_trie_agrees_with_reference(patterns: list[str], key: str) -> None:
    trie: TopicTrie[int] = TopicTrie()
    for i, pattern in enumerate(patterns):
        trie.add(pattern, i)
    expected = {i for i, pattern in enumerate(patterns) if reference_match(pattern, key)}
    got = trie.match(key)
    assert len(got) == len(set(got))
    assert set(got) == expected


@settings(max_examples=200, deadline=None)
@given(
    patterns=st.lists(st.lists(PATTERN_WORDS, max_size=4).map(".".join), min_size=1, max_size=6),
    data=st.data(),
)
def test_removing_leaves_the_rest(patterns: list[str], data: st.DataObject) -> None:
    trie: TopicTrie[int] = TopicTrie()
    for i, pattern in enumerate(patterns):
        trie.add(pattern, i)
    removed = data.draw(st.sets(st.integers(0, len(patterns) - 1)))
    for i in removed:
        assert trie.remove(patterns[i], i)
    key = data.draw(st.lists(WORDS, max_size=5).map(".".join))
    expected = {i for i, pattern in enumerate(patterns) if i not in removed and reference_match(pattern, key)}
    assert set(trie.match(key)) == expected
