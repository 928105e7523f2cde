"""The HCL evaluator behind guardrails and the sandbox engine: values, functions, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirror_rollout.errors import ConfigError
from mirror_rollout.hcl.config import Configuration, resolve_variables
from mirror_rollout.hcl.functions import jsonencode
from mirror_rollout.hcl.module import load_module
from mirror_rollout.hcl.values import Unknown
from mirror_rollout.provisioners.sandbox.engine import SandboxEngine


def module(tmp_path: Path, text: str, tfvars: str | None = None):
    (tmp_path / "main.tf").write_text(text)
    files = []
    if tfvars is not None:
        (tmp_path / "x.tfvars").write_text(tfvars)
        files = [tmp_path / "x.tfvars"]
    mod = load_module(tmp_path)
    return Configuration(mod, resolve_variables(mod, files))


def values(cfg: Configuration) -> dict[str, dict]:
    return {i.address: cfg.config(i) for i in cfg.all_instances()}


def test_templates_locals_for_each_count_and_functions(tmp_path):
    cfg = module(
        tmp_path,
        """
variable "env" {
  type    = string
  default = "staging"
}
locals {
  prefix = "md-${var.env}"
  alarms = { a = { metric = "M1", n = 1 }, b = { metric = "M2", n = 2 } }
  tags   = merge({ Project = "x" }, { Env = upper(var.env) })
}
resource "aws_cloudwatch_metric_alarm" "t" {
  for_each   = local.alarms
  alarm_name = format("%s-%s", local.prefix, each.key)
  threshold  = each.value.n * 10 > 15 ? 1 : -1
  tags       = local.tags
  names      = [for k, v in local.alarms : lower(v.metric) if v.n > 1]
  body       = jsonencode({ b = 1, a = [true, null] })
}
resource "aws_sns_topic" "t" {
  count = length(keys(local.alarms))
  name  = "${local.prefix}-${count.index}"
  arn_of_alarm = aws_cloudwatch_metric_alarm.t["a"].arn
  name_of_alarm = aws_cloudwatch_metric_alarm.t["b"].alarm_name
}
""",
    )
    got = values(cfg)
    assert got['aws_cloudwatch_metric_alarm.t["a"]']["alarm_name"] == "md-staging-a"
    assert got['aws_cloudwatch_metric_alarm.t["a"]']["threshold"] == -1
    assert got['aws_cloudwatch_metric_alarm.t["b"]']["threshold"] == 1
    assert got['aws_cloudwatch_metric_alarm.t["a"]']["tags"] == {"Project": "x", "Env": "STAGING"}
    assert got['aws_cloudwatch_metric_alarm.t["a"]']["names"] == ["m2"]
    assert got['aws_cloudwatch_metric_alarm.t["a"]']["body"] == '{"a":[true,null],"b":1}'
    assert got["aws_sns_topic.t[1]"]["name"] == "md-staging-1"
    # attributes only known after apply stay unknown, and say where they come from
    assert got["aws_sns_topic.t[0]"]["arn_of_alarm"] == Unknown(
        'aws_cloudwatch_metric_alarm.t["a"].arn'
    )
    assert got["aws_sns_topic.t[0]"]["name_of_alarm"] == "md-staging-b"


def test_jsonencode_matches_terraform():
    assert jsonencode({"b": "<&>", "a": 1.0}) == '{"a":1,"b":"\\u003c\\u0026\\u003e"}'


@pytest.mark.parametrize(
    ("text", "construct"),
    [
        (
            'resource "aws_sns_topic" "t" {\n  name = var.names[*].id\n}\nvariable "names" {\n  default = []\n}\n',
            "splat",
        ),
        (
            'resource "aws_sns_topic" "t" {\n  name = timestamp()\n}\n',
            "function timestamp() is not supported",
        ),
        (
            'resource "aws_sns_topic" "t" {\n  name = "x"\n  dynamic "tag" {\n    for_each = []\n    content {}\n  }\n}\n',
            "dynamic blocks",
        ),
        ('module "m" {\n  source = "./m"\n}\n', "module blocks"),
        (
            'resource "aws_sns_topic" "t" {\n  name = "%{ if true }x%{ endif }"\n}\n',
            "template directives",
        ),
    ],
)
def test_unsupported_constructs_name_file_resource_and_construct(tmp_path, text, construct):
    with pytest.raises(ConfigError) as raised:
        values(module(tmp_path, text))
    message = str(raised.value)
    assert "main.tf:" in message and construct in message
    if "resource" in text.split("\n", 1)[0]:
        assert "aws_sns_topic.t" in message


def test_bad_tfvars_are_one_clear_error(tmp_path):
    text = 'variable "window" {\n  type = number\n  validation {\n    condition     = var.window >= 7 && var.window <= 30\n    error_message = "must be 7..30"\n  }\n}\n'
    with pytest.raises(ConfigError, match=r"must be 7\.\.30"):
        module(tmp_path, text, "window = 3\n")
    with pytest.raises(ConfigError, match="a number is required"):
        module(tmp_path, text, 'window = "seven"\n')
    with pytest.raises(ConfigError, match="no variable declares"):
        module(tmp_path, text, "window = 7\nwindwo = 8\n")
    with pytest.raises(ConfigError, match=r"x.tfvars:1:.*syntax error"):
        module(tmp_path, text, "window = = 7\n")


def test_engine_refuses_resource_types_it_cannot_apply(infra):
    infra.append(
        "terraform/main.tf", 'resource "aws_lambda_function" "oracle" {\n  function_name = "x"\n}\n'
    )
    with pytest.raises(ConfigError) as raised:
        SandboxEngine("staging", root=infra.root)
    assert "aws_lambda_function.oracle" in str(
        raised.value
    ) and "not supported by the sandbox engine" in str(raised.value)
