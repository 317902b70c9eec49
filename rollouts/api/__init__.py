"""Typed models of the project's CRDs and the constants every layer shares (pure)."""
