"""The one config schema: YAML, overrides, ROS-parameter flattening, and clear errors."""

import pytest
import yaml

from vla_ros.core import schema
from vla_ros.core.config import ConfigError, VlaConfig, config_from_dict, load_config


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_validate_and_flatten_round_trip():
    cfg = VlaConfig()
    flat = cfg.flatten()
    assert flat["policy.num_steps"] == 10 and flat["executor.dry_run"] is True
    assert config_from_dict(schema.unflatten(flat)) == cfg


def test_files_merge_in_order_and_overrides_win(tmp_path):
    a = write(tmp_path, "a.yaml", {"policy": {"device": "cuda", "num_steps": 5}, "sync": {"slop": 0.1}})
    b = write(tmp_path, "b.yaml", {"policy": {"num_steps": 8}})
    cfg = load_config([a, b], ["sync.slop=0.02", "executor.strategy=replace"])
    assert (cfg.policy.device, cfg.policy.num_steps, cfg.sync.slop) == ("cuda", 8, 0.02)
    assert cfg.executor.strategy == "replace"


def test_ros_parameter_file_format_is_accepted(tmp_path):
    p = write(tmp_path, "params.yaml",
              {"policy_node": {"ros__parameters": {"policy.device": "cuda:1", "sync": {"max_age": 1.5}}}})
    cfg = load_config([p])
    assert cfg.policy.device == "cuda:1" and cfg.sync.max_age == 1.5


@pytest.mark.parametrize(
    "data, message",
    [
        ({"policy": {"devise": "cuda"}}, r"policy\.devise: unknown key \(known keys here: type, checkpoint, device"),
        ({"polcy": {}}, r"polcy: unknown key"),
        ({"policy": {"num_steps": "ten"}}, r"policy\.num_steps: expected integer, got str 'ten'"),
        ({"policy": {"num_steps": 0}}, r"policy\.num_steps: expected >= 1, got 0"),
        ({"policy": {"dtype": "fp8"}}, r"policy\.dtype: expected one of 'float32', 'bfloat16', 'float16', got 'fp8'"),
        ({"executor": {"dry_run": 1}}, r"executor\.dry_run: expected boolean, got int 1"),
        ({"safety": {"workspace_min": [0, 0]}}, r"safety\.workspace_min: expected a list of 3 items, got 2"),
        ({"robot": {"camera_topics": ["/a", 5]}}, r"robot\.camera_topics\[1\]: expected string, got int 5"),
        ({"robot": {"camera_names": ["a", "b", "c"]}},
         r"robot\.camera_topics: expected one topic per camera name \(3: a, b, c\), got 2"),
        ({"safety": {"workspace_min": [0, 0, 2.0]}},
         r"safety\.workspace_min: z = 2\.0 must be below safety\.workspace_max z = 1\.5"),
        ({"sync": 3}, r"sync: expected a mapping of keys, got int"),
    ],
)
def test_bad_values_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_integers_are_accepted_for_floats():
    assert config_from_dict({"executor": {"control_rate": 200}}).executor.control_rate == 200.0


def test_error_in_a_file_names_the_file(tmp_path):
    p = write(tmp_path, "robot.yaml", {"robot": {"base_frme": "x"}})
    with pytest.raises(ConfigError, match=r"robot\.base_frme: unknown key .*\(in .*robot\.yaml\)"):
        load_config([p])


def test_bad_override_syntax_and_missing_file():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config([], ["policy.device"])
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(["/nonexistent/x.yaml"])


def test_schema_describes_every_key_with_doc():
    rows = schema.describe(VlaConfig)
    assert {r["key"] for r in rows} == set(VlaConfig().flatten())
    assert all(r["doc"] for r in rows)
