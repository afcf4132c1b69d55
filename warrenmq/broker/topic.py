"""Topic matching as RabbitMQ does it: a trie of binding-key words with ``*`` and ``#``.

Words are separated by ``.``; an empty key has no words, ``"a."`` has two (``a`` and the
empty word).  ``*`` matches exactly one word, ``#`` zero or more.  A match walks the trie
once per routing key (no scan of the bindings), and results are cached per routing key until
the bindings change.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")

_CACHE_LIMIT = 4096


def split_words(key: str) -> list[str]:
    return key.split(".") if key else []


class _Node(Generic[T]):
    __slots__ = ("children", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.values: list[T] = []


class TopicTrie(Generic[T]):
    """Maps binding patterns to values; ``match(key)`` gives each matching value once."""

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._cache: dict[str, list[T]] = {}

    def add(self, pattern: str, value: T) -> None:
        node = self._root
        for word in split_words(pattern):
            child = node.children.get(word)
            if child is None:
                child = node.children[word] = _Node()
            node = child
        node.values.append(value)
        self._cache.clear()

    def remove(self, pattern: str, value: T) -> bool:
        path: list[tuple[_Node[T], str]] = []
        node = self._root
        for word in split_words(pattern):
            child = node.children.get(word)
            if child is None:
                return False
            path.append((node, word))
            node = child
        try:
            node.values.remove(value)
        except ValueError:
            return False
        # Prune empty branches so that the trie does not grow with churn.
        while path and not node.values and not node.children:
            parent, word = path.pop()
            del parent.children[word]
            node = parent
        self._cache.clear()
        return True

    def match(self, key: str) -> list[T]:
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        found: list[T] = []
        seen: set[int] = set()
        self._walk(self._root, split_words(key), 0, found, seen, set())
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = found
        return found

    def _walk(
        self, node: _Node[T], words: list[str], i: int, found: list[T], seen: set[int], visited: set[tuple[int, int]]
    ) -> None:
        # Several '#' can reach the same (node, position) by different splits; visit it once
        # so that patterns like "#.#.#" stay linear-ish instead of exponential.
        state = (id(node), i)
        if state in visited:
            return
        visited.add(state)
        children = node.children
        if i == len(words):
            self._collect(node, found, seen)
            # A trailing '#' matches zero words.
            hash_node = children.get("#")
            if hash_node is not None:
                self._walk(hash_node, words, i, found, seen, visited)
            return
        exact = children.get(words[i])
        if exact is not None:
            self._walk(exact, words, i + 1, found, seen, visited)
        star = children.get("*")
        if star is not None:
            self._walk(star, words, i + 1, found, seen, visited)
        hash_node = children.get("#")
        if hash_node is not None:
            # '#' swallows zero or more words: try every split point.
            for j in range(i, len(words) + 1):
                self._walk(hash_node, words, j, found, seen, visited)

    @staticmethod
    def _collect(node: _Node[T], found: list[T], seen: set[int]) -> None:
        for value in node.values:
            ident = id(value)
            if ident not in seen:
                seen.add(ident)
                found.append(value)
