"""The package's layout: no import circles, anywhere in src/labflow.

A circle (a imports b, b imports a, even lazily inside a function) means neither module can be
understood, tested or moved alone, and a module-level one breaks on whichever side Python
imports first. The graph counts every import in a file, at module level or inside a function;
only ``if TYPE_CHECKING:`` blocks are left out, since they never run.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_files(src: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``src``, by dotted name (a package is its ``__init__``)."""
    modules = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(node: ast.AST):
    """Every Import/ImportFrom under ``node``, skipping the bodies of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _import_nodes(ast.Module(body=[other], type_ignores=[]))
        else:
            yield from _import_nodes(child)


def _base_of(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from X import ...`` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    anchor = module.split(".") if is_package else module.split(".")[:-1]
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of the graph that ``module`` imports: ``from pkg import name`` counts as
    ``pkg.name`` where that is a submodule, else as ``pkg`` (running ``pkg/__init__.py``)."""
    is_package = path.name == "__init__.py"
    targets = set()
    for node in _import_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        base = _base_of(node, module, is_package)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            targets.add(sub if sub in modules else base)
    return {t for t in targets if t in modules and t != module}


def import_graph(src: Path, package: str) -> dict[str, set[str]]:
    modules = module_files(src, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def describe(found: list[list[str]], graph: dict[str, set[str]]) -> str:
    lines = [f"{len(found)} import circle(s) in src/labflow:"]
    for component in found:
        members = set(component)
        edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]
        lines.append(f"- {', '.join(component)} ({'; '.join(edges)})")
    lines.append("Fix: move what these modules share into a lower module that imports none of them, "
                 "so imports go one way (as labflow.data.raw sits under labflow.data.datasets).")
    return "\n".join(lines)


def test_no_import_circles():
    graph = import_graph(SRC, "labflow")
    assert len(graph) > 20, f"found only {len(graph)} modules under {SRC / 'labflow'}"
    found = circles(graph)
    assert not found, describe(found, graph)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_detector_finds_lazy_package_and_relative_circles(tmp_path):
    """A synthetic package: a lazy circle, a package/submodule circle and a relative one are all
    found; TYPE_CHECKING imports and one-way imports are not circles."""
    _write(tmp_path / "pkg" / "__init__.py", "from pkg.sub import helper\nVALUE = 1\n")
    _write(tmp_path / "pkg" / "sub.py", "def helper():\n    from pkg import VALUE\n    return VALUE\n")
    _write(tmp_path / "pkg" / "a.py", "import pkg.low\n\ndef f():\n    from pkg.b import g\n    return g()\n")
    _write(tmp_path / "pkg" / "b.py", "from pkg import low\n\ndef g():\n    from .a import f\n    return f\n")
    _write(tmp_path / "pkg" / "low.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import f\n")
    _write(tmp_path / "pkg" / "deep" / "__init__.py", "")
    _write(tmp_path / "pkg" / "deep" / "x.py", "from .. import low\nfrom . import y\n")
    _write(tmp_path / "pkg" / "deep" / "y.py", "from ..deep import x\n")

    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.low"] == set()  # TYPE_CHECKING imports never run
    assert graph["pkg.deep.x"] == {"pkg.low", "pkg.deep.y"}
    assert circles(graph) == [["pkg", "pkg.sub"], ["pkg.a", "pkg.b"], ["pkg.deep.x", "pkg.deep.y"]]
    message = describe(circles(graph), graph)
    assert "pkg.a -> pkg.b; pkg.b -> pkg.a" in message and "lower module" in message


def test_detector_passes_a_one_way_package(tmp_path):
    _write(tmp_path / "pkg" / "__init__.py", "from pkg.top import run\n")
    _write(tmp_path / "pkg" / "top.py", "from pkg.low import base\n\ndef run():\n    from pkg import low\n    return low\n")
    _write(tmp_path / "pkg" / "low.py", "base = 1\n")
    assert circles(import_graph(tmp_path, "pkg")) == []


# --------------------------------------------------------------------------- one lab, one folder

def _labs_dir() -> Path:
    import labflow.labs

    return Path(labflow.labs.__file__).parent


def test_the_labs_folder_holds_the_lab_folders_and_the_registry_only():
    from labflow.labs import LABS

    entries = sorted(p.name for p in _labs_dir().iterdir() if p.name != "__pycache__")
    folders = [name for name in entries if name != "__init__.py"]
    assert all(re.fullmatch(r"lab\d\d_[a-z0-9_]+", name) for name in folders), folders
    assert [f"labflow.labs.{name}" for name in folders] == list(LABS.values())
    for name in folders:
        files = sorted(p.name for p in (_labs_dir() / name).iterdir() if p.name != "__pycache__")
        assert {"__init__.py", "lab.py", "config.py"} <= set(files), (name, files)


def test_the_shared_config_holds_no_lab_schema():
    import ast

    import labflow.frame.config as config

    tree = ast.parse(Path(config.__file__).read_text())
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    assert classes and not [c for c in classes if re.match(r"Lab\d\d", c)], classes


def test_a_stage_validates_its_own_section_and_those_it_reads_only(raw_params):
    from labflow.frame.config import ConfigError, parse_params, sections_for

    assert sections_for("lab01") == ("lab01",)
    assert sections_for("lab11") == ("lab11", "lab10") and sections_for("lab20") == ("lab20", "lab10")
    assert sections_for("lab25") == ("lab25", "lab16") and sections_for("lab17") == ("lab17", "lab15")
    broken = {**raw_params, "lab10": {**raw_params["lab10"], "typo": 1}}
    assert parse_params(broken, labs=("lab01",)).labs() == ("lab01",)  # lab 10's section is not lab 01's concern
    with pytest.raises(ConfigError, match=r"lab10.typo"):
        parse_params(broken, labs=sections_for("lab11"))  # lab 11 reads lab 10's section
    with pytest.raises(ConfigError, match=r"lab10.typo"):
        parse_params(broken)  # preflight validates every section
    with pytest.raises(ConfigError, match=r"lab01s"):  # an unknown top-level key is still an error
        parse_params({**raw_params, "lab01s": {}}, labs=("lab01",))
    with pytest.raises(ConfigError, match="was not loaded"):
        parse_params(raw_params, labs=("lab01",)).lab("lab10")
