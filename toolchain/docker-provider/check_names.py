#!/usr/bin/env python3
"""Compare our provider's Pulumi schema with the installed pulumi-docker Python SDK.

The SDK puts camelCase property names and type tokens on the wire; our provider
(a bridge of the Terraform docker provider) must use exactly the same names.
This reads the SDK's sources (no import needed) and the schema that
cmd/gen-schema writes, and prints every difference:

    python3 check_names.py <schema.json> [<site-packages>/pulumi_docker]

Exit status 1 if a resource, function or property that the SDK sends or reads
is missing from the schema, is a list in one and a single value in the other,
or is required in one only (the things that break a program). Properties the schema has but the SDK lacks
(newer Terraform provider) are only listed.
"""
import ast
import json
import os
import sys
from pathlib import Path
from typing import Any

# pulumi-docker's docker.Image (docker:index/image:Image) is a native resource
# written in Go (it drives buildx), not a bridged Terraform resource: our
# provider does not have it. tfbox uses RemoteImage.
NOT_PROVIDED = {"resource docker:index/image:Image"}


def shape_of_annotation(ann: ast.expr | None) -> str:
    """'array', 'map' or 'one' from a getter's return annotation."""
    text = ast.unparse(ann) if ann is not None else ""
    if "Sequence[" in text:
        return "array"
    if "Mapping[" in text:
        return "map"
    return "one"


def shape_of_schema(prop: dict[str, Any]) -> str:
    if prop.get("type") == "array":
        return "array"
    if prop.get("type") == "object" and "additionalProperties" in prop:
        return "map"
    return "one"


def getters(cls: ast.ClassDef) -> dict[str, str]:
    """{wire name: shape} of the @pulumi.getter properties of a class."""
    names: dict[str, str] = {}
    for node in cls.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for dec in node.decorator_list:
            if isinstance(dec, ast.Attribute) and dec.attr == "getter":
                names[node.name] = shape_of_annotation(node.returns)
            elif isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "getter":
                name = node.name
                for kw in dec.keywords:
                    if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                        name = str(kw.value.value)
                names[name] = shape_of_annotation(node.returns)
    return names


def required(cls: ast.ClassDef) -> set[str]:
    """Wire names of the required arguments of an Args class's __init__."""
    wire: dict[str, str] = {}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "getter":
                    for kw in dec.keywords:
                        if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                            wire[node.name] = str(kw.value.value)
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            args = node.args
            positional = args.args[1:]
            names = [a.arg for a in positional[: len(positional) - len(args.defaults)]]
            names += [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None]
            return {wire.get(n, n) for n in names}
    return set()


def classes(path: str) -> dict[str, ast.ClassDef]:
    tree = ast.parse(Path(path).read_text())
    return {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}


def invoke_args(path: str) -> set[str]:
    """Names put in __args__ by a function module (the invoke's inputs)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
                and node.value.id == "__args__" and isinstance(node.slice, ast.Constant)):
            names.add(str(node.slice.value))
    return names


def tokens_in(path: str, marker: str) -> set[str]:
    """String constants that look like docker tokens in a module."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.startswith(marker):
            out.add(node.value)
    return out


def main() -> int:
    schema = json.loads(Path(sys.argv[1]).read_text())
    if len(sys.argv) > 2:
        sdk = sys.argv[2]
    else:
        import importlib.util
        spec = importlib.util.find_spec("pulumi_docker")
        if spec is None or spec.origin is None:
            print("pulumi_docker is not installed", file=sys.stderr)
            return 2
        sdk = os.path.dirname(spec.origin)

    missing: list[str] = []
    extra: list[str] = []
    notes: list[str] = []

    def compare(what: str, sdk_props: dict[str, str] | set[str], ours: dict[str, Any]) -> None:
        """sdk_props: {name: shape} or a set of names; ours: schema properties."""
        for n in sorted(set(sdk_props) - set(ours)):
            missing.append(f"{what}: {n}")
        for n in sorted(set(ours) - set(sdk_props)):
            extra.append(f"{what}: {n}")
        if isinstance(sdk_props, dict):
            for n in sorted(set(sdk_props) & set(ours)):
                theirs, mine = sdk_props[n], shape_of_schema(ours[n])
                if theirs != mine:
                    missing.append(f"{what}: {n} is {theirs} in the SDK, {mine} in our schema")

    def compare_required(what: str, sdk_required: set[str], ours: list[str]) -> None:
        for n in sorted(sdk_required ^ set(ours)):
            where = "the SDK" if n in sdk_required else "our schema"
            missing.append(f"{what}: {n} is required only in {where}")

    types = schema.get("types", {})
    by_class = {tok.rsplit(":", 1)[1]: tok for tok in types}
    for tok in types:
        name = tok.rsplit(":", 1)[1]
        if name.startswith("get"):  # types of functions: GetXArgs in, GetXResult out
            by_class[name[0].upper() + name[1:]] = tok
            by_class[name[0].upper() + name[1:] + "Result"] = tok

    # Resources: the token the SDK registers, its outputs and its inputs.
    for fname in sorted(os.listdir(sdk)):
        if not fname.endswith(".py") or fname.startswith("_"):
            continue
        path = os.path.join(sdk, fname)
        cls = classes(path)
        for tok in sorted(tokens_in(path, "docker:index/")):
            kind = tok.split("/")[1].split(":")[0]
            if kind.startswith("get"):
                fn = schema.get("functions", {}).get(tok)
                if fn is None:
                    missing.append(f"function {tok}")
                    continue
                compare(f"{tok} inputs", invoke_args(path),
                        fn.get("inputs", {}).get("properties", {}))
                result = [c for c in cls if c.endswith("Result") and not c.startswith("Awaitable")]
                for c in result:
                    compare(f"{tok} outputs", getters(cls[c]),
                            fn.get("outputs", {}).get("properties", {}))
                continue
            res = schema.get("resources", {}).get(tok)
            if res is None:
                missing.append(f"resource {tok}")
                continue
            name = tok.rsplit(":", 1)[1]
            if name in cls:
                compare(f"{tok} outputs", getters(cls[name]),
                        res.get("properties", {}))
            if name + "Args" in cls:
                compare(f"{tok} inputs", getters(cls[name + "Args"]),
                        res.get("inputProperties", {}))
                compare_required(f"{tok} inputs", required(cls[name + "Args"]),
                                 res.get("requiredInputs", []))

    # Provider configuration.
    prov = classes(os.path.join(sdk, "provider.py"))
    compare("provider inputs", getters(prov["ProviderArgs"]),
            schema.get("provider", {}).get("inputProperties", {}))

    # Object types: inputs (XArgs in _inputs.py) and outputs (X in outputs.py).
    for fname, suffix in (("_inputs.py", "Args"), ("outputs.py", "")):
        for cname, type_cls in sorted(classes(os.path.join(sdk, fname)).items()):
            if cname.endswith("Dict"):
                continue
            base = cname[: -len(suffix)] if suffix and cname.endswith(suffix) else cname
            tok = by_class.get(base)
            if tok is None:
                notes.append(f"type {cname} ({fname}): no such type in our schema")
                continue
            compare(f"type {tok}", getters(type_cls), types[tok].get("properties", {}))
            if suffix:
                compare_required(f"type {tok}", required(type_cls), types[tok].get("required", []))

    unprovided = [m for m in missing if m in NOT_PROVIDED]
    missing = [m for m in missing if m not in NOT_PROVIDED]
    notes = unprovided + notes
    for title, rows in (("MISMATCHES that break programs (missing names, list vs single value, required-ness)", missing),
                        ("only in our schema (newer Terraform provider)", extra),
                        ("not provided on purpose (pulumi-docker's native Image)", notes)):
        print(f"== {title}: {len(rows)}")
        for r in rows:
            print("  " + r)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
