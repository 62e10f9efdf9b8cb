"""Tests of aico.security (a package so module names cannot clash with other test dirs)."""
