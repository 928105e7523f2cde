"""When a real Terraform binary and an AWS provider mirror are on this machine, check the .tf with them.

CI machines of this project have no network for `terraform init`, so this runs
only where a filesystem mirror of hashicorp/aws exists (MIRROR_ROLLOUT_TF_PLUGINS
or /opt/tf-plugins); otherwise it is skipped with that reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mirror_rollout import PROJECT_ROOT

TERRAFORM = shutil.which("terraform")
MIRROR = Path(os.environ.get("MIRROR_ROLLOUT_TF_PLUGINS", "/opt/tf-plugins"))
HAS_AWS_PROVIDER = (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir()


def terraform(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [TERRAFORM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.skipif(TERRAFORM is None, reason="no terraform binary on PATH")
def test_terraform_fmt_is_clean():
    done = subprocess.run(
        [TERRAFORM, "fmt", "-check", "-recursive", "-diff", str(PROJECT_ROOT / "infra")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(
    TERRAFORM is None or not HAS_AWS_PROVIDER,
    reason="no terraform binary or no local hashicorp/aws provider mirror (init needs the network)",
)
def test_terraform_validate_with_the_real_aws_provider(tmp_path):
    work = tmp_path / "terraform"
    shutil.copytree(PROJECT_ROOT / "infra" / "terraform", work)
    rc = tmp_path / "terraformrc"
    rc.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path = "{MIRROR}"\n    include = ["registry.terraform.io/hashicorp/*"]\n  }}\n'
        '  direct {\n    exclude = ["registry.terraform.io/hashicorp/*"]\n  }\n'
        "}\n"
    )
    env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(rc),
        "TF_IN_AUTOMATION": "1",
        "TF_DATA_DIR": str(tmp_path / "data"),
    }
    init = terraform("init", "-backend=false", "-input=false", "-no-color", cwd=work, env=env)
    assert init.returncode == 0, init.stdout + init.stderr
    validate = terraform("validate", "-no-color", cwd=work, env=env)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "The configuration is valid" in validate.stdout
