"""Reading and evaluating the project's Terraform with python-hcl2's rule tree.

The sandbox engine and the guardrails both need the *values* of the .tf files
for an environment (variables from tfvars, locals, for_each expansion), so the
evaluation lives here once. Expressions are evaluated by walking the typed rule
tree that ``hcl2.parses`` returns, never by pattern-matching ``${...}`` text.
"""

from mirror_rollout.hcl.values import Unknown, is_known

__all__ = ["Unknown", "is_known"]
