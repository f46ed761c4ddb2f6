//! The naming model and the interpreter that binds names through dtabs.
