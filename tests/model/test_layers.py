"""The layout's rules (issue 17): the model is plain Python that names no backend, and no component file
grows past what one reader takes in."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "components" / "model"


def _identifiers(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            yield node.lineno, node.id
        elif isinstance(node, ast.Attribute):
            yield node.lineno, node.attr
        elif isinstance(node, ast.FunctionDef):
            yield node.lineno, node.name
            yield from ((node.lineno, a.arg) for a in (*node.args.args, *node.args.kwonlyargs))
        elif isinstance(node, ast.ClassDef):
            yield node.lineno, node.name
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, node.module or ""
            yield from ((node.lineno, a.asname or a.name) for a in node.names)
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, a.asname or a.name) for a in node.names)
        elif isinstance(node, ast.keyword) and node.arg:
            yield node.lineno, node.arg


def test_the_model_names_no_backend_in_its_code():
    """Strings in messages may say `docker:host`; an identifier, an import or a parameter may not."""
    found = [f"{p.name}:{line}: {name}" for p in sorted(MODEL.glob("*.py"))
             for line, name in _identifiers(ast.parse(p.read_text()))
             if "docker" in name.lower() or name.split(".")[0] in ("pulumi", "pulumi_docker", "pulumi_kubernetes")]
    assert found == []


def test_importing_the_whole_model_loads_no_pulumi():
    modules = [f"components.model.{p.stem}" for p in sorted(MODEL.glob("*.py")) if p.stem != "__init__"]
    code = (f"import sys; [__import__(m) for m in {modules!r}]; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'pulumi_docker') or m.startswith('components.docker')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_component_file_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "components").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
