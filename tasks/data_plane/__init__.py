"""Data-plane contract: the Oracle's access patterns against the live tables."""
