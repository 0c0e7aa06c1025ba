"""Tests for the Rehearse bot."""
