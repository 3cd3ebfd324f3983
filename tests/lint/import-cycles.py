#!/usr/bin/env python3
"""Fails when modules of a crate import each other in a circle.

At each level of a crate's module tree the nodes are sibling modules (a file `x.rs`, a folder
`x/` or an inline `mod x { }`). Module A depends on its sibling B when code inside A names B
through a `crate::` or `super::` path (in a `use` or inline). A child naming items of its own
parent does not count, nor does a parent declaring or re-exporting its children. Every group of
siblings that depend on each other in a circle is printed with the line behind each link; the
exit status is 1 when there is one.

Usage: python3 tests/lint/import-cycles.py [repository root]
"""

import re
import sys
from pathlib import Path

CRATES = ["shared", "agent", "kubectl-jobflow", "tests", "bench"]
# Comments (doc comments included: an intra-doc link is not an import) and literals.
NOISE = re.compile(r'//[^\n]*|/\*.*?\*/|r#*"(?:.|\n)*?"#*|"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])\'',
                   re.S)
TOKEN = re.compile(r"\buse\s+([^;]*);|(?<![\w$])((?:crate|super)(?:\s*::\s*\w+)+)"
                   r"|\bmod\s+(\w+)\s*\{|([{}])")


def blank(match):
    """Keeps a removed comment's or literal's newlines, so line numbers stay right."""
    return re.sub(r"[^\n]", " ", match.group(0))


def module_of(src, path):
    """The module path of a source file: src/a/b.rs and src/a/b/mod.rs are ("a", "b")."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return tuple(parts)


def expand(tree):
    """The paths of a use tree: `a::{b, c::{d as e, *}}` gives a::b, a::c::d, a::c."""
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+\w+", "", tree))
    depth, start, parts = 0, 0, []
    for i, char in enumerate(tree):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(tree[start:i])
            start = i + 1
    parts.append(tree[start:])
    paths = []
    for part in filter(None, parts):
        head, brace, rest = part.partition("{")
        head = head.rstrip(":").split("::") if head.rstrip(":") else []
        if brace:
            paths += [head + sub for sub in expand(rest[:-1])] or [head]
        else:
            paths.append([s for s in head if s not in ("*", "self")])
    return paths


def absolute(module, path):
    """`path` (a list of segments) from crate root, or None when it is not crate:: or super::."""
    if path[:1] == ["crate"]:
        return tuple(path[1:])
    if path[:1] != ["super"]:
        return None
    base = list(module)
    while path[:1] == ["super"] and base:
        base.pop()
        path = path[1:]
    return tuple(base + path)


def references(text, file_module):
    """(module, target path, line) for every crate:: or super:: path in a file's code."""
    text = NOISE.sub(blank, text)
    inline, depth = [], 0  # inline modules open around the scan position: (name, depth)
    for match in TOKEN.finditer(text):
        use, path, mod, brace = match.groups()
        if mod:
            inline.append((mod, depth))
            depth += 1
        elif brace == "{":
            depth += 1
        elif brace == "}":
            depth -= 1
            if inline and inline[-1][1] == depth:
                inline.pop()
        else:
            module = file_module + tuple(name for name, _ in inline)
            line = text.count("\n", 0, match.start()) + 1
            for segments in expand(use) if use else [re.sub(r"\s", "", path).split("::")]:
                target = absolute(module, segments)
                if target is not None:
                    yield module, target, line


def scan(crate):
    """The module tree and sibling dependencies of one crate: ({module}, {(a, b): witness})."""
    src = crate / "src"
    modules, found = {()}, []
    for path in sorted(src.rglob("*.rs")):
        file_module = module_of(src, path)
        for i in range(1, len(file_module) + 1):
            modules.add(file_module[:i])
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"\bmod\s+(\w+)\s*\{", NOISE.sub(blank, text)):
            modules.add(file_module + (match.group(1),))  # nesting is approximate here
        for module, target, line in references(text, file_module):
            found.append((module, target, f"{path}:{line}"))
    edges = {}
    for module, target, where in found:
        common = 0
        while common < min(len(module), len(target)) and module[common] == target[common]:
            common += 1
        if common == len(module) or common == len(target):
            continue  # a module naming an ancestor's items or its own descendants
        a, b = module[: common + 1], target[: common + 1]
        if b in modules:
            edges.setdefault((a, b), where)
    return edges


def cycles(edges):
    """Strongly connected groups of more than one module (Tarjan), each with a closed chain."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, [])):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [(sorted(group), chain(min(group), group, graph)) for group in groups]


def chain(start, group, graph):
    """The shortest way from `start` back to itself inside `group` (breadth first)."""
    came_from, queue = {}, [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph.get(node, [])):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return path[::-1] + [start]
            if nxt in group and nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    return [start]


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    failed = False
    for name in CRATES:
        if not (root / name / "src").is_dir():
            continue
        edges = scan(root / name)
        for group, path in cycles(edges):
            failed = True
            print(f"{name}: modules {', '.join('::'.join(m) for m in group)} import each other;"
                  f" one circle: {' -> '.join('::'.join(m) for m in path)}")
            for a, b in zip(path, path[1:]):
                print(f"  {'::'.join(a)} -> {'::'.join(b)}: {edges[(a, b)]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
