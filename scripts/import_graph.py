#!/usr/bin/env python3
"""Import graph of lasthop's crates, for ARCHITECTURE.md, and a check on it.

Prints, per crate, which files each file imports (`use crate::...`,
`super::...`, and paths written inline), then checks two rules:

- no crate depends on one above it (Cargo refuses loops; this also checks
  the order ARCHITECTURE.md states);
- no import loop between files of a crate. A folder's `mod.rs` (or `lib.rs`)
  owns its children: it declares them and may hold the state they share, so
  a child may import its own parent; every other loop is reported.

Exits 1 when a rule is broken. Usage: scripts/import_graph.py [--quiet]
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Lowest first: a crate may depend only on crates before it.
ORDER = ["vocab", "telemetry", "broker", "collector", "analyzer", "ui", "samples", "lasthop"]
PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
GROUP = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^}]*)\}")


def module_of(src: Path, file: Path) -> tuple:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return tuple(parts)


def code(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)


def file_graph(src: Path):
    files = {}
    for f in sorted(src.rglob("*.rs")):
        if f.name.endswith("_tests.rs"):
            continue  # a test module reads its parent's internals by design
        files[module_of(src, f)] = f
    edges = {m: set() for m in files}
    for mod, f in files.items():
        own = mod if f.stem in ("mod", "lib", "main") else mod[:-1]
        text = code(f.read_text())
        text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", text, flags=re.S)
        paths = []
        for base, prefix, inner in GROUP.findall(text):
            for item in inner.split(","):
                item = item.strip().split(" as ")[0].strip()
                if item and item != "self":
                    paths.append((base, prefix + "::" + item.split("::")[0]))
                elif item == "self":
                    paths.append((base, prefix))
        paths += PATH.findall(text)
        for base, rest in paths:
            names = [p for p in rest.split("::") if p]
            target = () if base == "crate" else own
            while names and names[0] == "super":
                target, names = target[:-1], names[1:]
            path = target + tuple(names)
            while path and path not in files:
                path = path[:-1]
            if path != mod and path in files:
                edges[mod].add(path)
    return files, edges


def loops(edges):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def name(mod):
    return "/".join(mod) or "lib"


def main():
    quiet = "--quiet" in sys.argv
    broken = []
    for crate in ORDER:
        toml = (ROOT / "crates" / crate / "Cargo.toml").read_text()
        deps = toml.split("[dependencies]")[1].split("\n[")[0]
        uses = [c for c in ORDER if re.search(rf"^lasthop-{c}\b", deps, re.M)]
        above = [c for c in uses if ORDER.index(c) > ORDER.index(crate)]
        if above:
            broken.append(f"crate {crate} depends on {', '.join(above)}, above it")
        src = ROOT / "crates" / crate / "src"
        files, edges = file_graph(src)
        # A parent (mod.rs / lib.rs) owns its children: a child may import it.
        kept = {m: {t for t in ts if not (len(t) < len(m) and m[: len(t)] == t)} for m, ts in edges.items()}
        if not quiet:
            print(f"{crate}  (uses: {', '.join(uses) or 'no other lasthop crate'})")
            for mod in sorted(files):
                if edges[mod]:
                    print(f"  {name(mod):<24} -> {', '.join(sorted(name(t) for t in edges[mod]))}")
        for comp in loops(kept):
            broken.append(f"crate {crate}: import loop between {', '.join(sorted(name(m) for m in comp))}")
    for b in broken:
        print(f"error: {b}")
    if not broken and not quiet:
        print("no crate depends on one above it; no import loop between files of a crate")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
