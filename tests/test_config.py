"""Configuration: typed, strict, with errors that name the key and suggest the right one."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiling import ConfigError
from profiling.config import load_config, parse_config


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown key 'min_cel_size'; did you mean "
                                          r"'min_cell_size'\?"):
        parse_config({"surveys": ["a.csv"], "min_cel_size": 3})


def test_unknown_nested_key(tmp_path):
    with pytest.raises(ConfigError, match=r"hazards\.0\.treshold.*did you mean 'thresholds'"):
        parse_config({"surveys": ["a.csv"], "hazards": [{"name": "flood", "path": "f.tif",
                                                         "treshold": {}}]})


def test_defaults_and_flood_thresholds():
    cfg = parse_config({"surveys": ["a.csv"], "hazards": [{"name": "flood", "path": "f.tif"}]})
    assert cfg.min_cell_size == 5
    assert cfg.max_distance_m == 1000
    assert cfg.hazards[0].thresholds == {"exposed": 0.15, "high": 0.5}
    custom = parse_config({"surveys": ["a.csv"], "hazards": [
        {"name": "flood", "path": "f.tif", "thresholds": {"high": 1.0}}]})
    assert custom.hazards[0].thresholds == {"exposed": 0.15, "high": 1.0}


def test_bad_values_are_named():
    with pytest.raises(ConfigError, match=r"min_cell_size.*value 0"):
        parse_config({"surveys": ["a.csv"], "min_cell_size": 0})
    with pytest.raises(ConfigError, match="hazard names must be unique"):
        parse_config({"surveys": ["a.csv"], "hazards": [{"name": "f", "path": "a"},
                                                        {"name": "f", "path": "b"}]})
    with pytest.raises(ConfigError, match="exactly one of 'column', 'sum', 'coalesce', 'cases'"):
        parse_config({"surveys": [{"path": "a.csv", "field_mapping": {
            "hh_size": {"column": "a", "sum": ["b"]}}}]})


def test_relative_paths_are_taken_from_the_file(tmp_path):
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "run.yaml"
    path.write_text("surveys: [../data/a.csv]\nboundaries: b.gpkg\nfield_mapping:\n"
                    "  hh_size: size\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.surveys[0].path == (tmp_path / "cfg" / "../data/a.csv")
    assert cfg.boundaries == tmp_path / "cfg" / "b.gpkg"
    assert cfg.surveys[0].field_mapping == {"hh_size": "size"}  # the default mapping applies


@pytest.mark.parametrize("text,match", [("", "is empty"), ("surveys: [a\n", "not valid YAML"),
                                        ("- a\n- b\n", "must be a mapping")])
def test_broken_files(tmp_path, text, match):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_demo_config_is_valid():
    cfg = load_config(Path(__file__).parents[1] / "configs" / "demo.yaml")
    assert len(cfg.surveys) == 3 and all(s.path.exists() for s in cfg.surveys)


def test_the_readme_configuration_reference_is_a_valid_configuration():
    """Every key the README documents exists, with a value of the right kind."""
    import yaml

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = text[text.index("```yaml\nsurveys:") + len("```yaml\n"):]
    data = yaml.safe_load(block[:block.index("```")])
    cfg = parse_config(data, "README.md", Path("configs"))
    assert cfg.execution.connect_timeout == 30 and cfg.cuf.budget == 250000
    assert cfg.surveys[1].members is not None
    assert cfg.surveys[2].field_mapping is not None
