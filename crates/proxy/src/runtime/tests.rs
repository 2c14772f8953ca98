//! Unit tests of the build step.
