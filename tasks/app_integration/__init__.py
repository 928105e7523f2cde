"""Stage app-integration: the Oracle's own integration suite against the environment."""
