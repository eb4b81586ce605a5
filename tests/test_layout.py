"""The design card's layout: our five packages resolve here, the import direction holds between
them and, inside ``gateway/``, between its layers (docs/architecture.md), with no import cycle."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "smtp", "imap", "routing", "crypto", "healthdocs", "saslwire")
LEAVES = ("smtp", "imap", "routing", "crypto", "healthdocs", "saslwire")
SHARED_BY = {"saslwire": ("smtp", "imap")}
"""A pure package below others: the SASL messages both protocols parse, one parser for both."""


@pytest.mark.parametrize("name", PACKAGES)
def test_package_resolves_inside_this_repository(name: str) -> None:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin).resolve() == ROOT / name / "__init__.py", f"{name} resolves to {spec.origin}"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path}: relative import; use absolute imports")
            if node.module:
                names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("leaf", LEAVES)
def test_leaf_packages_import_no_sibling_and_not_gateway(leaf: str) -> None:
    forbidden = set(PACKAGES) - {leaf} - {shared for shared, users in SHARED_BY.items() if leaf in users}
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & forbidden)
        for path in (ROOT / leaf).rglob("*.py")
        if _imports(path) & forbidden
    }
    assert offenders == {}, f"{leaf} must not import {sorted(forbidden)}: {offenders}"


def test_pyproject_lists_every_package() -> None:
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in PACKAGES for p in (ROOT / top).rglob("__init__.py")
    }
    assert on_disk <= listed, f"packages missing from pyproject.toml: {sorted(on_disk - listed)}"


def _gateway_imports(path: Path) -> set[str]:
    """Every ``gateway.*`` module a file imports (function-local imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("gateway."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gateway"):
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_shared_operations_import_neither_the_web_nor_the_command_line() -> None:
    """gateway/operations/ is called by both the CLI and the admin web: it depends on neither."""
    forbidden = ("gateway.web", "gateway.app")
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in _gateway_imports(path) if n.startswith(forbidden))
        for path in (ROOT / "gateway" / "operations").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    assert offenders, "gateway/operations/ is missing"


# --- inside gateway/: the layers (docs/architecture.md) ------------------------------------------

LAYERS: dict[str, int] = {
    # read and counted by every layer: they import nothing of gateway
    "gateway": 0, "gateway.settings": 0, "gateway.metrics": 0,
    # infrastructure: the database, the network
    "gateway.store": 1, "gateway.net": 1,
    # the message bytes, the accounts
    "gateway.mailstore": 2, "gateway.accounts": 2,
    # what the gateway does
    "gateway.delivery": 3, "gateway.imap_adapter": 3, "gateway.web": 3, "gateway.outbound": 3,
    "gateway.operations": 3,
    # the composition root (``gateway/__main__.py``, ``python -m gateway``, belongs to it)
    "gateway.app": 4,
    # the test kit
    "gateway.testing": 5,
}
"""A unit of ``gateway`` (a package under it, or a module at its root) and its layer: a unit
imports units of lower layers only, or of its own layer when :data:`SAME_LAYER` allows it."""

SAME_LAYER: dict[tuple[str, str], str] = {
    ("gateway.accounts", "gateway.mailstore"):
        "creating a patient or professional account creates its mailbox folders; the lifecycle jobs "
        "remove orphan message chunks",
    ("gateway.delivery", "gateway.outbound"):
        "the pipeline queues remote recipients and patient notifications in the delivery's transaction",
    ("gateway.operations", "gateway.outbound"):
        "queue operations (retry, bounce, cancel); a recovery code is mailed through the queue",
    ("gateway.web", "gateway.delivery"):
        "the patient inbox sends replies and read receipts through the delivery runtime app hands it",
    ("gateway.web", "gateway.operations"):
        "the console, the API, the mediation pages and the forgot-password page call the shared operations",
    ("gateway.web", "gateway.outbound"):
        "a read receipt is built by outbound.mdn",
}
"""Same-layer edges, each with its reason. Every one must be in use, and they form no cycle."""

COMPOSITION_ROOT = ("gateway.app", "gateway.testing")
"""Where a ``from gateway`` import may sit inside a function (lazy loading on purpose)."""

ROOT_MODULES_MAX = 10


def _gateway_modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _gateway_modules()


def _unit(module: str) -> str:
    """``gateway.delivery.pipeline`` -> ``gateway.delivery``; root modules are units of their own."""
    if module == "gateway.__main__":
        return "gateway.app"
    return ".".join(module.split(".")[:2])


def _resolve(name: str) -> str:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _function_bodies(tree: ast.AST) -> set[int]:
    inside: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(node) for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom)))
    return inside


def _edges(module: str) -> list[tuple[str, bool]]:
    """The ``gateway`` modules ``module`` imports, anywhere in it (function bodies and
    ``TYPE_CHECKING`` blocks included), each with whether the import sits in a function."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    local = _function_bodies(tree)
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.split(".")[0] == "gateway"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "gateway":
            targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                       for a in node.names]
        for target in targets:
            resolved = _resolve(target)
            if resolved and resolved != module:
                found.append((resolved, id(node) in local))
    return found


GRAPH = {module: _edges(module) for module in MODULES}


def test_every_unit_of_gateway_has_a_layer() -> None:
    assert sorted({_unit(m) for m in MODULES} - set(LAYERS)) == [], "place it in LAYERS (and docs/architecture.md)"


def test_gateway_imports_follow_the_layers() -> None:
    offenders = []
    for module, edges in GRAPH.items():
        for target, _ in edges:
            a, b = _unit(module), _unit(target)
            if a == b or a not in LAYERS or b not in LAYERS:  # unplaced units: the test above
                continue
            if LAYERS[a] > LAYERS[b] or (a, b) in SAME_LAYER:
                continue
            offenders.append(f"{module} -> {target} ({a}: layer {LAYERS[a]}, {b}: layer {LAYERS[b]})")
    assert offenders == []


def test_same_layer_edges_are_in_use_and_acyclic() -> None:
    used = {(_unit(m), _unit(t)) for m, edges in GRAPH.items() for t, _ in edges}
    for (a, b), reason in SAME_LAYER.items():
        assert LAYERS[a] == LAYERS[b] and reason
        assert (a, b) in used, f"{a} -> {b} is allowed but unused: drop it from SAME_LAYER"
        assert (b, a) not in SAME_LAYER, f"{a} <-> {b}: both ways"
    graph: dict[str, set[str]] = {}
    for a, b in SAME_LAYER:
        graph.setdefault(a, set()).add(b)
    assert _cycles(graph) == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    nodes = set(graph) | {t for ts in graph.values() for t in ts}
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_in_gateway() -> None:
    """Module by module, function-local and ``TYPE_CHECKING`` imports counted."""
    assert _cycles({module: {t for t, _ in edges} for module, edges in GRAPH.items()}) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_gateway_import_inside_a_function_outside_the_composition_root() -> None:
    offenders = sorted(f"{module} -> {target}" for module, edges in GRAPH.items() for target, local in edges
                       if local and not module.startswith(COMPOSITION_ROOT))
    assert offenders == []


def test_gateway_root_holds_at_most_ten_modules() -> None:
    root = sorted(p.name for p in (ROOT / "gateway").glob("*.py"))
    assert len(root) <= ROOT_MODULES_MAX, root


def test_every_gateway_package_says_what_it_is_and_what_it_may_import() -> None:
    missing = []
    for init in sorted((ROOT / "gateway").rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        if len(doc) < 40 or "import" not in doc:
            missing.append(str(init.relative_to(ROOT)))
    assert missing == []


# --- libraries: one adapter module each --------------------------------------------------------------

AIOSMTPD_ADAPTER = "gateway/net/proxy.py"  # PROXY v1/v2 parsing, aiosmtpd.proxy_protocol.get_proxy
TEST_KITS = ("gateway/testing/",)  # sinks and peers for tests; tests/ and bench/ are no product


def _importers(library: str) -> list[str]:
    """Product modules (our five packages, test kits aside) that import ``library``, anywhere in them."""
    found = []
    for top in PACKAGES:
        for path in sorted((ROOT / top).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            if name.startswith(TEST_KITS):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=name)):
                modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                           else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(m.split(".")[0] == library for m in modules):
                    found.append(name)
                    break
    return found


def test_aiosmtpd_is_imported_by_one_product_module_at_most() -> None:
    """The SMTP listeners run on ``smtp.server`` (issue 16): aiosmtpd is left for the PROXY header."""
    assert set(_importers("aiosmtpd")) <= {AIOSMTPD_ADAPTER}, _importers("aiosmtpd")


def test_importers_sees_what_is_there() -> None:
    assert _importers("aiosmtpd") == [AIOSMTPD_ADAPTER]  # the finder is not blind: the adapter is found
    assert "gateway/testing/sink.py" not in _importers("aiosmtpd")  # a test kit: aside
    assert "gateway/outbound/client.py" in _importers("aiosmtplib")  # ``import x`` as well as ``from x import``


# --- one name, one concept (issue 16: "names that mislead") ------------------------------------
# A class name defined in two of our modules is allowed only when listed here, with why.
SHARED_CLASS_NAMES: dict[str, str] = {
    # smtp/ and imap/ are built alike on purpose: the same role has the same name in each.
    **dict.fromkeys(("Backend", "BodyHold", "Reply", "Rule", "ServerConfig", "Session", "SessionConfig",
                     "Transcript", "TokenCredentials"), "the same role in the SMTP and the IMAP protocol packages"),
    # Typed commands are named after their protocol verb (RFC 3501 STATUS, STORE, CLOSE, LOGIN).
    **dict.fromkeys(("Close", "Login", "StartTls", "Status", "Store", "Thread"), "a protocol verb"),
    # The SMTP envelope and backend are being brought into smtp/ (issue 16, the SMTP core); the
    # IMAP ``Envelope`` is RFC 3501's ENVELOPE.
    **dict.fromkeys(("Authenticator", "Delivered", "Envelope", "Rcpt"), "SMTP core work in progress (issue 16)"),
}


def _class_definitions() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for top in PACKAGES:
        for path in sorted((ROOT / top).rglob("*.py")):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.ClassDef):
                    found.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    return found


def test_no_two_concepts_share_a_class_name() -> None:
    shared = {name: paths for name, paths in _class_definitions().items() if len(paths) > 1}
    assert {name: paths for name, paths in shared.items() if name not in SHARED_CLASS_NAMES} == {}
    assert sorted(set(SHARED_CLASS_NAMES) - set(shared)) == [], "an allowance no longer needed"
