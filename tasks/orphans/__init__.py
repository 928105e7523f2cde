"""Orphan scan: project-named resources in AWS that Terraform state does not track."""
