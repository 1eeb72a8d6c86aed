"""The config reference (docs/configuration.md) and Pulumi.yaml's typed config are generated from components.model.keys.KEYS."""

from pathlib import Path

import yaml

from components.model.keys import KEYS
from tools.reference import BEGIN, END, REFERENCE_PAGE, YAML_BEGIN, YAML_END, current, markdown_table, yaml_block

ROOT = Path(__file__).resolve().parents[2]


def test_reference_page_is_the_docs_configuration_page():
    assert REFERENCE_PAGE == ROOT / "docs" / "configuration.md"


def test_reference_table_matches_the_code():
    assert current(REFERENCE_PAGE.read_text(), BEGIN, END) == markdown_table(), \
        "run `make reference` (python -m tools.reference --write)"


def test_pulumi_yaml_typed_config_matches_the_code():
    assert current((ROOT / "Pulumi.yaml").read_text(), YAML_BEGIN, YAML_END) == yaml_block()
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    for key in KEYS:
        if key.secret:
            assert key.name not in declared
            continue
        assert declared[key.name]["type"] == key.type
        assert declared[key.name]["default"] == key.default


def test_every_key_documented_on_the_configuration_page():
    page = REFERENCE_PAGE.read_text()
    for key in KEYS:
        assert f"`{key.full}`" in page
