#!/usr/bin/env python3
"""rzoo's layering check (after Chromium's checkdeps and LLVM's layering check).

Reads every `#include "..."` of the product's sources and fails, naming the file and line, when a
file includes a higher layer, another model family's files, or an unknown project path:

    core/  <  datasets/  <  models/  <  trainers/  <  apps/

- a file may include its own layer and the layers below it;
- under models/, a family folder (models/general/, models/sequential/, models/context/, ...) may
  include the top of models/ (the contract, the registry) and its own family, never another
  family; only the top of models/ (the registry) sees every family;
- a header (*.h) never includes <torch/torch.h> (it would cost every includer the whole of
  LibTorch's headers: see cmake/pch.h);
- tests/ and bench/ sit above apps/ and are not checked;
- CMakeLists.txt's RZOO_NO_TORCH_SOURCES (the .cpp files built without the precompiled
  LibTorch header) lists exactly the sources of the layers, tests/ and tests/fuzz/ that include
  no <torch/...>, <ATen/...> or <c10/...> header, directly or through the project's headers: a
  listed file that reaches LibTorch parses all of it itself, and an unlisted one loads the 640 MB
  header image for nothing (11-12 s per file).

Usage:
  scripts/check_layers.py [--root DIR]          check; exit 1 with one line per violation
  scripts/check_layers.py [--root DIR] --graph  print the folder-level include graph of the top
                                                folders (one edge per line, with the number of
                                                includes) and check it for cycles
  scripts/check_layers.py [--root DIR] --dot    the same graph in Graphviz's DOT language
"""
import argparse
import os
import re
import sys

LAYERS = ["core", "datasets", "models", "trainers", "apps"]
RANK = {name: i for i, name in enumerate(LAYERS)}
SOURCE_EXT = (".h", ".hpp", ".cpp", ".cc", ".def", ".inc")
# Headers generated into the build folder (cmake/*.in, cmake/git_id.cmake): part of the lowest layer.
GENERATED = {"rzoo_build.h": "core", "rzoo_git_id.h": "core", "test_paths.h": "tests"}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')


def unit(rel):
    """The folder a path belongs to: its layer, or models/<family> for a model family."""
    parts = rel.split("/")
    if parts[0] == "models" and len(parts) > 2:
        return "models/" + parts[1]
    return parts[0]


def layer(u):
    return u.split("/")[0]


def sources(root):
    for top in LAYERS:
        base = os.path.join(root, top)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for f in sorted(filenames):
                if f.endswith(SOURCE_EXT):
                    yield os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")


def includes(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if m:
                yield n, m.group(1), m.group(2)


def check(root):
    """Returns (violations, edges): violations as 'file:line: message', edges as
    {(from_folder, to_folder): count} between top folders over the project's own includes.
    (The graph is drawn between top folders: the top of models/ holds the registry, which sees
    every family while each family sees the contract beside it, by design.)"""
    bad, edges = [], {}
    for rel in sources(root):
        src = unit(rel)
        for n, kind, target in includes(root, rel):
            if kind == "<":
                if rel.endswith((".h", ".hpp")) and target == "torch/torch.h":
                    bad.append(f"{rel}:{n}: a header includes <torch/torch.h>; include the small LibTorch "
                               f"headers it needs (the .cpp files get the whole of it from cmake/pch.h)")
                continue
            if target in GENERATED:
                dst = GENERATED[target]
                if dst != "core":
                    bad.append(f"{rel}:{n}: includes \"{target}\", a header generated for {dst}/ only")
                continue
            if target.split("/")[0] not in RANK:
                bad.append(f"{rel}:{n}: includes \"{target}\", which is not a path from the repository root "
                           f"under {', '.join(d + '/' for d in LAYERS)}")
                continue
            if not os.path.isfile(os.path.join(root, target)):
                bad.append(f"{rel}:{n}: includes \"{target}\", which does not exist")
                continue
            dst = unit(target)
            ls, ld = layer(src), layer(dst)
            if ld != ls:
                edges[(ls, ld)] = edges.get((ls, ld), 0) + 1
            if RANK[ld] > RANK[ls]:
                bad.append(f"{rel}:{n}: {ls}/ includes \"{target}\" from {ld}/, a higher layer "
                           f"(layers, lowest first: {' < '.join(LAYERS)})")
            elif ls == ld == "models" and src != dst and src != "models" and dst != "models":
                bad.append(f"{rel}:{n}: model family {src}/ includes \"{target}\" from another family {dst}/ "
                           f"(share code through the top of models/ instead)")
    return bad, edges


TORCH_HEADER = re.compile(r"(torch|ATen|c10)/")


def reaches_torch(root, rel):
    """Whether the file includes a LibTorch header, directly or through the project's own headers
    (every file it reaches, each read once; include cycles are harmless)."""
    todo, seen = [rel], {rel}
    while todo:
        f = todo.pop()
        for _, kind, target in includes(root, f):
            if kind == "<":
                if TORCH_HEADER.match(target):
                    return True
                continue
            # From the repository root, else beside the file (tests/helpers.h).
            for cand in (target, os.path.normpath(os.path.join(os.path.dirname(f), target))):
                if os.path.isfile(os.path.join(root, cand)):
                    if cand not in seen:
                        seen.add(cand)
                        todo.append(cand)
                    break
    return False


def pch_list_check(root):
    """Violations of CMakeLists.txt's RZOO_NO_TORCH_SOURCES against the sources' includes (none
    when the tree has no such list)."""
    cmake = os.path.join(root, "CMakeLists.txt")
    if not os.path.isfile(cmake):
        return []
    with open(cmake, encoding="utf-8") as f:
        m = re.search(r"set\(RZOO_NO_TORCH_SOURCES\s([^)]*)\)", f.read())
    if not m:
        return []
    listed = set(m.group(1).split())
    files = [rel for rel in sources(root) if rel.endswith(".cpp")]
    for folder in ("tests", "tests/fuzz"):
        base = os.path.join(root, folder)
        if os.path.isdir(base):
            files += [f"{folder}/{f}" for f in sorted(os.listdir(base)) if f.endswith(".cpp")]
    bad = []
    for rel in files:
        torch = reaches_torch(root, rel)
        if torch and rel in listed:
            bad.append(f"CMakeLists.txt: RZOO_NO_TORCH_SOURCES lists {rel}, which includes LibTorch's headers "
                       f"(directly or through its includes): remove it from the list")
        elif not torch and rel not in listed:
            bad.append(f"CMakeLists.txt: {rel} includes no LibTorch header: add it to RZOO_NO_TORCH_SOURCES "
                       f"(it then compiles without the precompiled header)")
    for rel in sorted(listed - set(files)):
        bad.append(f"CMakeLists.txt: RZOO_NO_TORCH_SOURCES lists {rel}, which does not exist")
    return bad


def cycles(edges):
    """Every cycle of the folder graph, each as a list of folders (empty when acyclic)."""
    graph = {}
    for (a, b) in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    found, state, stack = [], {}, []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                found.append(stack[stack.index(w):] + [w])
            elif w not in state:
                visit(w)
        stack.pop()
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v)
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--graph", action="store_true", help="print the folder-level include graph")
    ap.add_argument("--dot", action="store_true", help="print the graph as Graphviz DOT")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    for top in ("core", "datasets", "models"):
        if not os.path.isdir(os.path.join(root, top)):
            print(f"check_layers: {root} has no {top}/ folder: not an rzoo source tree", file=sys.stderr)
            return 2
    bad, edges = check(root)
    bad += pch_list_check(root)
    found = cycles(edges)
    if args.dot:
        print("digraph rzoo {")
        for (a, b), n in sorted(edges.items()):
            print(f'  "{a}" -> "{b}" [label={n}];')
        print("}")
    elif args.graph:
        for (a, b), n in sorted(edges.items(), key=lambda e: (RANK[e[0][0]], RANK[e[0][1]])):
            print(f"{a} -> {b}  ({n} includes)")
        print(f"{len(edges)} edges between {len({u for e in edges for u in e})} folders; "
              f"cycles: {len(found) if found else 'none'}")
    for c in found:
        bad.append("include cycle between folders: " + " -> ".join(c))
    for line in bad:
        print(line, file=sys.stderr)
    if bad:
        print(f"check_layers: {len(bad)} violation(s)", file=sys.stderr)
        return 1
    if not (args.graph or args.dot):
        print(f"check_layers: ok ({sum(edges.values())} cross-folder includes, layers {' < '.join(LAYERS)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
