"""AWS region names: a typo becomes one clear error before any client is made.

botocore would accept "us-est-1" and fail later with an endpoint error that
does not say the region is wrong; its own endpoint data knows every region.
"""

from __future__ import annotations

import difflib
from functools import cache

from mirror_rollout.errors import ConfigError


@cache
def known_regions() -> frozenset[str]:
    from mirror_rollout.aws import new_session

    session = new_session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("ssm", partition_name=partition)
    )


def check_region(region: str) -> str:
    """``region`` if botocore knows it, else ConfigError naming the closest region names."""
    regions = known_regions()
    if region in regions:
        return region
    close = difflib.get_close_matches(str(region), sorted(regions), n=2, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? Use a region name" if close else "use a region name"
    raise ConfigError(f"unknown AWS region {region!r}", hint + " such as us-east-1")
