"""YAML with a budget: every YAML trainwell reads (configs, experiments, --set values) goes
through `load`, which refuses a document before building it when it is too large or when its
aliases would expand it past a limit.

yaml.safe_load shares the object behind an alias, so a nine-line "billion laughs" document loads
in microseconds, but anything that walks it afterwards (merging, formatting a message, naming a
variant) sees 10**9 values and hangs. The composed node graph is measured with each node counted
once per use, in time linear in the distinct nodes, and refused past MAX_EXPANDED_CHARS.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import ConfigError

MAX_FILE_BYTES = 1_000_000  # a config or an experiment is a few kilobytes
MAX_EXPANDED_CHARS = 1_000_000  # scalar characters (+1 per node) once every alias is expanded
MAX_DEPTH = 64  # nesting of mappings and lists; configs use three levels
# libyaml's parser where PyYAML was built with it (the wheels are): ~8× faster than the pure-Python one (a run's
# config.yaml 5 → 0.6 ms; a search reads one per configuration), the same documents and values
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def expanded_size(root: yaml.Node, where: str, limit: int = MAX_EXPANDED_CHARS) -> int:
    """Characters of the document with every alias expanded; ConfigError past `limit`, for an
    alias that contains itself, or for nesting deeper than MAX_DEPTH."""
    sizes: dict[int, int] = {}
    path: set[int] = set()  # nodes entered and not yet left: the ancestors of the current one
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            own = len(node.value) + 1 if isinstance(node, yaml.ScalarNode) else 2
            sizes[key] = own + sum(sizes[id(c)] for c in _children(node))
            path.discard(key)
            if sizes[key] > limit:
                raise ConfigError(
                    f"{where} expands to more than {limit:,} characters (through its aliases); a config is a "
                    f"few kilobytes"
                )
            continue
        if key in sizes:
            continue
        if key in path:
            raise ConfigError(f"{where} holds an alias that contains itself; aliases must refer to finished values")
        path.add(key)
        if len(path) > MAX_DEPTH:
            raise ConfigError(f"{where} is nested more than {MAX_DEPTH} levels deep")
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node))
    return sizes[id(root)]


def load(text: str, where: str) -> Any:
    """The document in `text`, like yaml.safe_load, within the budget above; `where` names the
    source in messages ("config file 'x.yaml'"). Syntax errors are raised as yaml.YAMLError."""
    if len(text) > MAX_FILE_BYTES:
        raise ConfigError(f"{where} is {len(text):,} characters long; the limit is {MAX_FILE_BYTES:,}")
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ConfigError(f"{where} is nested more than {MAX_DEPTH} levels deep") from None
        if node is None:
            return None
        expanded_size(node, where)
        return loader.construct_document(node)
    finally:
        loader.dispose()
