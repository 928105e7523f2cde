"""Last runbook step: the production deployment checklist, ticked only from evidence."""
