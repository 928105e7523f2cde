"""AWS Backup coverage of the three tables (the backup plan's selection)."""
