"""The architecture's rules, checked: what each package may import, and what library code raises.

docs/design.md ("Package map") states these rules; this file is where they are enforced.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import hsm_snake
from hsm_snake.executors.ssh import transfer

PACKAGE = Path(hsm_snake.__file__).parent
HEAVY = ("click", "rich", "jinja2", "jsonschema", "snakemake", "ruamel")


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in done.stdout.split()}


def _heavy(loaded: set[str]) -> set[str]:
    return {name for name in loaded if name.startswith(HEAVY)}


def test_the_runner_loads_only_the_standard_library_and_pyyaml():
    loaded = _modules_loaded_by("import hsm_snake.runner.task")
    assert not _heavy(loaded), _heavy(loaded)


def test_the_runner_imports_only_what_an_ssh_host_is_sent():
    """The SSH push ships RUNNER_PACKAGES and RUNNER_TOP_MODULES; the runner must need nothing else."""
    shipped = set(transfer.RUNNER_PACKAGES) | {name.removesuffix(".py") for name in transfer.RUNNER_TOP_MODULES}
    for package in transfer.RUNNER_PACKAGES:
        for module in (PACKAGE / package).rglob("*.py"):
            for imported in _hsm_imports(module):
                part = imported.split(".")[1] if "." in imported else "__init__"
                assert part in shipped, f"{module.relative_to(PACKAGE)} imports {imported}, which SSH hosts lack"


def test_the_layout_package_loads_nothing_heavy():
    assert not _heavy(
        _modules_loaded_by(
            "import hsm_snake.layout.paths, hsm_snake.layout.records, hsm_snake.layout.status, hsm_snake.layout.index"
        )
    )


def test_the_monitor_never_loads_snakemake():
    loaded = _modules_loaded_by(
        "import " + ", ".join(f"hsm_snake.monitor.{m.stem}" for m in (PACKAGE / "monitor").glob("*.py"))
    )
    assert "snakemake" not in loaded


def _hsm_imports(module: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "hsm_snake":
                found += [f"hsm_snake.{alias.name}" for alias in node.names]
            elif node.module.startswith("hsm_snake."):
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("hsm_snake")]
    return found


def _third_party_imports(module: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
    return names


LIBRARY_MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts)


@pytest.mark.parametrize("module", LIBRARY_MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_cli_imports_click_and_rich(module: Path):
    assert not _third_party_imports(module) & {"click", "rich"}


@pytest.mark.parametrize("module", LIBRARY_MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_library_code_raises_only_hsm_errors(module: Path):
    """A user mistake reaches the CLI as an HsmError (a message and a hint), never a traceback.

    Library code may re-raise (``raise``), raise HsmError subclasses, or raise the exceptions a
    Python protocol requires (StopIteration, KeyboardInterrupt/SystemExit passed on, NotImplementedError
    in an interface, AttributeError from a module's ``__getattr__``); assert statements are not used
    for checks.
    """
    allowed = _hsm_error_names() | {
        "StopIteration",
        "NotImplementedError",
        "KeyboardInterrupt",
        "SystemExit",
        # a module's __getattr__ answers a name it does not have so (engine/snakemake_cli.py)
        "AttributeError",
        # Snakemake's error type, in the executor plugins' interface
        "WorkflowError",
        # the runner's wait() keeps Popen.wait's protocol; its caller catches it
        "TimeoutExpired",
    }
    tree = ast.parse(module.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        assert not isinstance(node, ast.Assert), f"line {node.lineno}: assert in library code"
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
            if name is None or not name.lstrip("_")[:1].isupper():
                continue  # a caught exception held in a variable, or a function that builds an error
            assert name in allowed, f"line {node.lineno}: raises {name}, not an HsmError"


def _hsm_error_names() -> set[str]:
    from hsm_snake import errors

    classes = {}
    for module in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                classes[node.name] = [getattr(b, "id", getattr(b, "attr", "")) for b in node.bases]

    def is_hsm(name: str, seen: frozenset = frozenset()) -> bool:
        if name in vars(errors) and isinstance(vars(errors)[name], type):
            return issubclass(vars(errors)[name], errors.HsmError)
        return name not in seen and any(is_hsm(base, seen | {name}) for base in classes.get(name, []))

    return {name for name in classes if is_hsm(name)} | {"HsmError"}
