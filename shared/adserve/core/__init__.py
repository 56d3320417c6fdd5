"""Foundation every wing may use: errors, identifiers, vocabularies, observability, cached values."""
