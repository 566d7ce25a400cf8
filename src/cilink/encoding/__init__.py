"""Privacy-preserving record linkage: keyed Bloom-filter encodings of identifiers (see docs/encodings.md)."""
