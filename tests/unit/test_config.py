"""The pipeline config: every shipped config loads; errors name file, field and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.config import ConfigError, PipelineConfig, load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path, tmp_path: Path) -> None:
    config = load_config(path, home=tmp_path)
    assert isinstance(config, PipelineConfig)
    assert config.data.expectations.is_file(), "the suite a shipped config names must exist"


def test_home_expansion_and_relative_paths(tmp_path: Path) -> None:
    config = load_config(REPO / "configs" / "crm_leads.yaml", home=tmp_path)
    assert config.data.path == tmp_path / "data" / "crm_leads.parquet"
    assert config.data.expectations == REPO / "configs" / "crm_leads.expectations.json"
    assert config.data.time_column is None  # the shipped config splits at random


def test_feature_store_paths_resolve_like_data_path(tmp_path: Path) -> None:
    config = load_config(REPO / "configs" / "crm_feature_store.yaml", home=tmp_path)
    assert config.feature_store is not None
    assert config.feature_store.repo == REPO / "feature_repo" / "crm"
    assert config.feature_store.source == tmp_path / "data" / "crm"
    assert config.feature_store.expectations == REPO / "configs" / "crm_features.expectations.json"
    assert config.feature_store.materialize_interval_minutes == 60
    assert config.data.path == tmp_path / "data" / "crm" / "spine.parquet"


def test_feature_store_needs_the_spines_time_column(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="feature_store: set data.time_column"):
        load_config(
            REPO / "configs" / "crm_feature_store.yaml", home=tmp_path, overrides={"data.time_column": None}
        )


def test_time_column_is_parsed_as_a_date(tmp_path: Path) -> None:
    """A config naming a time column gets it parsed as a date without listing it in parse_dates too."""
    import yaml

    raw = yaml.safe_load((REPO / "configs" / "crm_leads.yaml").read_text())
    raw["data"]["time_column"] = "created_at"
    raw["data"]["parse_dates"] = []
    raw["data"]["expectations"] = str(REPO / "configs" / "crm_leads.expectations.json")
    path = tmp_path / "timed.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path, home=tmp_path)
    assert config.data.time_column == "created_at"
    assert config.data.parse_dates == ["created_at"]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    return path


BASE = """\
name: demo
data: {path: d.csv, expectations: e.json, target: y}
features: {numeric: [a], categorical: [b]}
registry: {model_name: demo}
"""


def test_wrong_type_names_field_and_value(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE + "model: {batch_size: lots}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, home=tmp_path)
    message = str(info.value)
    assert str(path) in message and "model.batch_size" in message and "'lots'" in message


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE + "sweep: {num_sample: 3}\n")
    with pytest.raises(ConfigError, match=r"sweep\.num_sample: unknown key"):
        load_config(path, home=tmp_path)


def test_missing_section_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE.replace("registry: {model_name: demo}\n", ""))
    with pytest.raises(ConfigError, match="registry: required field is missing"):
        load_config(path, home=tmp_path)


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE + "model: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML at line"):
        load_config(path, home=tmp_path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml", home=tmp_path)


def test_search_space_keys_must_be_model_fields(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE + "sweep: {search_space: {lr: {type: uniform, low: 0.1, high: 0.2}}}\n")
    with pytest.raises(ConfigError, match="unknown model parameter"):
        load_config(path, home=tmp_path)


def test_target_cannot_be_a_feature(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE.replace("numeric: [a]", "numeric: [a, y]"))
    with pytest.raises(ConfigError, match="data.target 'y' must not also be a feature"):
        load_config(path, home=tmp_path)


def test_overrides_are_validated(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    config = load_config(path, home=tmp_path, overrides={"data.path": "/elsewhere/x.parquet"})
    assert config.data.path == Path("/elsewhere/x.parquet")
    with pytest.raises(ConfigError, match="seed"):
        load_config(path, home=tmp_path, overrides={"seed": "abc"})


def test_config_hash_is_stable(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    assert load_config(path, home=tmp_path).config_hash() == load_config(path, home=tmp_path).config_hash()
