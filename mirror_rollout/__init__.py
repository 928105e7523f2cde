"""mirror-rollout: reviewed, evidence-backed rollout of the Phase Mirror infrastructure."""

from pathlib import Path

__version__ = "0.1.0"

#: The repository root (where infra/, flows/ and prefect.yaml live).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
