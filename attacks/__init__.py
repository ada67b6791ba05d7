"""Adaptive membership-inference attacks on tensorflow-privacy result types."""
