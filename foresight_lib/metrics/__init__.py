"""Every number the project reports has exactly one definition, here."""
