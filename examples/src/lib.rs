//! Runnable examples and the quickstart.
